"""The side-by-side detector table on small hand-made flags, against sklearn directly."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fiftyone_vog.analysis import detector_table, detector_table_from_view
from fiftyone_vog.errors import VoGError

FLAG = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0], dtype=bool)
SCORES = {
    "vog": np.array([0.2, 0.1, 0.5, 0.4, 0.3, 0.0, 0.9, 0.8, 0.6, 0.7]),  # middling
    "vog_raw": np.array([3.0, 1, 2, 5, 1.5, 0, 0.5, 4, 0.2, 0.1]),
    "vog_loss": np.array([2.0, 0.1, 0.2, 3.0, 0.1, 0.3, 0.2, 2.5, 0.4, 0.0]),  # perfect
    "vog_margin": np.array([-2.0, 3, 2, -1, 4, 1, 2.5, 0.5, 3, 5]),  # low = flagged
    "vog_maxprob": np.array([0.4, 0.9, 0.8, 0.7, 0.95, 0.6, 0.99, 0.5, 0.85, 0.9]),
}


def test_table_equals_sklearn_and_is_sorted_best_first():
    t = detector_table(SCORES, FLAG)
    assert t.k == 3 and t.n == 10 and t.n_flagged == 3 and t.base_rate == 0.3
    by = {r["score"]: r for r in t.rows}
    for name, s in SCORES.items():
        sign = -1 if name in ("vog_margin", "vog_maxprob") else 1
        assert by[name]["direction"] == ("low" if sign < 0 else "high")
        assert by[name]["auroc"] == pytest.approx(roc_auc_score(FLAG, sign * s))
        assert by[name]["auprc"] == pytest.approx(average_precision_score(FLAG, sign * s))
        top = np.argsort(-sign * s, kind="stable")[:3]
        assert by[name]["precision_at_k"] == pytest.approx(FLAG[top].mean())
    aurocs = [r["auroc"] for r in t.rows]
    assert aurocs == sorted(aurocs, reverse=True)
    assert t.best == "vog_loss" and by["vog_loss"]["auroc"] == 1.0 and by["vog_loss"]["precision_at_k"] == 1.0
    assert by["vog_margin"]["auroc"] == 1.0  # low margin flags: the sign is applied
    assert t.to_dict()["rows"][0]["score"] in ("vog_loss", "vog_margin")


def test_table_with_explicit_k_and_directions():
    t = detector_table({"a": SCORES["vog_margin"]}, FLAG, k=2, directions={"a": 1})
    assert t.rows[0]["direction"] == "high"
    assert t.rows[0]["auroc"] == pytest.approx(roc_auc_score(FLAG, SCORES["vog_margin"]))
    assert t.rows[0]["precision_at_k"] == FLAG[np.argsort(-SCORES["vog_margin"], kind="stable")[:2]].mean()


def test_one_class_flag_is_nan_not_an_error():
    t = detector_table(SCORES, np.zeros(10, bool))
    assert all(math.isnan(r["auroc"]) for r in t.rows) and "no sample is flagged" in t.note and t.best is None
    with pytest.raises(VoGError, match="same length"):
        detector_table({"a": [1.0, 2.0], "b": [1.0]}, [True, False])


def test_from_view_reads_vog_raw_and_companions(dataset):
    import fiftyone as fo

    n = len(dataset)
    rng = np.random.default_rng(0)
    flag = rng.random(n) < 0.3
    cols = {
        "vog": rng.normal(size=n),
        "vog_raw": rng.random(n),
        "vog_loss": flag + rng.random(n),
        "vog_margin": rng.normal(size=n),
        "vog_maxprob": rng.random(n),
        "vog_energy": rng.normal(size=n),
    }
    for f, v in cols.items():
        dataset.set_values(f, v.tolist())
    dataset.set_values("shuffled", flag.tolist())
    t = detector_table_from_view(dataset, flag_field="shuffled")
    assert {r["score"] for r in t.rows} == set(cols) and t.n == n
    ref = detector_table(cols, flag)
    assert t.rows == ref.rows
    # misclassified = prediction != label, tag
    labels = dataset.values("ground_truth.label")
    preds = [l if not f else "circle" if l != "circle" else "square" for l, f in zip(labels, flag)]
    dataset.set_values("predictions", [fo.Classification(label=p) for p in preds])
    assert detector_table_from_view(dataset, misclassified="predictions").rows == ref.rows
    dataset.select([i for i, f in zip(dataset.values("id"), flag) if f]).tag_samples("ood")
    assert detector_table_from_view(dataset, tag="ood").rows == ref.rows
    with pytest.raises(VoGError, match="exactly one flag"):
        detector_table_from_view(dataset, tag="ood", flag_field="shuffled")
