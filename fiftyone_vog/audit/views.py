"""Saved views over VoG scores: ``vog-high``, ``vog-low``, ``vog-shuffled-labels``, ``vog-ood``,
``vog-label-errors``, ``vog-likely-ood``.

Every view is an expression (``match`` on a threshold or a marker, then ``sort_by``), never a
list of sample ids, so it follows later edits of the fields it reads: a sample whose score
crosses the threshold, or whose flag or tag changes, enters or leaves the view when it is
loaded again. The thresholds are numbers fixed when the views are saved; recompute VoG and
call :func:`save_vog_views` again to move them.

``name_prefix`` names another set of views (``vog-test`` → ``vog-test-high``, …) so that several
score fields or splits each keep their own; ``names`` renames or leaves out single views.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import numpy as np

from ..core import ownership
from ..core.naming import companion_field_name, score_fields
from ..errors import VoGError
from ..options import (
    COMPANION_SIGNS,
    DEFAULT_LABEL_ERROR_RULE,
    DEFAULT_VIEW_PREFIX,
    EVEN_ODDS_LOSS,
    QUESTION_SCORES,
    VIEW_KINDS,
    VIEW_NAMES,
    OptionError,
    check_label_error_rule,
    check_percentile,
)

logger = logging.getLogger(__name__)

#: The saved views :func:`save_vog_views` creates, in the order it creates them, and their kinds
#: (a view is named ``{name_prefix}-{kind}``): the options table's.
VOG_VIEW_NAMES, VIEW_KINDS = VIEW_NAMES, VIEW_KINDS
VOG_HIGH, VOG_LOW, VOG_SHUFFLED, VOG_OOD, VOG_LABEL_ERRORS, VOG_LIKELY_OOD = VOG_VIEW_NAMES
#: The companion that ranks label errors: the mean loss of the used label over the checkpoints,
#: the strongest label-error score we measured (docs/results.md).
LABEL_ERROR_COMPANION = "loss"
DEFAULT_PREFIX = DEFAULT_VIEW_PREFIX


def vog_view_names(name_prefix: str | None = None) -> list[str]:
    """Names of the saved views :func:`save_vog_views` creates with this ``name_prefix``.

    ``None`` gives the default names ``vog-high``, ``vog-low``, ``vog-shuffled-labels``,
    ``vog-ood``, ``vog-label-errors``, ``vog-likely-ood``; ``"vog-test"`` gives ``vog-test-high``,
    … ``vog-test-likely-ood``.
    """
    return list(view_names(name_prefix).values())


def view_names(name_prefix: str | None = None, names: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """``{kind: saved view name}`` for :func:`save_vog_views`'s ``name_prefix`` and ``names``.

    Every kind of :data:`VIEW_KINDS` is named ``{name_prefix}-{kind}`` unless ``names`` gives it
    another name; a kind that ``names`` maps to ``None`` is left out.
    """
    if name_prefix is None:
        name_prefix = DEFAULT_PREFIX
    if not isinstance(name_prefix, str) or not name_prefix.strip() or name_prefix != name_prefix.strip():
        raise VoGError(f"name_prefix={name_prefix!r}: use a non-empty name without surrounding spaces, e.g. 'vog-test'")
    out = {kind: f"{name_prefix}-{kind}" for kind in VIEW_KINDS}
    if names is not None:
        if not isinstance(names, Mapping):
            raise VoGError(f"names must be a mapping kind → view name (kinds: {', '.join(VIEW_KINDS)}), got {names!r}")
        for kind, name in names.items():
            if kind not in VIEW_KINDS:
                raise VoGError(f"names: unknown view kind {kind!r}; the kinds are {', '.join(VIEW_KINDS)}")
            if name is None:
                del out[kind]
            elif not isinstance(name, str) or not name.strip():
                raise VoGError(f"names[{kind!r}]={name!r}: give a non-empty view name, or None to not save that view")
            else:
                out[kind] = name
    seen = {}
    for kind, name in out.items():
        if name in seen:
            raise VoGError(f"views {seen[name]!r} and {kind!r} would both be named {name!r}; give them different names")
        seen[name] = kind
    return out


class VoGViews(dict):
    """``{view name: DatasetView}`` of the views saved, plus ``skipped``: ``{view name: reason}``.

    Attributes:
        names: ``{kind: view name}`` of every view the call was asked for (kinds in :data:`VIEW_KINDS`).
        skipped: views not saved because their marker (field or tag) does not exist.
        thresholds: ``{"high": t_high, "low": t_low}``, the VoG cut-offs used, and
            ``"label-errors"``: the loss cut-off of ``vog-label-errors`` when it was saved
            (under the ``"even-odds"`` rule the smallest float above ln 2).
        scored: number of samples with a score (not None, not NaN).
        k: the slice size before ties, ``ceil(percentile / 100 × scored)``.
        sorted_by: ``{view name: score field}`` each saved view is sorted by (see
            :func:`save_vog_views`: a marker view may be sorted by another VoG field).
    """

    def __init__(self, views=(), skipped=None, thresholds=None, scored=0, k=0, names=None, sorted_by=None):
        super().__init__(views)
        self.names = dict(names or {})
        self.sorted_by = dict(sorted_by or {})
        self.skipped = dict(skipped or {})
        self.thresholds = dict(thresholds or {})
        self.scored, self.k = scored, k

    def counts(self) -> dict[str, int]:
        """``{view name: number of samples}`` of the saved views."""
        return {name: len(view) for name, view in self.items()}

    def table(self) -> list[dict]:
        """One row per saved view: ``{"view", "samples", "sorted_by"}``."""
        return [
            {"view": name, "samples": len(view), "sorted_by": self.sorted_by.get(name)} for name, view in self.items()
        ]

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


def label_error_threshold(losses, rule: str, percentile: float) -> float:
    """The cut-off of ``vog-label-errors``: a sample is in it when its score is ``>=`` this.

    ``rule="even-odds"``: ln 2 for any data (a mean cross-entropy above it means the used label's
    geometric-mean probability over the checkpoints was below 1/2), so the view's size is the
    number of such samples; ``"percentile"``: the k-th largest score, as
    :func:`percentile_thresholds` (``losses`` may then hold None and NaN).
    """
    if rule == "even-odds":
        return float(np.nextafter(EVEN_ODDS_LOSS, np.inf))  # strictly above ln 2
    return percentile_thresholds(losses, percentile)[0]


def _numeric(schema, name) -> bool:
    import fiftyone as fo

    return isinstance(schema.get(name), (fo.FloatField, fo.IntField))


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
    name_prefix: str | None = None,
    names: Mapping[str, str | None] | None = None,
    label_error_field: str | None = None,
    label_error_rule: str | None = None,
) -> VoGViews:
    """Save the VoG views on ``dataset`` and return them.

    Views (each also gets a description saying what it holds), named ``{name_prefix}-{kind}``:
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
      - ``vog-label-errors``: the likely label errors, highest ``label_error_field`` first
        (default: the run's recorded mean-loss companion, ``{vog_field}_loss``). Which samples:
        ``label_error_rule="even-odds"`` (the default for the run's loss) those whose mean loss of
        the used label is above ln 2 — their label's geometric-mean probability over the
        checkpoints is below 1/2 — so the data sets the size; ``"percentile"`` (the default for a
        ``label_error_field`` of yours) the top ``percentile``%. Skipped, with the reason, when the
        run recorded no loss companion (``companions=False``; a field of that name that the run
        did not write, or that is not numeric, is not used).
      - ``vog-likely-ood``: every sample with a value in the run's best OOD score — the first of
        its energy, max-softmax and raw VoG fields (:data:`~fiftyone_vog.options.QUESTION_SCORES`,
        the order measured in docs/results.md) — most likely out-of-distribution first. Needs no
        OOD tag or field: the view for curation, where ``vog-ood`` needs the samples marked.

    Thresholds: over the ``n`` samples whose score is not None or NaN, ``k = ceil(percentile/100
    × n)``; ``t_high`` is the k-th largest score and ``t_low`` the k-th smallest. Ties at a
    threshold are all included (a slice may then hold more than ``k`` samples); samples without
    a score are in neither slice. In the marker views, samples without a score sort last.

    A marker view is sorted by ``vog_field`` when that scores all its samples, else by the VoG
    run field that scores most of them (the demo's OOD samples are scored in ``vog_test``, not
    ``vog``); ``.sorted_by`` says which. A marker view none of whose samples has a VoG score is
    skipped, with the reason.

    Args:
        dataset: a FiftyOne dataset, or a view of one: the thresholds are then computed over the
            view's samples only, and every saved view is the view's stages followed by the
            view's own ``match``/``sort_by`` (still expressions, saved on the view's dataset).
        vog_field: the score field written by :func:`fiftyone_vog.compute_vog`.
        percentile: size of the high and low slices, in percent, ``0 < percentile <= 100``.
        shuffled_field: boolean field marking samples with shuffled labels.
        ood_field: boolean field marking out-of-distribution samples; ``None`` to use ``ood_tag``.
        ood_tag: sample tag marking out-of-distribution samples.
        overwrite: replace saved views of the same names that save_vog_views saved (default;
            the ownership record says which: a view of that name you saved yourself is refused,
            never replaced); ``False`` raises if one exists.
        name_prefix: the views are named ``{name_prefix}-high``, ``-low``, ``-shuffled-labels``,
            ``-ood``; ``None`` for the default ``vog`` (``vog-high``, …). Use one prefix per score
            field or split, e.g. ``vog_field="vog_test", name_prefix="vog-test"``.
        names: ``{kind: name}`` overriding single names, kinds ``"high"``, ``"low"``,
            ``"shuffled-labels"``, ``"ood"``, ``"label-errors"``, ``"likely-ood"``; a kind mapped to
            ``None`` is not saved (and a saved view of its name is left alone). E.g. ``names={"ood": "vog-ood"}`` with
            ``name_prefix="vog-test"`` saves ``vog-test-high``, ``vog-test-low``,
            ``vog-test-shuffled-labels`` and ``vog-ood``.
        label_error_field: the score that ranks ``vog-label-errors`` (high = likely wrong label);
            default: the loss companion the run ``vog_field`` recorded.
        label_error_rule: ``"even-odds"`` or ``"percentile"`` (above); None: ``"even-odds"`` for
            the run's loss, ``"percentile"`` for a ``label_error_field`` you name.

    Returns:
        :class:`VoGViews`, a ``{name: DatasetView}`` dict of the views saved. A marker view whose
        field or tag does not exist (or, for the tag, marks no sample of ``dataset``) is skipped,
        not an error: its reason is in ``.skipped`` and logged as a warning. When ``overwrite``,
        a saved view of that name that an earlier call **over the same samples and score field**
        saved (by the ownership record) is deleted (it would describe a marker that is gone); a
        view of that name saved by a call over other samples or another field (say the test
        split's ``vog-ood``), or not by save_vog_views at all, is kept.

    Raises:
        VoGError: ``vog_field`` missing or holding no score, a bad percentile, prefix, names or
            rule, a ``label_error_field`` that is not numeric (or ``"even-odds"`` with one), a
            view that exists while ``overwrite=False``, or a saved view of one of the names that
            save_vog_views did not save (checked before any view is saved).
    """
    from fiftyone import ViewField as F

    ds = dataset._dataset
    try:
        percentile = check_percentile(percentile)  # the rule the App's form checks too
        label_error_rule = check_label_error_rule(label_error_rule)
    except OptionError as e:
        raise VoGError(str(e)) from None
    kind_names = view_names(name_prefix, names)
    _check_vog_field(ds, vog_field)
    schema = ds.get_field_schema()
    beside = score_fields(dataset, vog_field)
    if label_error_field is not None:
        if not _numeric(schema, label_error_field):
            what = (
                "does not exist"
                if label_error_field not in schema
                else f"is a {type(schema[label_error_field]).__name__}"
            )
            raise VoGError(
                f"label_error_field={label_error_field!r} {what}; name a numeric score field (high = likely wrong label)"
            )
        if label_error_rule == "even-odds" and label_error_field != beside.companions.get(LABEL_ERROR_COMPANION):
            raise VoGError(
                f"label_error_rule='even-odds' thresholds the run's mean loss; {label_error_field!r} is not it: "
                "pass label_error_rule='percentile'"
            )
    if not overwrite:
        taken = [n for n in kind_names.values() if ds.has_saved_view(n)]
        if taken:
            raise VoGError(f"saved view {taken[0]!r} already exists on {ds.name!r}; pass overwrite=True to replace it")

    t_high, t_low, k, n = percentile_thresholds(dataset.values(vog_field), percentile)
    score = F(vog_field)
    hardest_first = dict(reverse=True)
    views, descriptions, skipped = {}, {}, {}

    sorted_by = {}

    def add(kind, view, description, field=vog_field):
        if kind in kind_names:
            views[kind_names[kind]] = view
            descriptions[kind_names[kind]] = description
            sorted_by[kind_names[kind]] = field

    def skip(kind, reason):
        if kind in kind_names:
            skipped[kind_names[kind]] = reason

    add(
        "high",
        dataset.match(score >= t_high).sort_by(vog_field, **hardest_first),
        f"top {percentile:g}% by {vog_field} (>= {t_high:.6g}), hardest first",
    )
    # `>= -inf` drops None and NaN, which MongoDB orders below every number
    add(
        "low",
        dataset.match((score <= t_low) & (score >= float("-inf"))).sort_by(vog_field),
        f"bottom {percentile:g}% by {vog_field} (<= {t_low:.6g}), lowest first",
    )

    def add_marked(kind, marked, what, meaning, raw=False):
        """``marked`` (the samples a marker selects), sorted hardest first by the VoG field that
        scores most of them — by its raw score with ``raw`` (for OOD samples: normalizing within the
        class a foreign image was assigned to hides what makes it foreign; docs/results.md) —
        skipped when no VoG field scores any."""
        by = _scoring_field(ds, marked, vog_field)
        if by is None:
            skip(kind, f"none of the {len(marked)} samples with {what} has a VoG score; compute VoG on them")
            return
        how = "hardest first"
        if raw and score_fields(ds, by).raw:
            by, how = score_fields(ds, by).raw, "highest raw VoG first"
        add(kind, marked.sort_by(by, **hardest_first), f"{what} ({meaning}), by {by}, {how}", field=by)

    def add_flagged(kind, field, meaning, hint, raw=False):
        """The samples whose boolean ``field`` is True, hardest first; skipped when it is absent."""
        why = _bool_field_exists(dataset, field)
        if why is None:
            add_marked(kind, dataset.match(F(field) == True), f"{field} is True", meaning, raw=raw)  # noqa: E712
        else:
            skip(kind, f"{why}; {hint}")

    if "shuffled-labels" in kind_names:
        add_flagged(
            "shuffled-labels", shuffled_field, "shuffled labels", "run fov.shuffle_labels first or pass shuffled_field"
        )

    if "ood" in kind_names:
        if ood_field:
            add_flagged(
                "ood", ood_field, "out-of-distribution", f"pass ood_field=None to use the tag {ood_tag!r}", raw=True
            )
        elif dataset.count_sample_tags().get(ood_tag, 0) > 0:
            add_marked(
                "ood", dataset.match_tags(ood_tag), f"samples tagged {ood_tag!r}", "out-of-distribution", raw=True
            )
        else:
            where = "" if dataset is ds else " in these samples"
            skip(
                "ood",
                f"no sample{where} is tagged {ood_tag!r}; tag OOD samples "
                f"(add_images_dir(..., tags={ood_tag!r})) or pass ood_field",
            )

    thresholds = {"high": t_high, "low": t_low}
    ranked_by = {}  # {view name: the score it ranks by}, where that is not vog_field
    if "label-errors" in kind_names:
        run_loss = beside.companions.get(LABEL_ERROR_COMPANION)
        loss_field = label_error_field or run_loss
        rule = label_error_rule or (DEFAULT_LABEL_ERROR_RULE if loss_field == run_loss else "percentile")
        ranked_by[kind_names["label-errors"]] = loss_field or companion_field_name(vog_field, LABEL_ERROR_COMPANION)
        loss_values = dataset.values(loss_field) if loss_field else []
        if loss_field is None:
            skip("label-errors", _why_no_companion(schema, vog_field, LABEL_ERROR_COMPANION))
        elif not any(v is not None and v == v for v in loss_values):
            skip("label-errors", f"field {loss_field!r} holds no score here; compute VoG on these samples")
        else:
            t_loss = label_error_threshold(loss_values, rule, percentile)
            thresholds["label-errors"] = t_loss
            which = (
                f"mean loss of the used label > ln 2 = {EVEN_ODDS_LOSS:.4g} (its geometric-mean probability over "
                "the checkpoints below 1/2; rule 'even-odds')"
                if rule == "even-odds"
                else f"top {percentile:g}% by {loss_field} (>= {t_loss:.6g})"
            )
            add(
                "label-errors",
                dataset.match(F(loss_field) >= t_loss).sort_by(loss_field, reverse=True),
                f"likely label errors: {which}, by {loss_field}, highest first",
                field=loss_field,
            )

    if "likely-ood" in kind_names:
        ood_score = beside.preferred("ood")
        ranked_by[kind_names["likely-ood"]] = ood_score
        scored = dataset.match(F(ood_score) >= float("-inf"))  # drops None and NaN
        if len(scored) == 0:
            skip("likely-ood", f"no sample has a value in {ood_score!r}; compute VoG on these samples")
        else:
            part = next(p for p in QUESTION_SCORES["ood"] if beside.part(p) == ood_score)
            high = COMPANION_SIGNS.get(part, 1) > 0
            add(
                "likely-ood",
                scored.sort_by(ood_score, reverse=high),
                f"likely out-of-distribution, no tag needed: every sample scored in {ood_score}, "
                f"{'highest' if high else 'lowest'} first (the run's best OOD score by the AUROCs in docs/results.md)",
                field=ood_score,
            )

    owner, base = ownership.views_owner(vog_field), _base_stages(dataset)
    fix = (
        "pass name_prefix= (or names=) to save the VoG views under other names, or delete or rename that view yourself"
    )
    for name in views:  # all checked before any is saved: only views save_vog_views saved are replaced
        ownership.check_view_replaceable(ds, name, owner, fix)
    for name, view in views.items():
        ownership.save_view(ds, name, view, owner, descriptions[name], {"base": base, "field": ranked_by.get(name)})
    for name, reason in skipped.items():
        if overwrite and ds.has_saved_view(name):
            e = ownership.entry(ds, ownership.VIEW, name)
            same = e is not None and e.owner == owner and e.options.get("base") == base
            if same and e.options.get("field") == ranked_by.get(name):
                ownership.delete_view(ds, name, owner)  # the same call's: it describes a marker that is gone
                skipped[name] = reason + f" (deleted the earlier saved view {name!r})"
            else:
                why = (
                    "fiftyone-vog did not save it" if e is None else "it was saved over other samples or another field"
                )
                skipped[name] = reason + f" (kept the saved view {name!r}: {why})"
        logger.warning("fiftyone-vog: saved view %r skipped: %s", name, skipped[name])
    return VoGViews(
        {name: ds.load_saved_view(name) for name in views},
        skipped=skipped,
        thresholds=thresholds,
        scored=n,
        k=k,
        names=kind_names,
        sorted_by=sorted_by,
    )


def _why_no_companion(schema, vog_field, companion) -> str:
    """Why the run ``vog_field`` has no ``companion`` field to sort by, and what to do."""
    name = companion_field_name(vog_field, companion)
    fix = "compute VoG with companions=True (the default) or pass label_error_field"
    if name not in schema:
        return f"the run {vog_field!r} wrote no {name!r} (computed with companions=False); {fix}"
    if not _numeric(schema, name):
        return f"field {name!r} is a {type(schema[name]).__name__}, not a score of the run {vog_field!r}; {fix}"
    return f"field {name!r} was not written by the run {vog_field!r} (its recorded fields do not list it); {fix}"


def _scoring_field(ds, marked, vog_field) -> str | None:
    """The score field to sort the marker view ``marked`` by: ``vog_field`` when it scores every
    sample of it, else the VoG run field (``vog_field`` included) that scores the most of its
    samples (``vog_field`` wins ties); None when none scores any.

    Why not always ``vog_field``: the demo's OOD samples are scored in ``vog_test``, and a view
    sorted by a field its samples lack shows them in no order while claiming one.
    """
    n = len(marked)
    best, best_count = vog_field, marked.count(vog_field)
    if best_count == n:  # every sample scored, or an empty view (saved as before: it may fill later)
        return vog_field
    from ..core.compute import list_vog_runs

    schema = ds.get_field_schema()
    for key in list_vog_runs(ds):
        field = ds.get_run_info(key).config.vog_field
        if field == vog_field or field not in schema:
            continue
        c = marked.count(field)
        if c > best_count:
            best, best_count = field, c
    return best if best_count else None


def _base_stages(samples) -> str:
    """The stages of ``samples`` as one string (empty for a whole dataset): which samples a call of
    :func:`save_vog_views` was over, kept with the views it saved."""
    import json

    return json.dumps(samples.view()._serialize(include_uuids=False), sort_keys=True, default=str)
