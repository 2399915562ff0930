"""Shared pieces of the VoG analyses: result dataclasses' JSON form, input checks, quantile bins, top-k.

The conventions (shapes, tie-breaking, NaN for undefined statistics) are documented in
:mod:`fiftyone_vog.analysis`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..errors import VoGError


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
