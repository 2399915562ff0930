"""The panel's side-by-side detector tables: one per flag the view has, equal to the analysis."""

import fiftyone as fo
import numpy as np

from fiftyone_vog.analysis import detector_table_from_view
from fiftyone_vog.app import panel as panels


def test_panel_detector_tables(dataset):
    rng = np.random.default_rng(0)
    n = len(dataset)
    flag = np.arange(n) % 5 == 0
    for f in ("vog", "vog_raw", "vog_margin", "vog_maxprob", "vog_energy"):
        dataset.set_values(f, rng.normal(size=n).tolist())
    dataset.set_values("vog_loss", (flag + rng.random(n)).tolist())
    dataset.set_values("label_shuffled", flag.tolist())
    labels = dataset.values("ground_truth.label")
    dataset.set_values("predictions", [fo.Classification(label=l if i % 3 else "square") for i, l in enumerate(labels)])
    stats = panels.view_stats(dataset, "vog", "ground_truth", "predictions")
    tables = stats["detectors"]
    assert [t["flag"] for t in tables] == ["shuffled labels", "misclassified (predictions)"]
    assert tables[0]["rows"] == detector_table_from_view(dataset, flag_field="label_shuffled").to_dict()["rows"]
    assert tables[0]["rows"][0]["score"] == "vog_loss" and tables[0]["rows"][0]["auroc"] == 1.0
    md = panels.detectors_markdown(tables)
    assert "| vog_loss | high | 1.000 |" in md and "| vog_margin | low |" in md
    # no flag at all: no table, no error
    assert panels.view_stats(dataset.exclude_fields(["label_shuffled"]), "vog")["detectors"] == []
