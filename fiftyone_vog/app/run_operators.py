"""The App's run management, as FiftyOne's brain plugin manages its runs: see a VoG run's
configuration and what it owns, rename it (its fields follow), delete it (after a confirmation
that lists what goes). Each operator is a form and one API call (:mod:`fiftyone_vog.core.runs`)::

    foo.execute_operator("@fiftyone-vog/vog/get_vog_run_info", ctx={"dataset": ds, "params": {"key": "vog"}})
    foo.execute_operator("@fiftyone-vog/vog/rename_vog_run", ctx={..., "params": {"key": "vog", "new_key": "vog2"}})
    foo.execute_operator("@fiftyone-vog/vog/delete_vog_run", ctx={..., "params": {"key": "vog2", "confirm": True}})
"""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..errors import VoGError
from ..options import RUN_OPERATORS
from .forms import FORM_LABELS, _invalid, app_messages
from .reporting import reported

INFO, RENAME, DELETE = RUN_OPERATORS


def _run_key(ctx, inputs, default=True):
    """The run dropdown (``key``), the default run first (:func:`~fiftyone_vog.core.runs.preferred_runs`);
    a warning, and None, when the dataset has no VoG run."""
    from ..core.runs import list_vog_runs, preferred_runs

    runs = list_vog_runs(ctx.dataset)
    if not runs:
        prop = inputs.view("no_runs", types.Warning(label="This dataset has no VoG run yet; run Compute VoG first"))
        prop.invalid = True
        return None
    dropdown = types.DropdownView()
    for key in runs:
        dropdown.add_choice(key, label=key)
    first = preferred_runs(ctx.dataset, runs)[0] if default else None
    inputs.str("key", default=first, label="VoG run", description="The run (its key)", view=dropdown)
    key = ctx.params.get("key", first)
    return key if key in runs else None


def _key(ctx) -> str:
    """The run a Python caller or the App named; else the one the form offers first."""
    from ..core.runs import preferred_runs

    return ctx.params.get("key") or next(iter(preferred_runs(ctx.dataset)), "vog")


def _shown(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _label_values(inputs, prefix, items):
    for name, value in items:
        if isinstance(value, dict) and value:
            inputs.obj(f"{prefix}_{name}", label=name, default=value, view=types.JSONView())
        else:
            inputs.str(f"{prefix}_{name}", label=name, default=_shown(value), view=types.LabelValueView(read_only=True))


# -- info ----------------------------------------------------------------------------
class GetVoGRunInfo(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name=INFO,
            label="Get VoG run info",
            description="A VoG run's checkpoints, model, options, threads, timings, fields, indexes and saved views",
            icon="info",
            dynamic=True,
            risk_level="low",
        )

    def resolve_input(self, ctx):
        from ..core.runs import describe_vog_run

        inputs = types.Object()
        key = _run_key(ctx, inputs)
        if key is not None:
            info = describe_vog_run(ctx.dataset, key)
            inputs.view("run_header", types.Header(label="Run", divider=True))
            _label_values(inputs, "run", [("created", info["created"]), ("FiftyOne version", info["fiftyone_version"])])
            inputs.view("owns_header", types.Header(label="What it owns", divider=True))
            _label_values(inputs, "owns", [(k, info[k] or "(none)") for k in ("fields", "indexes", "views")])
            if info["kept"]:
                _label_values(inputs, "owns", [("shared", info["kept"])])
            inputs.view("timings_header", types.Header(label="Timings (seconds)", divider=True))
            _label_values(
                inputs, "timings", [(k, f"{v:.2f}" if isinstance(v, float) else v) for k, v in info["timings"].items()]
            )
            inputs.view("config_header", types.Header(label="Configuration", divider=True))
            _label_values(inputs, "config", info["config"].items())
        return types.Property(inputs, view=types.View(label="VoG run info"))

    @reported
    def execute(self, ctx):
        from ..core.runs import describe_vog_run
        from .operators import _jsonable

        return _jsonable(describe_vog_run(ctx.dataset, _key(ctx)))

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.obj("config", label="Configuration", view=types.JSONView())
        return types.Property(outputs, view=types.View(label=f"VoG run {ctx.results.get('key')!r}"))


# -- rename --------------------------------------------------------------------------
class RenameVoGRun(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name=RENAME,
            label="Rename VoG run",
            description="Rename a VoG run; its fields, their indexes and its saved views follow",
            icon="edit",
            dynamic=True,
            risk_level="medium",
        )

    def resolve_input(self, ctx):
        from ..core.runs import rename_vog_run

        inputs = types.Object()
        key = _run_key(ctx, inputs)
        if key is not None:
            prop = inputs.str(
                "new_key",
                label="New name",
                description="The run's new key; its fields are renamed after it (vog → vog2: vog2, vog2_raw, ...)",
            )
            new_key = ctx.params.get("new_key")
            if not new_key:
                _invalid(inputs.view("new_key_missing", types.HiddenView()), "enter the New name")
            else:
                try:
                    fields = rename_vog_run(ctx.dataset, key, new_key, dry_run=True)
                except VoGError as e:
                    _invalid(prop, str(e))
                else:
                    lines = [f"{old} → {new}" for old, new in fields.items()] or ["(no field on the dataset)"]
                    inputs.view("renamed", types.Notice(label="Renames:  \n" + "  \n".join(lines)))
        app_messages(ctx, inputs, RENAME)
        return types.Property(inputs, view=types.View(label="Rename VoG run"))

    @reported
    def execute(self, ctx):
        from ..core.runs import rename_vog_run

        p = ctx.params
        fields = rename_vog_run(ctx.dataset, _key(ctx), p.get("new_key"))
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return {"key": p.get("new_key"), "renamed": [{"field": old, "renamed_to": new} for old, new in fields.items()]}

    def resolve_output(self, ctx):
        outputs = types.Object()
        table = types.TableView()
        table.add_column("field", label="Field")
        table.add_column("renamed_to", label="Renamed to")
        outputs.list("renamed", types.Object(), label="Fields renamed", view=table)
        return types.Property(outputs, view=types.View(label=f"VoG run renamed to {ctx.results.get('key')!r}"))


# -- delete --------------------------------------------------------------------------
#: What the confirmation's box says (the table of labels): ``confirm`` must be ticked for the run to be deleted.
CONFIRM_LABEL = FORM_LABELS[DELETE]["confirm"]


class DeleteVoGRun(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name=DELETE,
            label="Delete VoG run",
            description="Delete a VoG run with its fields, their indexes and the saved views it saved",
            icon="delete",
            dynamic=True,
            risk_level="high",
        )

    def resolve_input(self, ctx):
        from ..core.runs import delete_vog_run

        inputs = types.Object()
        key = _run_key(ctx, inputs, default=False)  # no default: the user names the run to delete
        if key is not None:
            inputs.bool(
                "delete_fields",
                default=True,
                label="Delete its fields",
                description="Its fields, their indexes and its saved views; unticked, only the run's record goes",
            )
            contents = delete_vog_run(ctx.dataset, key, bool(ctx.params.get("delete_fields", True)), dry_run=True)
            inputs.view(
                "deleted",
                types.Warning(
                    label=f"You are about to delete VoG run {key!r} and", description="  \n".join(contents.lines())
                ),
            )
            inputs.bool(
                "confirm", default=False, label=CONFIRM_LABEL, description="Nothing is deleted until you tick it"
            )
            if not ctx.params.get("confirm"):
                _invalid(inputs.view("confirm_missing", types.HiddenView()), "pass confirm=True to delete")
        elif ctx.params.get("key") is None:
            _invalid(inputs.view("key_missing", types.HiddenView()), "pass key= (the VoG run to delete)")
        app_messages(ctx, inputs, DELETE)
        return types.Property(inputs, view=types.View(label="Delete VoG run"))

    @reported
    def execute(self, ctx):
        from ..core.runs import delete_vog_run

        p = ctx.params
        if not p.get("confirm"):  # re-checked: never trust the form alone
            raise VoGError("not deleted: pass confirm=True to confirm")  # the App's words: tick 'Delete what ...'
        if not p.get("key"):
            raise VoGError("not deleted: pass key= (the VoG run to delete)")
        contents = delete_vog_run(ctx.dataset, p["key"], delete_fields=bool(p.get("delete_fields", True)))
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return {"key": p["key"], "deleted": contents.lines()}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.list("deleted", types.String(), label="Deleted")
        return types.Property(outputs, view=types.View(label=f"VoG run {ctx.results.get('key')!r} deleted"))


RUN_OPERATOR_CLASSES = (GetVoGRunInfo, RenameVoGRun, DeleteVoGRun)
