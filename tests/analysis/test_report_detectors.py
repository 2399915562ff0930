"""The report's side-by-side section: VoG, raw VoG and every companion per flag, best first."""

import fiftyone as fo
import numpy as np

import fiftyone_vog as fov
from fiftyone_vog.analysis import detector_table_from_view

from conftest import CLASSES, small_model


def test_report_detectors_section(dataset, checkpoint_dir, tmp_path):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    rng = np.random.default_rng(1)
    labels = dataset.values("ground_truth.label")
    dataset.set_values(
        "predictions",
        [fo.Classification(label=l if rng.uniform() < 0.6 else CLASSES[(CLASSES.index(l) + 1) % 4]) for l in labels],
    )
    dataset.set_values("label_shuffled", [i % 5 == 0 for i in range(len(dataset))])
    out = fov.vog_report(
        dataset, str(tmp_path), pred_field="predictions", per_class=False, print_summary=False, grid_size=2
    )
    assert out["sections"]["detectors"]["status"] == "ok"
    tables = out["analysis"]["detectors"]
    assert list(tables) == ["shuffled labels", "misclassified (predictions ≠ ground_truth)"]
    want = {"vog", "vog_raw", "vog_loss", "vog_margin", "vog_maxprob", "vog_energy"}
    for t in tables.values():
        assert {r["score"] for r in t["rows"]} == want
        aurocs = [r["auroc"] for r in t["rows"]]
        assert aurocs == sorted(aurocs, reverse=True)
    ref = detector_table_from_view(dataset, flag_field="label_shuffled").to_dict()
    assert tables["shuffled labels"]["rows"] == ref["rows"]
    page = open(out["html"], encoding="utf-8").read()
    assert '<section id="detectors">' in page and "vog_margin" in page and 'class="stats detectors"' in page
