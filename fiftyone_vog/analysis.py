"""Statistics on VoG scores: the paper's analyses as pure numpy/scipy functions.

Every analysis takes plain arrays and returns a small dataclass whose ``to_dict()``
is JSON-serializable (numpy scalars become Python numbers; NaN and ±inf become
``None``). Each has a thin ``*_from_view`` wrapper that reads the arrays from a
FiftyOne dataset or view by field name.

Conventions shared by all functions:

- ``scores``: ``(n,)`` float-like, finite. Higher = more variable = "harder".
- ``correct`` / ``flag``: ``(n,)`` bool (or 0/1), aligned with ``scores``.
- **Quantile bins** (:func:`assign_bins`): samples are ranked by score, ties broken by
  their position in the input (earlier first), and rank ``r`` (0-based) goes to bin
  ``r * bins // n``. Every bin thus holds ``floor(n/bins)`` or ``ceil(n/bins)``
  samples, bin 0 is the lowest-VoG bin, and the result is deterministic even when
  scores tie or are all equal (then the bins split the samples by input order and
  carry no VoG information; the result's ``note`` says so). With ``n < bins`` some
  bins are empty: their count is 0 and their rates are NaN.
- **Top-k** (:func:`detection_metrics`, :func:`rank_stability`): the k highest
  scores, ties broken by input position (earlier first).
- Undefined statistics (one-class flags, a group with fewer than 2 samples,
  constant input to a correlation) are NaN, with a human-readable ``note``; they
  never raise. Malformed input (wrong shapes, non-finite scores, empty arrays)
  raises :class:`~fiftyone_vog.VoGError`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .engine import VoGError

__all__ = [
    "BinnedError",
    "TTest",
    "BinnedShare",
    "Detection",
    "RankStability",
    "PerClassVoG",
    "WindowComparison",
    "assign_bins",
    "error_by_bin",
    "welch_ttest",
    "share_by_percentile",
    "detection_metrics",
    "rank_stability",
    "per_class_vog_vs_fnr",
    "window_decile_comparison",
    "to_jsonable",
    "error_by_bin_from_view",
    "decile_error_from_view",
    "welch_ttest_from_view",
    "share_by_percentile_from_view",
    "detection_metrics_from_view",
    "rank_stability_from_view",
    "per_class_from_view",
    "window_comparison_from_view",
    "read_flag",
    "read_correct",
]


# -- helpers -------------------------------------------------------------------
def to_jsonable(obj):
    """Recursively turn numpy values, tuples and dataclasses into JSON types; NaN/inf → None."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


class _Result:
    def to_dict(self) -> dict:
        """JSON-serializable dict of every attribute (NaN → None)."""
        return to_jsonable(self)


def _as_scores(scores, name: str = "scores") -> np.ndarray:
    try:
        a = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise VoGError(f"{name} must be numbers; drop samples without a VoG score (None) first") from None
    if a.ndim != 1:
        raise VoGError(f"{name} must be a 1-D array, got shape {a.shape}")
    if a.size == 0:
        raise VoGError(f"{name} is empty; score some samples with compute_vog first")
    if not np.all(np.isfinite(a)):
        raise VoGError(f"{name} has {int(np.sum(~np.isfinite(a)))} non-finite values (NaN/inf); drop them first")
    return a


def _as_bool(x, n: int, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == object:
        raise VoGError(f"{name} must be booleans (True/False or 0/1), not objects such as None")
    if a.shape != (n,):
        raise VoGError(f"{name} has shape {a.shape}, expected ({n},) to match scores")
    if a.dtype != np.bool_:
        if not np.all(np.isin(a, (0, 1))):
            raise VoGError(f"{name} must be booleans (True/False or 0/1)")
        a = a.astype(bool)
    return a


def _check_bins(bins) -> int:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise VoGError(f"bins must be a positive integer (10 for deciles), got {bins!r}")
    return int(bins)


def _rate(num, den) -> float:
    return float(num) / float(den) if den else float("nan")


def assign_bins(scores, bins: int = 10) -> np.ndarray:
    """Quantile bin of every sample: ``(n,) int64`` in ``[0, bins)``, 0 = lowest scores.

    Samples are ranked by ``scores`` with a stable sort (ties keep input order) and rank
    ``r`` goes to bin ``r * bins // n``; bins hold ``floor(n/bins)`` or ``ceil(n/bins)``
    samples.
    """
    s = _as_scores(scores)
    bins = _check_bins(bins)
    n = s.size
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(s, kind="stable")] = np.arange(n)
    return rank * bins // n


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, ties broken by input position (earlier first)."""
    order = np.lexsort((np.arange(scores.size), -scores))
    return order[:k]


def _tie_note(s: np.ndarray) -> str:
    if np.all(s == s[0]):
        return "all scores are equal: the bins split the samples by input order and carry no VoG information"
    return ""


def _bin_bounds(s: np.ndarray, b: np.ndarray, bins: int):
    low = [float(s[b == i].min()) if np.any(b == i) else float("nan") for i in range(bins)]
    high = [float(s[b == i].max()) if np.any(b == i) else float("nan") for i in range(bins)]
    return low, high, low + [float(s.max())]


def _percent_labels(bins: int) -> list[str]:
    return [f"{100 * i / bins:g}–{100 * (i + 1) / bins:g}%" for i in range(bins)]


# -- error by bin (Fig. 4) -------------------------------------------------------
@dataclass
class BinnedError(_Result):
    """Error rate per VoG quantile bin (bin 0 = lowest VoG).

    Attributes:
        bins: number of bins.
        labels: percentile range of each bin, e.g. ``"90–100%"``.
        counts: samples per bin.
        errors: misclassified samples per bin.
        error_rate: ``errors / counts`` per bin (NaN for an empty bin).
        low, high: smallest and largest score in each bin (NaN when empty).
        edges: ``bins + 1`` values: each bin's lowest score, then the overall maximum.
        overall_error: error rate over all samples (the model's error, for comparison).
        n: number of samples.
        note: why some values are undefined or uninformative, else ``""``.
    """

    bins: int
    labels: list[str]
    counts: list[int]
    errors: list[int]
    error_rate: list[float]
    low: list[float]
    high: list[float]
    edges: list[float]
    overall_error: float
    n: int
    note: str = ""


def error_by_bin(scores, correct, bins: int = 10) -> BinnedError:
    """Error rate per VoG quantile bin (paper Fig. 4: test error by VoG decile).

    Args:
        scores: ``(n,)`` VoG scores.
        correct: ``(n,)`` bool, True where the prediction equals the label.
        bins: number of quantile bins (10 = deciles); see :func:`assign_bins` for ties.

    Returns:
        :class:`BinnedError`; ``error_rate[-1]`` is the top decile's error.
    """
    s = _as_scores(scores)
    ok = _as_bool(correct, s.size, "correct")
    bins = _check_bins(bins)
    b = assign_bins(s, bins)
    wrong = ~ok
    counts = np.bincount(b, minlength=bins)
    errors = np.bincount(b, weights=wrong, minlength=bins).astype(np.int64)
    low, high, edges = _bin_bounds(s, b, bins)
    notes = [_tie_note(s)]
    if s.size < bins:
        notes.append(f"only {s.size} samples for {bins} bins: some bins are empty")
    return BinnedError(
        bins=bins, labels=_percent_labels(bins), counts=counts.tolist(), errors=errors.tolist(),
        error_rate=[_rate(e, c) for e, c in zip(errors, counts)], low=low, high=high, edges=edges,
        overall_error=_rate(wrong.sum(), s.size), n=int(s.size), note="; ".join(x for x in notes if x),
    )


# -- Welch t-test (Fig. 8) ---------------------------------------------------------
@dataclass
class TTest(_Result):
    """Welch two-sample t-test of VoG, flagged vs other samples.

    Attributes:
        n_flagged, mean_flagged, std_flagged: the flagged group (std with ``ddof=1``).
        n_other, mean_other, std_other: the rest.
        t: Welch's t statistic (positive when flagged samples score higher).
        dof: Welch–Satterthwaite degrees of freedom.
        p_value: p-value for ``alternative``.
        alternative: ``"two-sided"``, ``"greater"`` (flagged higher) or ``"less"``.
        note: why values are NaN, else ``""``.
    """

    n_flagged: int
    mean_flagged: float
    std_flagged: float
    n_other: int
    mean_other: float
    std_other: float
    t: float
    dof: float
    p_value: float
    alternative: str = "two-sided"
    note: str = ""


def welch_ttest(scores, flag, alternative: str = "two-sided") -> TTest:
    """Welch's unequal-variance t-test of ``scores[flag]`` against ``scores[~flag]`` (Fig. 8).

    Uses ``scipy.stats.ttest_ind(equal_var=False)``. Means and stds of an empty group
    are NaN; with fewer than 2 samples in a group, or zero variance in both, ``t``,
    ``dof`` and ``p_value`` are NaN and ``note`` says why.

    Args:
        scores: ``(n,)`` VoG scores.
        flag: ``(n,)`` bool, e.g. the shuffled-label flag.
        alternative: ``"two-sided"`` (paper), ``"greater"`` or ``"less"``.
    """
    from scipy import stats

    s = _as_scores(scores)
    f = _as_bool(flag, s.size, "flag")
    if alternative not in ("two-sided", "greater", "less"):
        raise VoGError(f"alternative={alternative!r}: use 'two-sided', 'greater' or 'less'")
    a, b = s[f], s[~f]

    def _mean(x):
        return float(x.mean()) if x.size else float("nan")

    def _std(x):
        return float(x.std(ddof=1)) if x.size > 1 else float("nan")

    t = dof = p = float("nan")
    note = ""
    if a.size < 2 or b.size < 2:
        note = f"a t-test needs at least 2 samples per group; got {a.size} flagged and {b.size} other"
    elif a.var() == 0 and b.var() == 0:
        note = "both groups have zero variance: the t statistic is undefined"
    else:
        r = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
        t, p, dof = float(r.statistic), float(r.pvalue), float(r.df)
    return TTest(
        n_flagged=int(a.size), mean_flagged=_mean(a), std_flagged=_std(a),
        n_other=int(b.size), mean_other=_mean(b), std_other=_std(b),
        t=t, dof=dof, p_value=p, alternative=alternative, note=note,
    )


# -- share of flagged samples per bin (Fig. 6 right) -----------------------------
@dataclass
class BinnedShare(_Result):
    """Share of flagged (e.g. OOD) samples per VoG quantile bin.

    Attributes:
        bins, labels, counts, low, high, edges: as in :class:`BinnedError`.
        flagged: flagged samples per bin.
        share: ``flagged / counts`` per bin.
        over_index: ``share / overall_share`` per bin (1 = as often as overall; NaN when
            nothing is flagged).
        overall_share: flagged fraction over all samples.
        n, n_flagged: totals.
        note: why values are NaN or uninformative, else ``""``.
    """

    bins: int
    labels: list[str]
    counts: list[int]
    flagged: list[int]
    share: list[float]
    over_index: list[float]
    low: list[float]
    high: list[float]
    edges: list[float]
    overall_share: float
    n: int
    n_flagged: int
    note: str = ""


def share_by_percentile(scores, flag, bins: int = 10) -> BinnedShare:
    """Share of flagged samples in each VoG percentile bin and its over-index (Fig. 6 right).

    Args:
        scores: ``(n,)`` VoG scores.
        flag: ``(n,)`` bool, e.g. True for out-of-distribution samples.
        bins: number of quantile bins; see :func:`assign_bins` for ties.
    """
    s = _as_scores(scores)
    f = _as_bool(flag, s.size, "flag")
    bins = _check_bins(bins)
    b = assign_bins(s, bins)
    counts = np.bincount(b, minlength=bins)
    flagged = np.bincount(b, weights=f, minlength=bins).astype(np.int64)
    overall = _rate(f.sum(), s.size)
    share = [_rate(x, c) for x, c in zip(flagged, counts)]
    over = [x / overall if overall > 0 else float("nan") for x in share]
    low, high, edges = _bin_bounds(s, b, bins)
    notes = [_tie_note(s)]
    if not f.any():
        notes.append("no sample is flagged: the over-index is undefined")
    if s.size < bins:
        notes.append(f"only {s.size} samples for {bins} bins: some bins are empty")
    return BinnedShare(
        bins=bins, labels=_percent_labels(bins), counts=counts.tolist(), flagged=flagged.tolist(),
        share=share, over_index=over, low=low, high=high, edges=edges, overall_share=overall,
        n=int(s.size), n_flagged=int(f.sum()), note="; ".join(x for x in notes if x),
    )


# -- detection metrics --------------------------------------------------------------
@dataclass
class Detection(_Result):
    """VoG as a detector of a boolean flag (higher VoG = more likely flagged).

    Attributes:
        auroc: area under the ROC curve (0.5 = chance).
        auprc: average precision (``sklearn.metrics.average_precision_score``); chance
            level is ``base_rate``.
        base_rate: flagged fraction.
        precision_at_k, recall_at_k: ``{k: value}`` for each requested k, over the k
            highest scores (k larger than n is capped at n).
        r_precision: precision at k = number of flagged samples.
        n, n_flagged: totals.
        note: why values are NaN, else ``""``.
    """

    auroc: float
    auprc: float
    base_rate: float
    precision_at_k: dict[int, float]
    recall_at_k: dict[int, float]
    r_precision: float
    n: int
    n_flagged: int
    note: str = ""


def detection_metrics(scores, flag, ks: Sequence[int] = (10, 50, 100)) -> Detection:
    """AUROC, AUPRC, precision@k and recall@k of ``scores`` as a detector of ``flag``.

    One-class input (nothing or everything flagged): AUROC, AUPRC and recall are NaN
    (they are undefined), precision@k is still reported, and ``note`` says why.

    Args:
        scores: ``(n,)`` VoG scores.
        flag: ``(n,)`` bool: shuffled label, OOD, misclassified, ...
        ks: the k's for precision/recall at k (positive integers).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    s = _as_scores(scores)
    f = _as_bool(flag, s.size, "flag")
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise VoGError(f"ks must be positive integers, got {ks}")
    n, pos = s.size, int(f.sum())
    order = _top_k(s, n)
    hits = np.cumsum(f[order])  # hits[k-1] = flagged among the top k
    prec = {k: float(hits[min(k, n) - 1]) / min(k, n) for k in ks}
    rec = {k: _rate(hits[min(k, n) - 1], pos) for k in ks}
    note = ""
    if 0 < pos < n:
        auroc = float(roc_auc_score(f, s))
        auprc = float(average_precision_score(f, s))
        r_prec = float(hits[pos - 1]) / pos
    else:
        auroc = auprc = float("nan")
        r_prec = float("nan") if pos == 0 else 1.0
        note = f"{'no' if pos == 0 else 'every'} sample is flagged: AUROC and AUPRC are undefined"
        if pos == 0:
            rec = {k: float("nan") for k in ks}
    return Detection(
        auroc=auroc, auprc=auprc, base_rate=pos / n, precision_at_k=prec, recall_at_k=rec,
        r_precision=r_prec, n=n, n_flagged=pos, note=note,
    )


# -- rank stability (Fig. 6 left) ----------------------------------------------------
@dataclass
class RankStability(_Result):
    """Agreement between two or more VoG rankings of the same samples.

    Attributes:
        names: one name per score array.
        k: size of the top/bottom sets compared.
        spearman: ``(m, m)`` Spearman rank correlations (diagonal 1).
        top_k_overlap: ``(m, m)`` fraction of the k highest-scored samples two rankings share.
        bottom_k_overlap: the same for the k lowest.
        pairs: one dict per pair ``{"a", "b", "spearman", "top_k_overlap", "bottom_k_overlap"}``.
        mean_spearman, mean_top_k_overlap: averages over pairs.
        n: samples per array.
        note: why values are NaN, else ``""``.
    """

    names: list[str]
    k: int
    spearman: list[list[float]]
    top_k_overlap: list[list[float]]
    bottom_k_overlap: list[list[float]]
    pairs: list[dict]
    mean_spearman: float
    mean_top_k_overlap: float
    n: int
    note: str = ""


def rank_stability(*score_arrays, k: int | None = None, names: Sequence[str] | None = None) -> RankStability:
    """Pairwise Spearman correlation and top-k / bottom-k overlap of VoG rankings (Fig. 6 left).

    Args:
        *score_arrays: two or more ``(n,)`` score arrays over the same samples in the
            same order (e.g. VoG from independently trained models).
        k: size of the top/bottom sets (default: 10% of n, at least 1); ties broken by
            input position.
        names: a name per array (default ``"0"``, ``"1"``, ...).

    A constant array has no ranking: its Spearman correlations are NaN (see ``note``).
    """
    from scipy import stats

    if len(score_arrays) < 2:
        raise VoGError("rank_stability needs at least two score arrays")
    arrs = [_as_scores(a, f"score array {i}") for i, a in enumerate(score_arrays)]
    n = arrs[0].size
    if any(a.size != n for a in arrs):
        raise VoGError(f"score arrays must have the same length; got {[a.size for a in arrs]}")
    names = [str(x) for x in (names if names is not None else range(len(arrs)))]
    if len(names) != len(arrs):
        raise VoGError(f"got {len(names)} names for {len(arrs)} score arrays")
    k = max(1, int(round(0.1 * n))) if k is None else int(k)
    if not 1 <= k <= n:
        raise VoGError(f"k must be between 1 and the number of samples ({n}), got {k}")
    tops = [set(_top_k(a, k).tolist()) for a in arrs]
    bottoms = [set(_top_k(-a, k).tolist()) for a in arrs]
    m = len(arrs)
    rho = np.eye(m)
    top = np.eye(m)
    bottom = np.eye(m)
    pairs = []
    constant = [names[i] for i, a in enumerate(arrs) if np.all(a == a[0])]
    for i in range(m):
        for j in range(i + 1, m):
            if names[i] in constant or names[j] in constant:
                r = float("nan")
            else:
                r = float(stats.spearmanr(arrs[i], arrs[j]).statistic)
            rho[i, j] = rho[j, i] = r
            top[i, j] = top[j, i] = len(tops[i] & tops[j]) / k
            bottom[i, j] = bottom[j, i] = len(bottoms[i] & bottoms[j]) / k
            pairs.append({"a": names[i], "b": names[j], "spearman": r,
                          "top_k_overlap": top[i, j], "bottom_k_overlap": bottom[i, j]})
    for i in constant:
        rho[names.index(i), names.index(i)] = float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_rho = float(np.mean([p["spearman"] for p in pairs]))
    return RankStability(
        names=names, k=k, spearman=rho.tolist(), top_k_overlap=top.tolist(), bottom_k_overlap=bottom.tolist(),
        pairs=pairs, mean_spearman=mean_rho, mean_top_k_overlap=float(np.mean([p["top_k_overlap"] for p in pairs])),
        n=n, note=f"constant scores (no ranking): {', '.join(constant)}" if constant else "",
    )


# -- per-class VoG vs false-negative rate (Fig. 10) -----------------------------------
@dataclass
class PerClassVoG(_Result):
    """Per-class mean VoG against per-class false-negative rate.

    Attributes:
        classes: class names, in the order given.
        counts: samples whose true label is the class.
        mean_vog: mean score per class (NaN for a class without samples).
        fnr: false-negative rate per class: fraction of its samples predicted as another class.
        pearson, pearson_p, spearman, spearman_p: correlation of ``mean_vog`` and ``fnr``
            over the classes with samples (NaN with fewer than 3 such classes or constant values).
        n_classes_used: classes entering the correlation.
        n, n_skipped: samples used, and samples skipped for a missing label or prediction.
        note: why values are NaN, else ``""``.
    """

    classes: list[str]
    counts: list[int]
    mean_vog: list[float]
    fnr: list[float]
    pearson: float
    pearson_p: float
    spearman: float
    spearman_p: float
    n_classes_used: int
    n: int
    n_skipped: int = 0
    note: str = ""


def per_class_vog_vs_fnr(scores, labels, predictions, classes: Sequence | None = None) -> PerClassVoG:
    """Per-class mean VoG and false-negative rate, and their correlation (Fig. 10).

    Use **raw** VoG here: class-normalized (z-scored) VoG has mean 0 in every class.

    Args:
        scores: ``(n,)`` VoG scores.
        labels: ``(n,)`` true class of each sample (names or indices); ``None`` skips it.
        predictions: ``(n,)`` predicted class, same encoding; ``None`` skips the sample.
        classes: the classes to report, in order (default: sorted distinct labels). A
            class without samples gets count 0 and NaN; a class with one sample gets that
            sample's score and an FNR of 0 or 1.
    """
    from scipy import stats

    s = _as_scores(scores)
    labels = np.asarray(labels, dtype=object)
    preds = np.asarray(predictions, dtype=object)
    if labels.shape != s.shape or preds.shape != s.shape:
        raise VoGError(f"scores, labels and predictions must have the same length; got {s.size}, {labels.size}, {preds.size}")
    keep = np.array([l is not None and p is not None for l, p in zip(labels, preds)], dtype=bool)
    s, labels, preds = s[keep], labels[keep], preds[keep]
    if classes is None:
        classes = sorted(set(labels.tolist()), key=str)
    classes = list(classes)
    counts, means, fnrs = [], [], []
    for c in classes:
        m = labels == c
        cnt = int(m.sum())
        counts.append(cnt)
        means.append(float(s[m].mean()) if cnt else float("nan"))
        fnrs.append(_rate(np.sum(preds[m] != c), cnt))
    used = [i for i, c in enumerate(counts) if c > 0]
    x, y = np.array(means)[used], np.array(fnrs)[used]
    r = rp = rho = rhop = float("nan")
    note = ""
    if len(used) < 3:
        note = f"a correlation needs at least 3 classes with samples; got {len(used)}"
    elif np.all(x == x[0]) or np.all(y == y[0]):
        note = "mean VoG or FNR is the same for every class: the correlation is undefined"
    else:
        pr = stats.pearsonr(x, y)
        sr = stats.spearmanr(x, y)
        r, rp, rho, rhop = float(pr.statistic), float(pr.pvalue), float(sr.statistic), float(sr.pvalue)
    return PerClassVoG(
        classes=[str(c) for c in classes], counts=counts, mean_vog=means, fnr=fnrs, pearson=r, pearson_p=rp,
        spearman=rho, spearman_p=rhop, n_classes_used=len(used), n=int(keep.sum()),
        n_skipped=int((~keep).sum()), note=note,
    )


# -- early vs late window (Fig. 7) --------------------------------------------------
def _trend(res: BinnedError) -> dict:
    """Direction of the error over the bins: slope per bin, Spearman, top − bottom."""
    from scipy import stats

    idx = np.arange(res.bins, dtype=float)
    err = np.array(res.error_rate, dtype=float)
    ok = np.isfinite(err)
    slope = rho = float("nan")
    if ok.sum() >= 2:
        slope = float(np.polyfit(idx[ok], err[ok], 1)[0])
        if not np.all(err[ok] == err[ok][0]):
            rho = float(stats.spearmanr(idx[ok], err[ok]).statistic)
    diff = float(err[ok][-1] - err[ok][0]) if ok.any() else float("nan")
    if not np.isfinite(slope) or slope == 0:
        direction = "flat"
    else:
        direction = "higher VoG, higher error" if slope > 0 else "higher VoG, lower error"
    return {"slope": slope, "spearman": rho, "top_minus_bottom": diff, "direction": direction}


@dataclass
class WindowComparison(_Result):
    """Decile error of an early-window and a late-window VoG over the same samples.

    Attributes:
        early, late: :class:`BinnedError` of each window's scores.
        early_trend, late_trend: ``{"slope", "spearman", "top_minus_bottom", "direction"}``:
            least-squares slope of error rate against bin index (error per bin), Spearman
            correlation of error with bin index, error of the top bin minus the bottom bin,
            and a words summary (``"higher VoG, higher error"`` / ``"higher VoG, lower error"`` / ``"flat"``).
        reversed: True when the two windows rank in opposite directions (paper Fig. 7).
    """

    early: BinnedError
    late: BinnedError
    early_trend: dict
    late_trend: dict
    reversed: bool = False


def window_decile_comparison(early_scores, late_scores, correct, bins: int = 10) -> WindowComparison:
    """Error by VoG bin for an early and a late checkpoint window (paper Fig. 7).

    Args:
        early_scores, late_scores: ``(n,)`` VoG of the same samples from early and late checkpoints.
        correct: ``(n,)`` bool, True where the (final) model is right.
        bins: number of quantile bins.
    """
    ne, nl = np.size(early_scores), np.size(late_scores)
    if ne != nl:
        raise VoGError(f"early and late scores must have the same length; got {ne} and {nl}")
    e = error_by_bin(early_scores, correct, bins)
    l = error_by_bin(late_scores, correct, bins)
    te, tl = _trend(e), _trend(l)
    rev = bool(np.isfinite(te["slope"]) and np.isfinite(tl["slope"]) and te["slope"] * tl["slope"] < 0)
    return WindowComparison(early=e, late=l, early_trend=te, late_trend=tl, reversed=rev)


# -- FiftyOne wrappers -------------------------------------------------------------
def _check_fields(samples, *names):
    schema = samples.get_field_schema()
    for name in names:
        if name and name.split(".")[0] not in schema:
            raise VoGError(
                f"field {name!r} not found on {samples._dataset.name!r}; fields: {', '.join(sorted(schema))}"
            )


def _read_scores(samples, vog_field):
    """``(ids, scores)`` of the samples that have a score; samples without one are dropped."""
    _check_fields(samples, vog_field)
    ids, vals = samples.values(["id", vog_field])
    keep = [v is not None for v in vals]
    ids = [i for i, k in zip(ids, keep) if k]
    vals = np.array([v for v, k in zip(vals, keep) if k], dtype=np.float64)
    if not len(ids):
        raise VoGError(f"no sample has a value in {vog_field!r}; run compute_vog first")
    return ids, vals, np.array(keep)


def read_flag(samples, field: str | None = None, tag: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(flag, known)``, two ``(n,) bool`` arrays in the order of ``samples``.

    From a boolean ``field``: ``flag`` is True where the value is True; ``known`` is False
    where the value is None — such samples are outside the comparison (``shuffle_labels``
    leaves unlabeled samples None). From a ``tag``: flagged = tagged, every sample known.
    """
    if (field is None) == (tag is None):
        raise VoGError("give exactly one of a boolean field or a tag for the flag")
    if field is not None:
        _check_fields(samples, field)
        vals = samples.values(field)
        return np.array([bool(v) for v in vals], dtype=bool), np.array([v is not None for v in vals], dtype=bool)
    flag = np.array([tag in (t or []) for t in samples.values("tags")], dtype=bool)
    return flag, np.ones(flag.size, dtype=bool)


def _scores_and_flag(samples, vog_field, flag_field, tag):
    _, s, has = _read_scores(samples, vog_field)
    flag, known = read_flag(samples, flag_field, tag)
    use = known[has]
    if not use.any():
        raise VoGError(f"no scored sample has a value in {flag_field!r}")
    return s[use], flag[has][use]


def read_correct(samples, label_field: str = "ground_truth", pred_field: str = "predictions"):
    """``(correct, has_both)``: per sample whether ``pred_field.label == label_field.label``,
    and whether both labels are present (samples without either are not counted)."""
    _check_fields(samples, label_field, pred_field)
    labels = samples.values(f"{label_field}.label")
    preds = samples.values(f"{pred_field}.label")
    both = np.array([l is not None and p is not None for l, p in zip(labels, preds)], dtype=bool)
    correct = np.array([l == p for l, p in zip(labels, preds)], dtype=bool)
    return correct, both


def error_by_bin_from_view(samples, vog_field: str = "vog", label_field: str = "ground_truth",
                           pred_field: str = "predictions", bins: int = 10) -> BinnedError:
    """:func:`error_by_bin` over the samples of a dataset/view that have a score, a label and a prediction."""
    _, s, has = _read_scores(samples, vog_field)
    correct, both = read_correct(samples, label_field, pred_field)
    use = both[has]
    if not use.any():
        raise VoGError(f"no scored sample has both {label_field!r} and {pred_field!r} labels")
    return error_by_bin(s[use], correct[has][use], bins)


decile_error_from_view = error_by_bin_from_view  # the name used in the issue


def welch_ttest_from_view(samples, vog_field: str = "vog", flag_field: str | None = "label_shuffled",
                          tag: str | None = None, alternative: str = "two-sided") -> TTest:
    """:func:`welch_ttest` of flagged vs other scored samples (boolean field True vs False — None
    is left out — or tagged vs untagged)."""
    return welch_ttest(*_scores_and_flag(samples, vog_field, flag_field, tag), alternative)


def share_by_percentile_from_view(samples, vog_field: str = "vog", flag_field: str | None = None,
                                  tag: str | None = "ood", bins: int = 10) -> BinnedShare:
    """:func:`share_by_percentile` of samples tagged ``tag`` (or True in ``flag_field``; None left out)."""
    return share_by_percentile(*_scores_and_flag(samples, vog_field, flag_field, tag), bins)


def detection_metrics_from_view(samples, vog_field: str = "vog", flag_field: str | None = None,
                                tag: str | None = None, ks: Sequence[int] = (10, 50, 100)) -> Detection:
    """:func:`detection_metrics` of VoG against a boolean field (None left out) or a tag."""
    return detection_metrics(*_scores_and_flag(samples, vog_field, flag_field, tag), ks)


def rank_stability_from_view(samples, vog_fields: Sequence[str], k: int | None = None) -> RankStability:
    """:func:`rank_stability` of several score fields, over samples scored in all of them."""
    if len(vog_fields) < 2:
        raise VoGError("give at least two VoG fields to compare")
    _check_fields(samples, *vog_fields)
    cols = samples.values(list(vog_fields))
    keep = [all(c[i] is not None for c in cols) for i in range(len(cols[0]))]
    arrs = [np.array([v for v, k_ in zip(c, keep) if k_], dtype=np.float64) for c in cols]
    return rank_stability(*arrs, k=k, names=list(vog_fields))


def per_class_from_view(samples, vog_field: str = "vog", label_field: str = "ground_truth",
                        pred_field: str = "predictions", classes: Sequence[str] | None = None,
                        raw: bool = True) -> PerClassVoG:
    """:func:`per_class_vog_vs_fnr` reading ``{vog_field}_raw`` (``raw=True``, when it exists).

    ``classes`` defaults to the dataset's classes for ``label_field``, else the sorted labels.
    """
    field_name = vog_field
    if raw and not vog_field.endswith("_raw") and f"{vog_field}_raw" in samples.get_field_schema():
        field_name = f"{vog_field}_raw"
    _, s, has = _read_scores(samples, field_name)
    _check_fields(samples, label_field, pred_field)
    labels = np.array(samples.values(f"{label_field}.label"), dtype=object)[has]
    preds = np.array(samples.values(f"{pred_field}.label"), dtype=object)[has]
    if classes is None:
        classes = samples._dataset.classes.get(label_field) or samples._dataset.default_classes or None
    return per_class_vog_vs_fnr(s, labels, preds, classes)


def window_comparison_from_view(samples, early_field: str = "vog_early", late_field: str = "vog_late",
                                label_field: str = "ground_truth", pred_field: str = "predictions",
                                bins: int = 10) -> WindowComparison:
    """:func:`window_decile_comparison` over samples with both window scores, a label and a prediction."""
    _check_fields(samples, early_field, late_field)
    early, late = samples.values([early_field, late_field])
    correct, both = read_correct(samples, label_field, pred_field)
    keep = np.array([e is not None and l is not None for e, l in zip(early, late)], dtype=bool) & both
    if not keep.any():
        raise VoGError(f"no sample has {early_field!r}, {late_field!r}, a label and a prediction")
    e = np.array(early, dtype=object)[keep].astype(np.float64)
    l = np.array(late, dtype=object)[keep].astype(np.float64)
    return window_decile_comparison(e, l, correct[keep], bins)
