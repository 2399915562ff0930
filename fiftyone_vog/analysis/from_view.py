"""The VoG analyses read from a FiftyOne dataset or view by field name.

Each ``*_from_view`` function reads the arrays that the matching function of
:mod:`fiftyone_vog.analysis` takes, drops samples that lack a value, and calls it.
``samples`` is any FiftyOne dataset or view; nothing here imports FiftyOne itself.
These names are also reachable as ``fiftyone_vog.analysis.<name>``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import VoGError
from .binned import (
    BinnedError,
    BinnedShare,
    TTest,
    WindowComparison,
    error_by_bin,
    share_by_percentile,
    welch_ttest,
    window_decile_comparison,
)
from .ranking import (
    Detection,
    PerClassVoG,
    RankStability,
    detection_metrics,
    per_class_vog_vs_fnr,
    rank_stability,
)

#: The wrappers (each ``*_from_view`` reads arrays by field name and calls its analysis).
FROM_VIEW = (
    "error_by_bin_from_view",
    "decile_error_from_view",
    "welch_ttest_from_view",
    "share_by_percentile_from_view",
    "detection_metrics_from_view",
    "rank_stability_from_view",
    "per_class_from_view",
    "window_comparison_from_view",
)
__all__ = [*FROM_VIEW, "read_flag", "read_correct"]


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


def error_by_bin_from_view(
    samples, vog_field: str = "vog", label_field: str = "ground_truth", pred_field: str = "predictions", bins: int = 10
) -> BinnedError:
    """:func:`error_by_bin` over the samples of a dataset/view that have a score, a label and a prediction."""
    _, s, has = _read_scores(samples, vog_field)
    correct, both = read_correct(samples, label_field, pred_field)
    use = both[has]
    if not use.any():
        raise VoGError(f"no scored sample has both {label_field!r} and {pred_field!r} labels")
    return error_by_bin(s[use], correct[has][use], bins)


decile_error_from_view = error_by_bin_from_view  # the name used in the issue


def welch_ttest_from_view(
    samples,
    vog_field: str = "vog",
    flag_field: str | None = "label_shuffled",
    tag: str | None = None,
    alternative: str = "two-sided",
) -> TTest:
    """:func:`welch_ttest` of flagged vs other scored samples (boolean field True vs False — None
    is left out — or tagged vs untagged)."""
    return welch_ttest(*_scores_and_flag(samples, vog_field, flag_field, tag), alternative)


def share_by_percentile_from_view(
    samples, vog_field: str = "vog", flag_field: str | None = None, tag: str | None = "ood", bins: int = 10
) -> BinnedShare:
    """:func:`share_by_percentile` of samples tagged ``tag`` (or True in ``flag_field``; None left out)."""
    return share_by_percentile(*_scores_and_flag(samples, vog_field, flag_field, tag), bins)


def detection_metrics_from_view(
    samples,
    vog_field: str = "vog",
    flag_field: str | None = None,
    tag: str | None = None,
    ks: Sequence[int] = (10, 50, 100),
) -> Detection:
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


def per_class_from_view(
    samples,
    vog_field: str = "vog",
    label_field: str = "ground_truth",
    pred_field: str = "predictions",
    classes: Sequence[str] | None = None,
    raw: bool = True,
) -> PerClassVoG:
    """:func:`per_class_vog_vs_fnr` reading ``{vog_field}_raw`` (``raw=True``, when it exists).

    ``classes`` defaults to the dataset's classes for ``label_field``, else the sorted labels.
    """
    from ..core.naming import score_fields

    field_name = score_fields(samples, vog_field).raw_or_score if raw else vog_field
    _, s, has = _read_scores(samples, field_name)
    _check_fields(samples, label_field, pred_field)
    labels = np.array(samples.values(f"{label_field}.label"), dtype=object)[has]
    preds = np.array(samples.values(f"{pred_field}.label"), dtype=object)[has]
    if classes is None:
        from ..inputs.labels import declared_classes

        classes = declared_classes(samples, label_field)
    return per_class_vog_vs_fnr(s, labels, preds, classes)


def window_comparison_from_view(
    samples,
    early_field: str = "vog_early",
    late_field: str = "vog_late",
    label_field: str = "ground_truth",
    pred_field: str = "predictions",
    bins: int = 10,
) -> WindowComparison:
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
