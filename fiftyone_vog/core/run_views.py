"""The saved views of a VoG run: those :func:`fiftyone_vog.save_vog_views` saved over its score
field, as the ownership record (:mod:`.ownership`, owner ``views:<field>``) lists them. A user's
view of the same name is not among them: deleting the run never deletes it, renaming the run
never edits it.
"""

from __future__ import annotations

import re

from . import ownership


def run_views(dataset, vog_field: str) -> list[str]:
    """Names of the saved views ``save_vog_views`` saved over the run whose score field is
    ``vog_field`` (and which are still what it saved), sorted."""
    return ownership.names(dataset, ownership.views_owner(vog_field), ownership.VIEW)


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


def rename_view_fields(dataset, vog_field: str, new_field: str, mapping: dict[str, str]) -> None:
    """Point the saved views of the run ``vog_field`` (:func:`run_views`) at the renamed fields
    ``mapping`` (``{old: new}``): their stages and descriptions, in place (same view, same id);
    the record hands them to the run ``new_field``."""
    from bson import json_util  # as FiftyOne stores stages (extended JSON: -inf, dates)

    def edit(doc):
        stages = []
        for stage in (json_util.loads(s) for s in doc.view_stages or []):
            kwargs = [[k, _renamed(v, mapping, True)] for k, v in stage.get("kwargs", [])]
            stages.append({**stage, "kwargs": kwargs})
        doc.view_stages = [json_util.dumps(s) for s in stages]
        if doc.description:
            doc.description = re.sub(
                r"\b(by|in) (\w+)\b", lambda m: f"{m[1]} {mapping.get(m[2], m[2])}", doc.description
            )

    owner, new_owner = ownership.views_owner(vog_field), ownership.views_owner(new_field)
    for e in ownership.listing(dataset, owner=owner, kind=ownership.VIEW):
        ownership.edit_view(dataset, e.name, owner, edit)
        sort = e.options.get("field")
        ownership.transfer(
            dataset, ownership.VIEW, e.name, owner, new_owner, options={"field": mapping.get(sort, sort)}
        )
