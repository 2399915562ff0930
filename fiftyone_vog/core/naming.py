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
