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

__all__ = [
    "DetectorTable",
    "detector_table",
    "detector_table_from_view",
    "COMPANION_SIGNS",
    "score_direction",
    "score_verdict",
    "detector_lines",
    "VERDICT_QUESTIONS",
]


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


# -- which score to open: the verdict the report's summary and the App's panel both print --------
#: The questions of the verdict, in its order: ``{question: (its words, the flag it is measured on)}``;
#: a detector table answers a question when it was built for that flag (its ``kind``).
VERDICT_QUESTIONS = {
    "label-errors": ("label errors", "the shuffled labels"),
    "ood": ("out-of-distribution", "the OOD-marked samples"),
}


def _rows(table) -> list[dict]:
    return table.rows if isinstance(table, DetectorTable) else list(table.get("rows", []))


def _best_row(table, candidates=None) -> dict | None:
    """The first row (the rows are best first) whose AUROC is defined and, with ``candidates``,
    whose score is one of them; None when there is none."""
    for r in _rows(table) if table else []:
        a = r.get("auroc")
        if a is not None and not math.isnan(a) and (candidates is None or r["score"] in candidates):
            return r
    return None


def score_verdict(tables: Mapping[str, object], beside=None) -> str:
    """One line: which field to open for label errors and which for OOD, with its AUROC.

    Args:
        tables: ``{question: detector table}`` for the questions of :data:`VERDICT_QUESTIONS` the
            data has a flag for (a :class:`DetectorTable` or its ``to_dict()``). The answer is the
            table's best score among the question's candidates
            (:data:`~fiftyone_vog.options.QUESTION_SCORES`: for OOD only scores that do not read
            the label, since with ``label_mode="auto"`` a labeled sample's loss and margin are of
            its label and an OOD sample's of its prediction). A question without a table, or
            without a defined AUROC, is answered by the candidates' measured order instead, and
            says so.
        beside: the run's :class:`~fiftyone_vog.core.naming.ScoreFields`, which names the
            candidates; without it every score of a table is a candidate and an unmeasured
            answer names no field.
    """
    from ..options import QUESTION_SCORES

    parts = []
    for question, (what, flag) in VERDICT_QUESTIONS.items():
        candidates = None
        if beside is not None:
            candidates = {f for f in map(beside.part, QUESTION_SCORES[question]) if f}
        best = _best_row(tables.get(question), candidates)
        if best is not None:
            parts.append(f"for {what} open {best['score']} (AUROC {best['auroc']:.3f} on {flag} here)")
        else:
            field = beside.preferred(question) if beside is not None else None
            parts.append(
                f"for {what} open {field or 'its score'} (not measured on this data: the best in docs/results.md)"
            )
    return "Which score: " + "; ".join(parts)


def detector_lines(flag: str, table, indent: str = "    ") -> list[str]:
    """A detector table as aligned text lines, best first: a heading, then one row per score (a
    table without a defined AUROC, e.g. nothing flagged, is its heading alone, saying so)."""
    t = table.to_dict() if isinstance(table, DetectorTable) else table
    rows = _rows(t)
    head = f"{indent}{flag}: {t['n_flagged']} of {t['n']} flagged"
    if _best_row(t) is None:
        return [head + " (nothing to rank: every sample or none is flagged)"]
    f = lambda v: "n/a" if v is None or v != v else f"{v:.3f}"  # noqa: E731
    w = max([len(r["score"]) for r in rows] + [5])
    lines = [head + f" (precision@k at k = {t['k']})", f"{indent}  {'score':{w}}  flags  AUROC  AUPRC  precision@k"]
    lines += [
        f"{indent}  {r['score']:{w}}  {r['direction']:5}  {f(r['auroc']):>5}  {f(r['auprc']):>5}  {f(r['precision_at_k']):>5}"
        for r in rows
    ]
    return lines
