"""fiftyone_vog.analysis against hand-computed values on small arrays, and its FiftyOne wrappers."""

import json
import math

import fiftyone as fo
import numpy as np
import pytest
from scipy import stats

import fiftyone_vog as fov
from fiftyone_vog import analysis as A

from conftest import CLASSES

# Ten samples used throughout; the three 3.0's tie across a quintile boundary.
S = np.array([5, 1, 3, 3, 2, 9, 7, 3, 0, 4], dtype=float)
CORRECT = np.array([1, 1, 0, 1, 1, 0, 0, 1, 1, 0], dtype=bool)  # wrong at 2, 5, 6, 9
WRONG = ~CORRECT


# -- bins ----------------------------------------------------------------------
def test_assign_bins_ranks_ties_by_position():
    # sorted: 0(8) 1(1) | 2(4) 3(2) | 3(3) 3(7) | 4(9) 5(0) | 7(6) 9(5)
    assert A.assign_bins(S, 5).tolist() == [3, 0, 1, 2, 1, 4, 4, 2, 0, 3]
    # uneven sizes: rank r → r*3//7 gives 3, 2, 2
    assert np.bincount(A.assign_bins(np.arange(7.0)[::-1], 3)).tolist() == [3, 2, 2]
    # all equal: split by input order
    assert A.assign_bins(np.ones(6), 3).tolist() == [0, 0, 1, 1, 2, 2]


def test_error_by_bin_hand_computed():
    r = A.error_by_bin(S, CORRECT, bins=5)
    assert r.counts == [2, 2, 2, 2, 2]
    assert r.errors == [0, 1, 0, 1, 2]
    assert r.error_rate == [0.0, 0.5, 0.0, 0.5, 1.0]
    assert r.overall_error == 0.4
    assert r.low == [0, 2, 3, 4, 7] and r.high == [1, 3, 3, 5, 9]
    assert r.edges == [0, 2, 3, 4, 7, 9]
    assert r.labels[0] == "0–20%" and r.labels[-1] == "80–100%"
    assert r.note == ""
    # deciles by default, and a JSON round trip
    d = A.error_by_bin(S, CORRECT).to_dict()
    assert d["bins"] == 10 and d["counts"] == [1] * 10
    assert json.loads(json.dumps(d)) == d


def test_error_by_bin_all_equal_and_too_few_samples():
    r = A.error_by_bin(np.full(4, 2.5), [True, False, True, False], bins=2)
    assert r.error_rate == [0.5, 0.5] and "all scores are equal" in r.note
    r = A.error_by_bin(np.array([3.0, 1.0]), [True, False], bins=4)
    assert r.counts == [1, 0, 1, 0]  # ranks 0,1 → bins 0, 2
    assert r.error_rate[0] == 1.0 and math.isnan(r.error_rate[1])
    assert r.to_dict()["error_rate"] == [1.0, None, 0.0, None]  # NaN → null in JSON
    assert "empty" in r.note


@pytest.mark.parametrize(
    "scores, correct, bins, match",
    [
        ([], [], 10, "empty"),
        ([1.0, float("nan")], [True, True], 2, "non-finite"),
        ([1.0, 2.0], [True], 2, "shape"),
        ([1.0, 2.0], [True, None], 2, "booleans"),
        ([1.0, 2.0], [2, 0], 2, "booleans"),
        ([1.0, 2.0], [True, False], 0, "positive integer"),
        ([[1.0, 2.0]], [True, False], 2, "1-D"),
    ],
)
def test_bad_input_raises_vog_error(scores, correct, bins, match):
    with pytest.raises(fov.VoGError, match=match):
        A.error_by_bin(scores, correct, bins)


# -- t-test -----------------------------------------------------------------------
def test_welch_ttest_against_formulas():
    r = A.welch_ttest(S, WRONG)
    a, b = S[WRONG], S[~WRONG]  # {3, 9, 7, 4} vs {5, 1, 3, 2, 3, 0}
    assert (r.n_flagged, r.n_other) == (4, 6)
    assert r.mean_flagged == pytest.approx(5.75) and r.mean_other == pytest.approx(14 / 6)
    assert r.std_flagged == pytest.approx(math.sqrt(22.75 / 3))
    va, vb = a.var(ddof=1) / 4, b.var(ddof=1) / 6
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 5)
    assert r.t == pytest.approx(t, rel=1e-12) and r.t == pytest.approx(2.20226500, rel=1e-7)
    assert r.dof == pytest.approx(dof, rel=1e-12)
    assert r.p_value == pytest.approx(2 * stats.t.sf(t, dof), rel=1e-10)
    g = A.welch_ttest(S, WRONG, alternative="greater")
    assert g.p_value == pytest.approx(r.p_value / 2, rel=1e-10)


def test_welch_ttest_degenerate_groups_are_nan_with_note():
    r = A.welch_ttest(S, np.zeros(10, bool))
    assert r.n_flagged == 0 and math.isnan(r.mean_flagged) and math.isnan(r.p_value)
    assert r.mean_other == pytest.approx(S.mean()) and "at least 2" in r.note
    r = A.welch_ttest(np.array([1.0, 1, 2, 2]), [True, True, False, False])
    assert math.isnan(r.t) and "zero variance" in r.note
    with pytest.raises(fov.VoGError, match="alternative"):
        A.welch_ttest(S, WRONG, alternative="bigger")


# -- share by percentile ----------------------------------------------------------------
def test_share_by_percentile_hand_computed():
    r = A.share_by_percentile(S, WRONG, bins=5)
    assert r.flagged == [0, 1, 0, 1, 2]
    assert r.share == [0.0, 0.5, 0.0, 0.5, 1.0]
    assert r.overall_share == pytest.approx(0.4)
    assert r.over_index == pytest.approx([0.0, 1.25, 0.0, 1.25, 2.5])
    assert (r.n, r.n_flagged) == (10, 4)
    none = A.share_by_percentile(S, np.zeros(10, bool), bins=5)
    assert none.share == [0.0] * 5 and all(math.isnan(x) for x in none.over_index)
    assert "no sample is flagged" in none.note


# -- detection ---------------------------------------------------------------------------
def test_detection_metrics_hand_computed():
    r = A.detection_metrics(S, WRONG, ks=(1, 3, 5, 20))
    # 24 flagged/other pairs: 9 → 6, 7 → 6, 4 → 5, 3 → 3 + two ties × ½ = 21
    assert r.auroc == pytest.approx(21 / 24)
    # thresholds 9, 7, 5, 4, 3: AP = ¼·1 + ¼·1 + ¼·¾ + ¼·4/7
    assert r.auprc == pytest.approx(0.25 + 0.25 + 0.25 * 0.75 + 0.25 * 4 / 7)
    # top-k by score, ties by position: 9 7 5 4 3(2) 3(3) 3(7) 2 1 0 → flags 1 1 0 1 1 0 0 ...
    assert r.precision_at_k == {1: 1.0, 3: pytest.approx(2 / 3), 5: 0.8, 20: 0.4}
    assert r.recall_at_k == {1: 0.25, 3: 0.5, 5: 1.0, 20: 1.0}
    assert r.r_precision == 0.75 and r.base_rate == 0.4
    assert json.loads(json.dumps(r.to_dict()))["precision_at_k"]["5"] == 0.8


def test_detection_metrics_one_class_is_nan_with_note():
    r = A.detection_metrics(S, np.zeros(10, bool), ks=(3,))
    assert math.isnan(r.auroc) and math.isnan(r.auprc) and math.isnan(r.recall_at_k[3])
    assert r.precision_at_k[3] == 0.0 and "no sample" in r.note
    r = A.detection_metrics(S, np.ones(10, bool), ks=(3,))
    assert math.isnan(r.auroc) and r.precision_at_k[3] == 1.0 and "every sample" in r.note
    with pytest.raises(fov.VoGError, match="positive"):
        A.detection_metrics(S, WRONG, ks=(0,))


# -- rank stability -------------------------------------------------------------------------
def test_rank_stability_hand_computed():
    a, b, c = [1.0, 2, 3, 4], [1.0, 2, 4, 3], [4.0, 3, 2, 1]
    r = A.rank_stability(a, b, c, k=1, names=["a", "b", "c"])
    # Spearman = 1 − 6Σd²/(n(n²−1)) = 1 − 12/60
    assert r.spearman[0][1] == pytest.approx(0.8) and r.spearman[0][2] == pytest.approx(-1.0)
    assert r.top_k_overlap[0][1] == 0.0 and r.bottom_k_overlap[0][1] == 1.0
    assert r.pairs[0] == {
        "a": "a",
        "b": "b",
        "spearman": pytest.approx(0.8),
        "top_k_overlap": 0.0,
        "bottom_k_overlap": 1.0,
    }
    assert r.mean_spearman == pytest.approx((0.8 - 1.0 - 0.8) / 3)
    assert A.rank_stability(a, b, k=2).top_k_overlap[0][1] == 1.0
    assert A.rank_stability(np.arange(30.0), np.arange(30.0)).k == 3  # default: 10% of n


def test_rank_stability_ties_constant_and_errors():
    # tied top: the earlier sample wins
    r = A.rank_stability([2.0, 5, 5, 1], [0.0, 5, 6, 1], k=1)
    assert r.top_k_overlap[0][1] == 1.0 - 1.0  # {1} vs {2}
    r = A.rank_stability([1.0, 1, 1, 1], [1.0, 2, 3, 4], k=2)
    assert math.isnan(r.spearman[0][1]) and "constant" in r.note
    assert r.top_k_overlap[0][1] == 0.0  # {0,1} vs {3,2}
    with pytest.raises(fov.VoGError, match="at least two"):
        A.rank_stability([1.0, 2])
    with pytest.raises(fov.VoGError, match="same length"):
        A.rank_stability([1.0, 2], [1.0, 2, 3])
    with pytest.raises(fov.VoGError, match="k must be"):
        A.rank_stability([1.0, 2], [1.0, 2], k=3)


# -- per class ---------------------------------------------------------------------------------
def test_per_class_hand_computed_with_single_sample_and_empty_class():
    labels = list("aabbccddde")
    preds = list("abbbcaddda")
    r = A.per_class_vog_vs_fnr(S, labels, preds, classes=list("abcdef"))
    assert r.counts == [2, 2, 2, 3, 1, 0]
    assert r.mean_vog[:5] == pytest.approx([3.0, 3.0, 5.5, 10 / 3, 4.0]) and math.isnan(r.mean_vog[5])
    assert r.fnr[:5] == [0.5, 0.0, 0.5, 0.0, 1.0] and math.isnan(r.fnr[5])  # "e" has one, misclassified, sample
    x, y = np.array(r.mean_vog[:5]), np.array(r.fnr[:5])
    assert r.n_classes_used == 5
    assert r.pearson == pytest.approx(np.corrcoef(x, y)[0, 1])
    assert r.spearman == pytest.approx(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])
    # missing labels / predictions are skipped; default classes are the sorted labels
    r2 = A.per_class_vog_vs_fnr([1.0, 2, 3, 4], ["x", None, "y", "x"], ["x", "x", None, "y"])
    assert (r2.n, r2.n_skipped, r2.classes, r2.fnr) == (2, 2, ["x"], [0.5])
    assert math.isnan(r2.pearson) and "at least 3" in r2.note


# -- windows ---------------------------------------------------------------------------------
def test_window_comparison_detects_reversal():
    r = A.window_decile_comparison(S, -S, CORRECT, bins=5)
    assert r.early.error_rate == [0.0, 0.5, 0.0, 0.5, 1.0]
    assert r.late.error_rate == [1.0, 0.5, 0.5, 0.0, 0.0]
    # least-squares slope: Σ(x−2)(y−ȳ)/Σ(x−2)² = 2.0/10 and −2.5/10
    assert r.early_trend["slope"] == pytest.approx(0.2) and r.late_trend["slope"] == pytest.approx(-0.25)
    assert r.early_trend["direction"] == "higher VoG, higher error"
    assert r.late_trend["direction"] == "higher VoG, lower error"
    assert r.late_trend["top_minus_bottom"] == -1.0 and r.reversed
    assert not A.window_decile_comparison(S, S, CORRECT, bins=5).reversed
    flat = A.window_decile_comparison(np.ones(4), np.ones(4), np.ones(4, bool), bins=2)
    assert flat.early_trend["direction"] == "flat" and math.isnan(flat.early_trend["spearman"])
    with pytest.raises(fov.VoGError, match="same length"):
        A.window_decile_comparison(S, S[:5], CORRECT)


# -- FiftyOne wrappers --------------------------------------------------------------------
@pytest.fixture
def synthetic_scores(dataset):
    """40 samples: vog, vog_raw, predictions, label_shuffled, 'ood' tags; one sample unscored."""
    n = len(dataset)
    rng = np.random.default_rng(0)
    ids = dataset.values("id")
    labels = dataset.values("ground_truth.label")
    vog = rng.normal(size=n)
    raw = rng.uniform(size=n)
    preds = [l if rng.uniform() < 0.7 else CLASSES[(CLASSES.index(l) + 1) % 4] for l in labels]
    shuffled = rng.uniform(size=n) < 0.3
    vog_vals = vog.tolist()
    vog_vals[0] = None  # not synthetic_scores: dropped by every wrapper
    dataset.set_values("vog", vog_vals)
    dataset.set_values("vog_raw", [None] + raw[1:].tolist())
    dataset.set_values("vog_early", (-vog).tolist())
    dataset.set_values("vog_late", vog.tolist())
    pred_labels = [fo.Classification(label=p) for p in preds]
    pred_labels[1] = None  # no prediction: not counted in the error
    dataset.set_values("predictions", pred_labels)
    dataset.set_values("label_shuffled", [bool(x) for x in shuffled[:-1]] + [None])
    dataset.select(ids[-5:]).tag_samples("ood")
    return dataset, dict(
        vog=vog, raw=raw, labels=np.array(labels, dtype=object), preds=np.array(preds, dtype=object), shuffled=shuffled
    )


def test_wrappers_equal_array_functions(synthetic_scores):
    ds, d = synthetic_scores
    n = len(ds)
    has = np.arange(n) != 0
    both = has & (np.arange(n) != 1)
    correct = d["labels"] == d["preds"]
    assert (
        A.error_by_bin_from_view(ds, pred_field="predictions").to_dict()
        == A.error_by_bin(d["vog"][both], correct[both]).to_dict()
    )
    assert A.decile_error_from_view is A.error_by_bin_from_view
    known = has & (np.arange(n) != n - 1)  # the last sample's flag is None: left out
    assert A.welch_ttest_from_view(ds).to_dict() == A.welch_ttest(d["vog"][known], d["shuffled"][known]).to_dict()
    assert A.welch_ttest_from_view(ds).n_flagged + A.welch_ttest_from_view(ds).n_other == n - 2
    ood = np.arange(n) >= n - 5
    assert (
        A.share_by_percentile_from_view(ds, tag="ood").to_dict()
        == A.share_by_percentile(d["vog"][has], ood[has]).to_dict()
    )
    det = A.detection_metrics_from_view(ds, tag="ood", ks=(5,))
    assert det.to_dict() == A.detection_metrics(d["vog"][has], ood[has], ks=(5,)).to_dict()
    st = A.rank_stability_from_view(ds, ["vog", "vog_late", "vog_early"])
    assert st.names == ["vog", "vog_late", "vog_early"] and st.n == n - 1
    assert st.spearman[0][1] == pytest.approx(1.0) and st.spearman[0][2] == pytest.approx(-1.0)
    w = A.window_comparison_from_view(ds, "vog_early", "vog_late", bins=4)
    labelled = np.arange(n) != 1  # sample 0 has window scores but no "vog"
    ref = A.window_decile_comparison(-d["vog"][labelled], d["vog"][labelled], correct[labelled], bins=4)
    assert w.to_dict() == ref.to_dict() and w.early.n == n - 1


def test_per_class_wrapper_reads_raw_field_and_dataset_classes(synthetic_scores):
    ds, d = synthetic_scores
    r = A.per_class_from_view(ds, pred_field="predictions")
    has = np.arange(len(ds)) > 0
    preds = d["preds"].copy()
    preds[1] = None
    ref = A.per_class_vog_vs_fnr(d["raw"][has], d["labels"][has], preds[has], CLASSES)
    assert r.to_dict() == ref.to_dict() and r.classes == CLASSES and r.n_skipped == 1
    both = np.arange(len(ds)) > 1
    z = A.per_class_from_view(ds, pred_field="predictions", raw=False)
    assert z.mean_vog == pytest.approx([d["vog"][both][d["labels"][both] == c].mean() for c in CLASSES])


def test_wrappers_on_a_view_and_errors(synthetic_scores):
    ds, d = synthetic_scores
    view = ds.match_tags("ood")
    r = A.share_by_percentile_from_view(view, tag="ood", bins=5)
    assert r.overall_share == 1.0 and r.n == 5
    with pytest.raises(fov.VoGError, match="field 'nope' not found"):
        A.error_by_bin_from_view(ds, pred_field="nope")
    with pytest.raises(fov.VoGError, match="exactly one"):
        A.detection_metrics_from_view(ds)
    ds.set_values("vog", [None] * len(ds))
    with pytest.raises(fov.VoGError, match="compute_vog"):
        A.welch_ttest_from_view(ds)
