"""VoG as a ranking: detection of flagged samples, agreement between rankings, per-class correlation.

Pure numpy/scipy functions on arrays; the conventions (top-k ties, NaN for undefined
statistics, :class:`~fiftyone_vog.VoGError` for malformed input) are those of
:mod:`fiftyone_vog.analysis`, which re-exports everything here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import VoGError
from .common import _as_bool, _as_scores, _rate, _Result, _top_k

__all__ = [
    "Detection",
    "RankStability",
    "PerClassVoG",
    "detection_metrics",
    "rank_stability",
    "per_class_vog_vs_fnr",
]


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
        auroc=auroc,
        auprc=auprc,
        base_rate=pos / n,
        precision_at_k=prec,
        recall_at_k=rec,
        r_precision=r_prec,
        n=n,
        n_flagged=pos,
        note=note,
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
            pairs.append(
                {
                    "a": names[i],
                    "b": names[j],
                    "spearman": r,
                    "top_k_overlap": top[i, j],
                    "bottom_k_overlap": bottom[i, j],
                }
            )
    for i in constant:
        rho[names.index(i), names.index(i)] = float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean_rho = float(np.mean([p["spearman"] for p in pairs]))
    return RankStability(
        names=names,
        k=k,
        spearman=rho.tolist(),
        top_k_overlap=top.tolist(),
        bottom_k_overlap=bottom.tolist(),
        pairs=pairs,
        mean_spearman=mean_rho,
        mean_top_k_overlap=float(np.mean([p["top_k_overlap"] for p in pairs])),
        n=n,
        note=f"constant scores (no ranking): {', '.join(constant)}" if constant else "",
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
        raise VoGError(
            f"scores, labels and predictions must have the same length; got {s.size}, {labels.size}, {preds.size}"
        )
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
        classes=[str(c) for c in classes],
        counts=counts,
        mean_vog=means,
        fnr=fnrs,
        pearson=r,
        pearson_p=rp,
        spearman=rho,
        spearman_p=rhop,
        n_classes_used=len(used),
        n=int(keep.sum()),
        n_skipped=int((~keep).sum()),
        note=note,
    )
