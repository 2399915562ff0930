"""The saved views of a VoG run: those :func:`fiftyone_vog.save_vog_views` saved over its fields.

A saved view is the run's when it has the shape ``save_vog_views`` saves — the stages of the
samples it was called on, a ``match`` or ``match_tags`` (a threshold or a marker), then a ``sort_by`` one of the
run's fields — and the description it writes, which names that field ("top 10% by vog (>= 1.2),
hardest first"). A user's view of the same name, or over the same field but of another shape or
description, is not the run's: deleting the run never deletes it, renaming the run never edits it.
"""

from __future__ import annotations

import re

#: The stages save_vog_views ends a view with: a match (a threshold, a flag, a tag), then a sort.
_MATCHES = ("fiftyone.core.stages.Match", "fiftyone.core.stages.MatchTags")
_SORT = "fiftyone.core.stages.SortBy"


def _stages(view_doc) -> list[dict]:
    from bson import json_util  # as FiftyOne stores them (extended JSON: -inf, dates)

    return [json_util.loads(s) for s in view_doc.view_stages or []]


def _sort_field(stages) -> str | None:
    """The field the last stage sorts by, when the last two stages are ``save_vog_views``' own."""
    if len(stages) < 2 or stages[-2].get("_cls") not in _MATCHES or stages[-1].get("_cls") != _SORT:
        return None
    field = dict(stages[-1].get("kwargs", [])).get("field_or_expr")
    return field if isinstance(field, str) else None


def _describes(description, field: str) -> bool:
    """Whether ``description`` is one ``save_vog_views`` writes for a view sorted by ``field``:
    "... by FIELD (...)..., ... first" or "... by FIELD, ... first"."""
    return isinstance(description, str) and bool(
        re.search(rf"\bby {re.escape(field)}(?: \(|, ).*\bfirst$", description)
    )


def _view_docs(dataset) -> list:
    return [d for d in dataset._root_dataset._doc.get_saved_views() if hasattr(d, "view_stages")]


def run_views(dataset, fields) -> list[str]:
    """Names of the saved views of ``dataset`` that ``save_vog_views`` saved over one of
    ``fields`` (a run's fields), in the dataset's order."""
    fields = set(fields)
    out = []
    for doc in _view_docs(dataset):
        field = _sort_field(_stages(doc))
        if field in fields and _describes(doc.description, field):
            out.append(doc.name)
    return out


def _renamed(value, mapping: dict[str, str], direct: bool):
    """``value`` with every ``"$old"`` field reference of an expression (and, for a stage's own
    arguments, ``direct``, a bare ``"old"`` field name) renamed by ``mapping``."""
    if isinstance(value, str):
        if value.startswith("$"):
            head, dot, rest = value[1:].partition(".")
            return f"${mapping[head]}{dot}{rest}" if head in mapping else value
        return mapping.get(value, value) if direct else value
    if isinstance(value, dict):
        return {k: _renamed(v, mapping, False) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, mapping, False) for v in value]
    return value


def rename_view_fields(dataset, names, mapping: dict[str, str]) -> None:
    """Point the saved views ``names`` (from :func:`run_views`) at the renamed fields ``mapping``
    (``{old: new}``): their stages and descriptions, in place (same view, same id)."""
    import datetime

    from bson import json_util

    names = set(names)
    for doc in _view_docs(dataset):
        if doc.name not in names:
            continue
        stages = []
        for stage in _stages(doc):
            kwargs = [[k, _renamed(v, mapping, True)] for k, v in stage.get("kwargs", [])]
            stages.append({**stage, "kwargs": kwargs})
        doc.view_stages = [json_util.dumps(s) for s in stages]
        if doc.description:
            doc.description = re.sub(
                r"\bby (\w+)(?= \(|, )", lambda m: f"by {mapping.get(m.group(1), m.group(1))}", doc.description
            )
        doc.last_modified_at = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        doc.save()
