"""The numbers of one view at a glance, as the App's panel draws them: equal-width histogram,
quantile-decile table with error rates, class means, and a description of the scores.

Pure numpy; the deciles are the analyses' own quantile bins (:func:`~.common.assign_bins`), so
panel and report agree. Inputs may hold None (a sample without a score, label or prediction).
"""

from __future__ import annotations

import numpy as np

from .common import assign_bins

NUM_BINS = 20
NUM_DECILES = 10


def finite(values) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, mask)``: float64 scores with None/NaN removed, and which inputs were kept."""
    arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    mask = np.isfinite(arr)
    return arr[mask], mask


def describe(scores) -> dict:
    """``{"n", "mean", "std", "min", "median", "max"}`` of finite scores (population std);
    the statistics are None for no scores."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return {"n": 0, "mean": None, "std": None, "min": None, "median": None, "max": None}
    return {
        "n": int(s.size),
        "mean": float(s.mean()),
        "std": float(s.std()),
        "min": float(s.min()),
        "median": float(np.median(s)),
        "max": float(s.max()),
    }


def histogram(scores, bins: int = NUM_BINS) -> dict:
    """Equal-width histogram: ``{"edges": (bins+1,), "counts": (bins,)}``.

    The last bin is closed on the right (numpy's convention), so every score is counted once.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return {"edges": [], "counts": []}
    lo, hi = float(scores.min()), float(scores.max())
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(scores, bins=bins, range=(lo, hi))
    return {"edges": edges.tolist(), "counts": counts.astype(int).tolist()}


def decile_of(scores, num: int = NUM_DECILES) -> np.ndarray:
    """Decile (0 = lowest VoG … num-1 = highest) of each score by rank: :func:`assign_bins`."""
    if np.asarray(scores).size == 0:  # a view with no scored sample: no bins (assign_bins refuses it)
        return np.zeros(0, dtype=np.int64)
    return assign_bins(scores, num)


def decile_table(scores, errors=None, num: int = NUM_DECILES) -> list[dict]:
    """One row per non-empty decile: ``decile`` (1-based), ``count``, ``lo``/``hi`` (score range),
    ``mean`` (mean score) and ``error_rate`` (share of ``errors`` that are True among the samples
    whose error is known; None without ``errors``).

    Args:
        scores: (n,) VoG scores.
        errors: optional (n,) of True (misclassified), False (correct) or None (unknown).
    """
    scores = np.asarray(scores, dtype=np.float64)
    d = decile_of(scores, num)
    rows = []
    for k in range(num):
        sel = d == k
        if not sel.any():
            continue
        row = {
            "decile": k + 1,
            "count": int(sel.sum()),
            "lo": float(scores[sel].min()),
            "hi": float(scores[sel].max()),
            "mean": float(scores[sel].mean()),
            "error_rate": None,
        }
        if errors is not None:
            known = [bool(e) for e, s in zip(errors, sel) if s and e is not None]
            row["error_rate"] = float(np.mean(known)) if known else None
        rows.append(row)
    return rows


def class_means(scores, labels) -> list[dict]:
    """Mean VoG per class, highest first: ``[{"label", "mean", "count"}]``; None labels are skipped."""
    scores = np.asarray(scores, dtype=np.float64)
    groups: dict[str, list[float]] = {}
    for s, lab in zip(scores, labels):
        if lab is not None:
            groups.setdefault(lab, []).append(s)
    rows = [{"label": lab, "mean": float(np.mean(v)), "count": len(v)} for lab, v in groups.items()]
    return sorted(rows, key=lambda r: (-r["mean"], r["label"]))


def classification_errors(labels, predictions) -> list:
    """``True`` where the prediction differs from the label, None where either is missing."""
    return [None if (t is None or p is None) else t != p for t, p in zip(labels, predictions)]
