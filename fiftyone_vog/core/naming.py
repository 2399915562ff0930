"""The one check of every field name this package writes (score fields, windows, audit flags).

A field whose name is an attribute of FiftyOne's ``Sample`` (``get_field``, ``to_dict``, ``save``,
``dataset``…) or of its database document shadows that attribute and makes every sample of the
dataset unloadable; names FiftyOne reserves (``id``, ``filepath``, ``tags``, ``frames``…) are
refused too. FiftyOne is imported only when a name is checked.
"""

from __future__ import annotations

import functools
import keyword

from ..errors import VoGError

#: Longest field name accepted (ours are ``{vog_field}_{window}_raw``; FiftyOne itself has no limit,
#: but index names and the App's sidebar do not take kindly to very long names).
MAX_FIELD_NAME = 100

#: Names FiftyOne uses for built-in fields or reserves for some media types.
FIFTYONE_RESERVED = frozenset(
    {
        "id",
        "filepath",
        "filename",
        "tags",
        "metadata",
        "created_at",
        "last_modified_at",
        "media_type",
        "media_reference",
        "dataset_id",
        "frames",
        "groups",
        "group",
        "pk",
    }
)


@functools.lru_cache(maxsize=1)
def reserved_names() -> frozenset[str]:
    """Every public attribute of FiftyOne's sample classes and their documents, plus
    :data:`FIFTYONE_RESERVED`."""
    import fiftyone.core.odm.sample as fos_odm
    import fiftyone.core.sample as fos

    names = set(FIFTYONE_RESERVED)
    for cls in (fos.Sample, fos.SampleView, fos_odm.DatasetSampleDocument, fos_odm.NoDatasetSampleDocument):
        names.update(n for n in dir(cls) if not n.startswith("_"))
    return frozenset(names)


def why_invalid(name, reserved: bool = True) -> str | None:
    """Why ``name`` cannot be a field name of ours (a phrase after "is"), or None when it can.
    ``reserved=False`` skips the FiftyOne-attribute check (for parts of names, e.g. windows)."""
    if not isinstance(name, str) or not name:
        return "not a valid field name"
    if len(name) > MAX_FIELD_NAME:
        return f"{len(name)} characters long; field names are at most {MAX_FIELD_NAME}"
    if keyword.iskeyword(name):
        return "a Python keyword"
    if not name.isidentifier() or name.startswith("_") or not name.isascii():
        return "not a valid field name (use ASCII letters, digits and underscores, not starting with '_' or a digit)"
    if reserved and name in reserved_names():
        return "reserved by FiftyOne (an attribute of its Sample objects or a built-in field)"
    return None


def _show(name) -> str:
    """``repr(name)``, its middle cut out when too long for a one-line message."""
    if isinstance(name, str) and len(name) > 60:
        return f"{name[:24]!r}…{name[-24:]!r}"
    return repr(name)


def check_field_name(name, what: str = "vog_field", reserved: bool = True) -> str:
    """Return ``name`` or raise :class:`VoGError` naming the problem and the fix."""
    why = why_invalid(name, reserved)
    if why is not None:
        raise VoGError(f"{what}={_show(name)} is {why}; choose another name, e.g. 'vog'")
    return name


def check_derived_name(name: str, source: str) -> str:
    """Check a field name built from the user's names (``source`` says from which)."""
    why = why_invalid(name)
    if why is not None:
        raise VoGError(f"{source} gives the field {_show(name)}, which is {why}; choose another name")
    return name


# -- the names of the fields a run writes -----------------------------------------------
# The one rule, asked by compute (to write), and by panel, report, analysis and audit (to read,
# through :func:`score_fields`, which prefers the run's recorded field list).

#: The engine's name for the window of every checkpoint (its fields carry no window part).
ALL = "all"
#: The last part of a raw score field's name: ``{score_field}_raw``.
RAW = "raw"


def window_field_name(vog_field: str, window: str = ALL) -> str:
    """The class-normalized score field of ``window``: ``vog_field`` itself for :data:`ALL`,
    else ``{vog_field}_{window}``."""
    return vog_field if window == ALL else f"{vog_field}_{window}"


def raw_field_name(score_field: str) -> str:
    """The raw score beside a score field: ``{score_field}_raw`` (``vog_raw``, ``vog_late_raw``)."""
    return f"{score_field}_{RAW}"


def companion_field_name(score_field: str, companion: str) -> str:
    """A companion beside a score field: ``{score_field}_{companion}`` (``vog_loss``,
    ``vog_late_loss``)."""
    return f"{score_field}_{companion}"


def score_field_names(vog_field: str, windows) -> dict[str, tuple[str, str]]:
    """``{window: (normalized_field, raw_field)}`` of a run, :data:`ALL` first (names unchecked)."""
    return {
        w: (window_field_name(vog_field, w), raw_field_name(window_field_name(vog_field, w))) for w in (ALL, *windows)
    }


def companion_field_names(vog_field: str, windows, companions=None) -> dict[str, dict[str, str]]:
    """``{window: {companion: field}}`` of a run, :data:`ALL` first (default: every companion)."""
    from ..options import COMPANIONS

    names = COMPANIONS if companions is None else companions
    return {w: {c: companion_field_name(window_field_name(vog_field, w), c) for c in names} for w in (ALL, *windows)}


def recorded_fields(samples, score_field: str) -> list[str] | None:
    """The field list recorded by the VoG run that wrote ``score_field`` (the run of that key
    first, else the run listing it); None when no run records one (no run, or a run of a
    version that did not record its fields)."""
    from .runs import run_fields, vog_run_keys

    ds = samples._dataset
    keys = vog_run_keys(ds)
    for key in sorted(keys, key=lambda k: k != score_field):
        fields = run_fields(ds, key)
        if fields and (key == score_field or score_field in fields):
            return fields
    return None


class ScoreFields:
    """The fields beside one score field of ``samples`` (:func:`score_fields`): each name from
    the naming rule, present when the view has it as a numeric field and, where a run recorded
    its fields, the run wrote it (a user's own ``vog_loss`` beside a run without companions, or
    a text field of that name, is not a companion)."""

    def __init__(self, score: str, schema, recorded=None):
        self.score = score
        self.recorded = None if recorded is None else frozenset(recorded)
        self._schema = frozenset(schema)

    def has(self, name: str) -> bool:
        return name in self._schema and (self.recorded is None or name in self.recorded)

    def _get(self, name):
        return name if self.has(name) else None

    @property
    def raw(self) -> str | None:
        """The raw score field, None when there is none (e.g. the score is itself a raw one)."""
        return self._get(raw_field_name(self.score))

    @property
    def raw_or_score(self) -> str:
        """The raw score field where there is one, else the score field itself."""
        return self.raw or self.score

    @property
    def companions(self) -> dict[str, str]:
        """``{companion: field}`` of the companions present, in the order they are written."""
        from ..options import COMPANIONS

        return {c: n for c in COMPANIONS if self.has(n := companion_field_name(self.score, c))}

    def part(self, name: str) -> str | None:
        """The field of one part of :data:`~fiftyone_vog.options.QUESTION_SCORES`: ``"score"``
        (the score field itself), ``"raw"``, or a companion's name; None when absent."""
        if name == "score":
            return self.score
        return self.raw if name == RAW else self._get(companion_field_name(self.score, name))

    def preferred(self, question: str) -> str | None:
        """The field that answers ``question`` (``"label-errors"``, ``"ood"``) best by the
        measurements behind :data:`~fiftyone_vog.options.QUESTION_SCORES`, of those present."""
        from ..options import QUESTION_SCORES

        return next((f for f in map(self.part, QUESTION_SCORES[question]) if f), None)

    def window(self, window: str) -> str | None:
        """The score field of ``window`` of this run (``vog_early``), None when absent."""
        return self._get(window_field_name(self.score, window))

    def __repr__(self):
        return f"ScoreFields({self.score!r}, raw={self.raw!r}, companions={list(self.companions.values())})"


def score_fields(samples, score_field: str) -> ScoreFields:
    """What lies beside ``score_field`` on ``samples`` (a dataset or view): its raw score, its
    companions, its windows — the run's recorded field list where it has one, the naming rule
    for runs of earlier versions and for fields no run recorded."""
    import fiftyone as fo

    schema = samples.get_field_schema()
    numeric = [name for name, f in schema.items() if isinstance(f, (fo.FloatField, fo.IntField))]
    return ScoreFields(score_field, numeric, recorded_fields(samples, score_field))
