"""Saved views over VoG scores: ``vog-high``, ``vog-low``, ``vog-shuffled-labels``, ``vog-ood``.

Every view is an expression (``match`` on a threshold or a marker, then ``sort_by``), never a
list of sample ids, so it follows later edits of the fields it reads: a sample whose score
crosses the threshold, or whose flag or tag changes, enters or leaves the view when it is
loaded again. The thresholds are numbers fixed when the views are saved; recompute VoG and
call :func:`save_vog_views` again to move them.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from .engine import VoGError

logger = logging.getLogger(__name__)

VOG_HIGH = "vog-high"
VOG_LOW = "vog-low"
VOG_SHUFFLED = "vog-shuffled-labels"
VOG_OOD = "vog-ood"

#: The saved views :func:`save_vog_views` creates, in the order it creates them.
VOG_VIEW_NAMES = (VOG_HIGH, VOG_LOW, VOG_SHUFFLED, VOG_OOD)


def vog_view_names() -> list[str]:
    """Names of the saved views :func:`save_vog_views` creates."""
    return list(VOG_VIEW_NAMES)


class VoGViews(dict):
    """``{view name: DatasetView}`` of the views saved, plus ``skipped``: ``{view name: reason}``.

    Attributes:
        skipped: views not saved because their marker (field or tag) does not exist.
        thresholds: ``{"high": t_high, "low": t_low}``, the VoG cut-offs used.
        scored: number of samples with a score (not None, not NaN).
        k: the slice size before ties, ``ceil(percentile / 100 × scored)``.
    """

    def __init__(self, views=(), skipped=None, thresholds=None, scored=0, k=0):
        super().__init__(views)
        self.skipped = dict(skipped or {})
        self.thresholds = dict(thresholds or {})
        self.scored, self.k = scored, k

    def counts(self) -> dict[str, int]:
        """``{view name: number of samples}`` of the saved views."""
        return {name: len(view) for name, view in self.items()}

    def __repr__(self):
        return f"VoGViews(saved={self.counts()}, skipped={self.skipped})"


def percentile_thresholds(values, percentile: float) -> tuple[float, float, int, int]:
    """``(t_high, t_low, k, n)``: the k-th largest and k-th smallest of ``values``.

    ``k = ceil(percentile / 100 × n)`` over the ``n`` values that are not None or NaN, so any
    percentile > 0 selects at least one sample. A sample belongs to the top slice when its
    score is ``>= t_high`` and to the bottom slice when ``<= t_low``; samples tied with the
    threshold are all included, so a slice can hold more than ``k`` samples when scores tie.
    """
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        raise VoGError("no sample has a VoG score; run fov.compute_vog first")
    n = int(v.size)
    k = min(n, max(1, math.ceil(percentile * n / 100.0 - 1e-9)))  # 1e-9: float dust must not add a sample
    s = np.sort(v)
    return float(s[n - k]), float(s[k - 1]), k, n


def _check_vog_field(dataset, vog_field):
    import fiftyone as fo

    schema = dataset.get_field_schema()
    if vog_field not in schema:
        raise VoGError(
            f"dataset {dataset.name!r} has no field {vog_field!r}; score it first with "
            f"fov.compute_vog(dataset, checkpoints, vog_field={vog_field!r}) (CLI: fiftyone-vog compute)"
        )
    if not isinstance(schema[vog_field], (fo.FloatField, fo.IntField)):
        raise VoGError(f"field {vog_field!r} is a {type(schema[vog_field]).__name__}, not a numeric VoG score")


def _bool_field_exists(samples, name) -> str | None:
    """None when ``name`` is a boolean sample field, else why it cannot mark samples."""
    import fiftyone as fo

    field = samples.get_field_schema().get(name)
    if field is None:
        return f"field {name!r} does not exist"
    if not isinstance(field, fo.BooleanField):
        return f"field {name!r} is a {type(field).__name__}, not a BooleanField"
    return None


def save_vog_views(
    dataset,
    vog_field: str = "vog",
    percentile: float = 10,
    shuffled_field: str = "label_shuffled",
    ood_field: str | None = None,
    ood_tag: str = "ood",
    overwrite: bool = True,
) -> VoGViews:
    """Save the VoG views on ``dataset`` and return them.

    Views (each also gets a description saying what it holds):
      - ``vog-high``: the top ``percentile``% of scored samples, ``vog_field >= t_high``,
        sorted by VoG descending (hardest first).
      - ``vog-low``: the bottom ``percentile``%, ``vog_field <= t_low``, sorted by VoG
        **ascending** (lowest first). Each view leads with the samples that define it: opening
        ``vog-low`` shows the easiest, most prototypical samples first, which is what one opens
        it for; with a descending sort its first page would be the samples next to the cut-off.
      - ``vog-shuffled-labels``: samples whose boolean ``shuffled_field`` is True (written by
        :func:`fiftyone_vog.shuffle_labels`), VoG descending.
      - ``vog-ood``: samples whose boolean ``ood_field`` is True when ``ood_field`` is given,
        else samples tagged ``ood_tag``; VoG descending.

    Thresholds: over the ``n`` samples whose score is not None or NaN, ``k = ceil(percentile/100
    × n)``; ``t_high`` is the k-th largest score and ``t_low`` the k-th smallest. Ties at a
    threshold are all included (a slice may then hold more than ``k`` samples); samples without
    a score are in neither slice. In the marker views, samples without a score sort last.

    Args:
        dataset: a FiftyOne dataset, or a view of one (the slices are then taken within it;
            the views are saved on its dataset).
        vog_field: the score field written by :func:`fiftyone_vog.compute_vog`.
        percentile: size of the high and low slices, in percent, ``0 < percentile <= 100``.
        shuffled_field: boolean field marking samples with shuffled labels.
        ood_field: boolean field marking out-of-distribution samples; ``None`` to use ``ood_tag``.
        ood_tag: sample tag marking out-of-distribution samples.
        overwrite: replace saved views of the same names (default); ``False`` raises if one exists.

    Returns:
        :class:`VoGViews`, a ``{name: DatasetView}`` dict of the views saved. A marker view whose
        field or tag does not exist is skipped, not an error: its reason is in ``.skipped`` and
        logged as a warning, and a saved view of that name left from an earlier call is deleted
        when ``overwrite`` (it would describe a marker that is gone).

    Raises:
        VoGError: ``vog_field`` missing or holding no score, a bad percentile, or a view that
            exists while ``overwrite=False``.
    """
    from fiftyone import ViewField as F

    ds = dataset._dataset
    try:
        percentile = float(percentile)
    except (TypeError, ValueError):
        raise VoGError(f"percentile must be a number in (0, 100], got {percentile!r}") from None
    if not 0 < percentile <= 100:
        raise VoGError(f"percentile must be in (0, 100], got {percentile:g}; e.g. 10 for the top and bottom 10%")
    _check_vog_field(ds, vog_field)
    if not overwrite:
        taken = [n for n in VOG_VIEW_NAMES if ds.has_saved_view(n)]
        if taken:
            raise VoGError(f"saved view {taken[0]!r} already exists on {ds.name!r}; pass overwrite=True to replace it")

    t_high, t_low, k, n = percentile_thresholds(dataset.values(vog_field), percentile)
    score = F(vog_field)
    hardest_first = dict(reverse=True)
    views, descriptions, skipped = {}, {}, {}

    views[VOG_HIGH] = dataset.match(score >= t_high).sort_by(vog_field, **hardest_first)
    descriptions[VOG_HIGH] = f"top {percentile:g}% by {vog_field} (>= {t_high:.6g}), hardest first"
    # `>= -inf` drops None and NaN, which MongoDB orders below every number
    views[VOG_LOW] = dataset.match((score <= t_low) & (score >= float("-inf"))).sort_by(vog_field)
    descriptions[VOG_LOW] = f"bottom {percentile:g}% by {vog_field} (<= {t_low:.6g}), lowest first"

    why = _bool_field_exists(dataset, shuffled_field)
    if why is None:
        views[VOG_SHUFFLED] = dataset.match(F(shuffled_field) == True).sort_by(vog_field, **hardest_first)  # noqa: E712
        descriptions[VOG_SHUFFLED] = f"{shuffled_field} is True (shuffled labels), by {vog_field}, hardest first"
    else:
        skipped[VOG_SHUFFLED] = f"{why}; run fov.shuffle_labels first or pass shuffled_field"

    if ood_field:
        why = _bool_field_exists(dataset, ood_field)
        if why is None:
            views[VOG_OOD] = dataset.match(F(ood_field) == True).sort_by(vog_field, **hardest_first)  # noqa: E712
            descriptions[VOG_OOD] = f"{ood_field} is True (out-of-distribution), by {vog_field}, hardest first"
        else:
            skipped[VOG_OOD] = f"{why}; pass ood_field=None to use the tag {ood_tag!r}"
    elif dataset.count_sample_tags().get(ood_tag, 0) > 0:
        views[VOG_OOD] = dataset.match_tags(ood_tag).sort_by(vog_field, **hardest_first)
        descriptions[VOG_OOD] = f"samples tagged {ood_tag!r} (out-of-distribution), by {vog_field}, hardest first"
    else:
        skipped[VOG_OOD] = f"no sample is tagged {ood_tag!r}; tag OOD samples (add_images_dir(..., tags={ood_tag!r})) or pass ood_field"

    for name, view in views.items():
        ds.save_view(name, view, description=descriptions[name], overwrite=overwrite)
    for name, reason in skipped.items():
        if overwrite and ds.has_saved_view(name):
            ds.delete_saved_view(name)
            skipped[name] = reason + f" (deleted the earlier saved view {name!r})"
        logger.warning("fiftyone-vog: saved view %r skipped: %s", name, skipped[name])
    return VoGViews(
        {name: ds.load_saved_view(name) for name in views},
        skipped=skipped,
        thresholds={"high": t_high, "low": t_low},
        scored=n,
        k=k,
    )
