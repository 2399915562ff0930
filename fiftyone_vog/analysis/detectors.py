"""Side by side: VoG (class-normalized and raw) and its training-dynamics companions as detectors
of one boolean flag (shuffled labels, an ``ood`` tag, misclassified), best first.

So that a user sees on their own data whether VoG adds anything to the loss. Pure numpy (the
metrics are those of :func:`fiftyone_vog.analysis.detection_metrics`); the FiftyOne wrapper is
:func:`detector_table_from_view`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import VoGError
from ..options import COMPANION_SIGNS
from .common import _as_bool, _as_scores, _Result
from .ranking import detection_metrics

__all__ = ["DetectorTable", "detector_table", "detector_table_from_view", "COMPANION_SIGNS", "score_direction"]


def score_direction(name: str) -> int:
    """+1 (high = flagged) for VoG and the loss and energy companions; −1 for margin and maxprob,
    read from the field name's last ``_`` part (``vog_margin``, ``vog_late_maxprob``)."""
    return COMPANION_SIGNS.get(name.rsplit("_", 1)[-1], 1)


@dataclass
class DetectorTable(_Result):
    """Detectors of one flag, best first.

    Attributes:
        rows: one dict per score, sorted by AUROC descending (NaN last, then by name):
            ``{"score", "direction"}`` (``"high"``: a high value flags, ``"low"``: a low one) and
            ``"auroc"``, ``"auprc"``, ``"precision_at_k"``.
        k: the k of precision@k (default: the number of flagged samples, i.e. R-precision).
        base_rate: the flagged fraction (AUPRC's and precision@k's chance level); AUROC's is 0.5.
        n, n_flagged: totals.
        note: why values are NaN, else ``""``.
    """

    rows: list[dict]
    k: int
    base_rate: float
    n: int
    n_flagged: int
    note: str = ""

    @property
    def best(self) -> str | None:
        """The name of the best detector (highest AUROC), None when every AUROC is undefined."""
        return self.rows[0]["score"] if self.rows and not math.isnan(self.rows[0]["auroc"]) else None


def detector_table(
    scores: Mapping[str, Sequence[float]], flag, k: int | None = None, directions: Mapping[str, int] | None = None
) -> DetectorTable:
    """AUROC, AUPRC and precision@k of every score in ``scores`` as a detector of ``flag``.

    Args:
        scores: ``{name: (n,) scores}``, e.g. ``{"vog": ..., "vog_raw": ..., "vog_loss": ...}``.
        flag: ``(n,)`` bool.
        k: precision@k's k (default: the number of flagged samples; capped at n).
        directions: ``{name: +1 | -1}``; a score with −1 flags its **lowest** values (it is
            negated before ranking). Default :func:`score_direction` of the name: margin and
            maxprob are −1, everything else +1.
    """
    if not scores:
        raise VoGError("detector_table needs at least one score")
    arrays = {name: _as_scores(v, name) for name, v in scores.items()}
    n = next(iter(arrays.values())).size
    if any(a.size != n for a in arrays.values()):
        raise VoGError(f"every score must have the same length; got { ({m: a.size for m, a in arrays.items()}) }")
    f = _as_bool(flag, n, "flag")
    pos = int(f.sum())
    kk = int(k) if k is not None else max(1, pos)
    if kk < 1:
        raise VoGError(f"k must be a positive integer, got {k}")
    rows, note = [], ""
    for name, a in arrays.items():
        sign = (directions or {}).get(name, score_direction(name))
        d = detection_metrics(sign * a, f, ks=(kk,))
        note = note or d.note
        rows.append(
            {
                "score": name,
                "direction": "high" if sign > 0 else "low",
                "auroc": d.auroc,
                "auprc": d.auprc,
                "precision_at_k": d.precision_at_k[kk],
            }
        )
    rows.sort(key=lambda r: (math.isnan(r["auroc"]), -r["auroc"] if not math.isnan(r["auroc"]) else 0, r["score"]))
    return DetectorTable(rows=rows, k=min(kk, n), base_rate=pos / n, n=n, n_flagged=pos, note=note)


def detector_table_from_view(
    samples,
    vog_field: str = "vog",
    flag_field: str | None = None,
    tag: str | None = None,
    misclassified: str | None = None,
    label_field: str = "ground_truth",
    fields: Sequence[str] | None = None,
    k: int | None = None,
) -> DetectorTable:
    """:func:`detector_table` over a dataset or view, for one flag: a boolean ``flag_field``
    (None values left out), a sample ``tag``, or ``misclassified`` — the name of a prediction
    field, flagging samples whose ``{misclassified}.label`` differs from ``{label_field}.label``
    (samples without either left out).

    ``fields`` (default): ``vog_field``, ``{vog_field}_raw`` and each companion field of the run
    (``{vog_field}_loss``, ``_margin``, ``_maxprob``, ``_energy``) that exists. Samples that
    lack a value in any of them are left out.
    """
    from .from_view import _check_fields, read_correct, read_flag

    if sum(x is not None for x in (flag_field, tag, misclassified)) != 1:
        raise VoGError(
            "give exactly one flag: flag_field (a boolean field), tag, or misclassified (a prediction field)"
        )
    if fields is None:
        from ..core.naming import score_fields

        beside = score_fields(samples, vog_field)
        fields = [vog_field, *([beside.raw] if beside.raw else []), *beside.companions.values()]
    _check_fields(samples, *fields)
    values = {f: samples.values(f) for f in fields}
    if misclassified is not None:
        correct, known = read_correct(samples, label_field, misclassified)
        flag = ~correct
    else:
        flag, known = read_flag(samples, flag_field, tag)
    keep = known.copy()
    for v in values.values():
        keep &= np.array([x is not None and x == x for x in v], dtype=bool)
    if not keep.any():
        raise VoGError(f"no sample has a value in every one of {list(fields)} and a known flag")
    arrays = {f: np.array(v, dtype=object)[keep].astype(np.float64) for f, v in values.items()}
    return detector_table(arrays, flag[keep], k=k)
