"""Indexes on VoG fields, within MongoDB's budget of :data:`~fiftyone_vog.options.MAX_INDEXES`
per collection.

Why an index at all: the App's grid offers **Sort by** only on indexed fields when query
performance mode is on, and a saved view sorted by an indexed field opens fast on a large dataset
(cost measured in docs/performance.md). Why not on every field: MongoDB refuses a collection's
65th index, and a run with windows and companions writes 24 fields. So a run indexes only what the
grid and the saved views need — its score, its raw score (``vog-ood`` sorts by it) and its
companions (``vog-label-errors`` sorts by the loss; margin, maxprob and energy are the label-error
and OOD rankings) — and says which fields it did not index and why, in its config
(``indexes``) and in the App's and CLI's message. :func:`index_vog_fields` (CLI ``fiftyone-vog
index``, the App's *Index VoG fields*) indexes any other field fiftyone-vog wrote, or drops the
indexes it created. Every index created here is recorded (:mod:`.ownership`, kind ``index``); only
recorded ones are ever dropped.
"""

from __future__ import annotations

from ..errors import VoGError
from ..options import MAX_INDEXES
from . import ownership

#: Why a field was not indexed when the budget was spent (the run's config keeps it per field).
BUDGET = f"MongoDB's limit of {MAX_INDEXES} indexes per dataset is reached"


def index_count(dataset) -> int:
    """How many indexes the dataset's sample collection has (``_id`` included: MongoDB counts it)."""
    return len(dataset._root_dataset._sample_collection.index_information())


def indexed_fields(dataset) -> set[str]:
    """The fields that lead an index of the dataset's samples (``_id`` as ``id``)."""
    out = set()
    for info in dataset._root_dataset._sample_collection.index_information().values():
        first = info["key"][0][0]
        out.add("id" if first == "_id" else first)
    return out


def index_fields(dataset, names, owner: str, created: list | None = None) -> dict:
    """Index each field of ``names`` that no index leads yet, while the budget lasts; the indexes
    are recorded as ``owner``'s and their names appended to ``created``. Never raises for an index
    that cannot be made: it is listed with the reason.

    Returns ``{"indexed": [fields with an index now], "not_indexed": {field: why}}`` (the run's
    config keeps it)."""
    ds = dataset._root_dataset
    have, count = indexed_fields(ds), index_count(ds)
    indexed, missing = [], {}
    for name in names:
        if name in have:
            indexed.append(name)
            continue
        if count >= MAX_INDEXES:
            missing[name] = BUDGET
            continue
        try:
            index = ownership.create_index(ds, name, owner)
        except Exception as e:  # the scores are written and usable without an index
            missing[name] = f"{type(e).__name__}: {e}"
            continue
        if created is not None:
            created.append(index)
        indexed.append(name)
        count += 1
    return {"indexed": indexed, "not_indexed": missing}


#: How a message tells the user to drop indexes, and to index other fields.
_DROP = "drop indexes fiftyone-vog made with fov.index_vog_fields(dataset, fields, drop=True) (CLI: fiftyone-vog index DATASET FIELD... --drop)"
_INDEX = "fov.index_vog_fields(dataset, fields) (CLI: fiftyone-vog index DATASET FIELD...)"


def not_indexed_message(report: dict | None) -> str | None:
    """One sentence on the fields a run did not index (for the App's and the CLI's message), or None."""
    missing = (report or {}).get("not_indexed") or {}
    if not missing:
        return None
    budget = [n for n, why in missing.items() if why == BUDGET]
    other = [n for n in missing if n not in budget]
    parts = []
    if budget:
        parts.append(
            f"not indexed, MongoDB's limit of {MAX_INDEXES} indexes per dataset is reached: {', '.join(budget)} "
            f"(the App's Sort by does not list them); {_DROP}, then index them with {_INDEX}"
        )
    if other:
        parts.append(f"could not index {', '.join(other)}: {missing[other[0]]}")
    return "; ".join(parts)


def check_index_request(dataset, fields, drop: bool = False) -> list[str]:
    """The fields of ``fields`` that :func:`index_vog_fields` would index (or, with ``drop``, whose
    recorded index it would drop), or :class:`VoGError` in one line: no field, a field that does not
    exist or that fiftyone-vog did not write, or more new indexes than MongoDB's limit allows."""
    ds = dataset._root_dataset
    fields = list(dict.fromkeys([fields] if isinstance(fields, str) else fields or []))
    if not fields:
        raise VoGError("name at least one field to index, e.g. vog_late")
    schema = ds.get_field_schema()
    for name in fields:
        if name not in schema:
            raise VoGError(f"dataset {ds.name!r} has no field {name!r}; fields fiftyone-vog wrote: {_ours(ds)}")
        if ownership.entry(ds, ownership.FIELD, name) is None:
            raise VoGError(
                f"field {name!r} of dataset {ds.name!r} was not written by fiftyone-vog; it never "
                f"{'drops its indexes' if drop else 'indexes it'}: use dataset.{'drop_index' if drop else 'create_index'}"
                f"({name!r}) yourself"
            )
    if drop:
        recorded = {e.options.get("field") for e in ownership.listing(ds, kind=ownership.INDEX)}
        return [n for n in fields if n in recorded]
    have = indexed_fields(ds)
    new = [n for n in fields if n not in have]
    count = index_count(ds)
    if count + len(new) > MAX_INDEXES:
        raise VoGError(
            f"the samples of dataset {ds.name!r} have {count} indexes and MongoDB allows {MAX_INDEXES}: "
            f"{len(new)} more do not fit; {_DROP}"
        )
    return new


def index_vog_fields(dataset, fields, drop: bool = False) -> dict:
    """Index fields that fiftyone-vog wrote (e.g. a window's ``vog_late``, which a run does not
    index), so that the App's Sort by lists them — or, with ``drop``, drop the indexes that
    fiftyone-vog created on them (never an index it did not create).

    Every field is checked before any index is made or dropped (:func:`check_index_request`): it
    must be one the ownership record lists (a VoG run's, the shuffle audit's), and the new indexes
    must fit in MongoDB's :data:`~fiftyone_vog.options.MAX_INDEXES`.

    Returns ``{"indexed": [...], "dropped": [...], "unchanged": [...], "indexes": count after}``
    (``unchanged``: already indexed, or, with ``drop``, no index fiftyone-vog created).
    """
    ds = dataset._root_dataset
    todo = check_index_request(ds, fields, drop)
    fields = list(dict.fromkeys([fields] if isinstance(fields, str) else fields))
    out = {"indexed": [], "dropped": [], "unchanged": [n for n in fields if n not in todo]}
    if drop:
        recorded = {e.options.get("field"): e for e in ownership.listing(ds, kind=ownership.INDEX)}
        for name in todo:
            ownership.drop_index(ds, recorded[name].name, recorded[name].owner)
            out["dropped"].append(name)
    else:
        for name in todo:
            ownership.create_index(ds, name, ownership.owner_of(ds, ownership.FIELD, name))
            out["indexed"].append(name)
    out["indexes"] = index_count(ds)
    return out


def _ours(ds) -> list[str]:
    return [e.name for e in ownership.listing(ds, kind=ownership.FIELD)]
