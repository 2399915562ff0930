"""Class normalization of raw VoG: how variable a sample is relative to its class."""

from __future__ import annotations

import numpy as np

from ..errors import check_choice


def class_normalize(scores: np.ndarray, labels: np.ndarray, normalization: str = "zscore") -> np.ndarray:
    """Normalize raw scores within each class.

    ``zscore``: ``(v − mean_c) / std_c`` with the population std of the samples whose
    used label is ``c``; a class with one sample or zero spread gets 0.
    ``abs``: the absolute value of that. ``none``: the raw scores, unchanged.

    Args:
        scores: (n,) float raw VoG.
        labels: (n,) int used labels.
    Returns:
        (n,) float64.
    """
    check_choice("normalization", normalization, ("zscore", "abs", "none"))
    scores = np.asarray(scores, dtype=np.float64)
    if normalization == "none":
        return scores.copy()
    labels = np.asarray(labels)
    out = np.zeros_like(scores)
    for c in np.unique(labels):
        m = labels == c
        v = scores[m]
        sd = v.std()
        if v.size > 1 and sd > 0:
            out[m] = (v - v.mean()) / sd
    return np.abs(out) if normalization == "abs" else out


def class_statistics(scores: np.ndarray, labels: np.ndarray) -> dict[int, dict[str, float]]:
    """Per-class ``{label: {"mean", "std", "count"}}`` of raw scores (population std)."""
    stats = {}
    for c in np.unique(labels):
        v = np.asarray(scores)[labels == c]
        stats[int(c)] = {"mean": float(v.mean()), "std": float(v.std()), "count": int(v.size)}
    return stats
