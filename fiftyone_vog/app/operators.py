"""FiftyOne operators: the App's doors into fiftyone-vog.

Each operator is a form (``resolve_input``, validated on the server) and an
``execute`` that parses the parameters and makes one API call. Parameters carry
the API's argument names, so from Python::

    import fiftyone.operators as foo
    foo.execute_operator("@fiftyone-vog/vog/compute_vog", ctx={"dataset": ds, "params": {...}})
    foo.get_operator("@fiftyone-vog/vog/compute_vog")(ds, checkpoints="runs/*.pt", model="resnet18")

The forms and the parsing of their parameters live in :mod:`fiftyone_vog.app.forms`.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time

import fiftyone as fo
import fiftyone.core.view as fov_view
import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..errors import VoGError
from ..options import INDEX_OPERATOR, PLUGIN_NAME
from .forms import (  # noqa: F401  (re-exported: callers and tests import these from here)
    ALLOW_IMPORTS,
    CHOICES,
    EXPORT_TYPES,
    TRUTHY,
    VIEW_NAMES,
    _name_prefix,
    _split,
    api_kwargs,
    app_message,
    app_messages,
    compute_vog_form,
    compute_vog_kwargs,
    export_dir_kwargs,
    export_vog_subset_form,
    from_the_app,
    imports_allowed,
    index_vog_fields_form,
    parse_checkpoints,
    parse_windows,
    save_vog_views_form,
    shuffle_labels_form,
    shuffle_seed,
)
from .reporting import reported

PLUGIN = PLUGIN_NAME


# -- running an operator -------------------------------------------------------------
def _execute(op, samples, params, delegate=False, delegation_target=None):
    """``operator(samples, **params)`` → ``foo.execute_operator`` on the dataset or view."""
    ctx = {"view": samples} if isinstance(samples, fov_view.DatasetView) else {"dataset": samples}
    params = {k: v for k, v in params.items() if v is not None}
    return foo.execute_operator(
        op.uri, ctx, params=params, request_delegation=delegate, delegation_target=delegation_target
    )


#: Seconds between two progress notifications of an immediate App run: a notification stays
#: 3 s on screen (FiftyOne 1.22), so about one is shown at a time.
PROGRESS_EVERY_S = 3.0


def _run_in_thread(ctx, fn, total_label):
    """Run ``fn(progress)`` in a worker thread; yield App progress updates; return its result.

    The updates are info notifications, at most one per :data:`PROGRESS_EVERY_S`, none for a run
    shorter than that: FiftyOne 1.22's ``set_progress`` opens a dialog of its own with a **Done**
    button, shown while the run goes on and left open after it. Meanwhile the operator's own
    dialog says "Executing..." and has no button; it closes when the run has finished.
    """
    updates: queue.Queue = queue.Queue()
    box = {}

    def work():
        try:
            box["result"] = fn(lambda pb: updates.put((pb.iteration, pb.total)))
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e
        finally:
            updates.put(None)

    worker = threading.Thread(target=work, name="fiftyone-vog", daemon=True)
    worker.start()
    last, done = time.monotonic(), False
    while not done:
        item = updates.get()
        while item is not None and not updates.empty():  # only the newest update matters
            nxt = updates.get()
            if nxt is None:
                done = True
                break
            item = nxt
        if item is None:
            break
        i, n = item
        if time.monotonic() - last >= PROGRESS_EVERY_S and i < n:
            last = time.monotonic()
            share = f" ({i / n:.0%})" if n else ""
            yield ctx.ops.notify(f"{total_label} {i} of {n} samples{share}", variant="info")
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def _delegated_progress(ctx, verb):
    """FiftyOne's ``progress=`` callable that records progress on the delegated operation."""
    return fo.report_progress(
        lambda pb: ctx.set_progress(progress=pb.progress, label=f"{verb} {pb.iteration} of {pb.total}"), dt=2.0
    )


def _jsonable(obj):
    """An API result as plain JSON for the App (anything unknown becomes a string)."""
    try:
        return json.loads(json.dumps(obj, default=str))
    except (TypeError, ValueError):
        return {"result": str(obj)}


# -- compute_vog -------------------------------------------------------------------
class ComputeVoG(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="compute_vog",
            label="Compute VoG",
            description="Score samples by Variance of Gradients across training checkpoints",
            icon="insights",
            dynamic=True,
            execute_as_generator=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def __call__(self, samples, checkpoints, delegate=False, delegation_target=None, **kwargs):
        """Run from Python with the API's argument names; ``delegate=True`` queues it."""
        if not isinstance(checkpoints, (str, os.PathLike)):
            checkpoints = ",".join(str(c) for c in checkpoints)
        if isinstance(kwargs.get("classes"), (list, tuple)):
            kwargs["classes"] = ",".join(kwargs["classes"])
        if isinstance(kwargs.get("windows"), dict):
            kwargs["windows"] = json.dumps(kwargs["windows"])
        return _execute(self, samples, dict(checkpoints=str(checkpoints), **kwargs), delegate, delegation_target)

    def resolve_input(self, ctx):
        inputs = types.Object()
        compute_vog_form(ctx, inputs)
        app_messages(ctx, inputs, "compute_vog")
        return types.Property(inputs, view=types.View(label="Compute VoG"))

    @reported
    def execute(self, ctx):
        kwargs = compute_vog_kwargs(ctx)
        samples = ctx.target_view()
        existing = set(ctx.dataset.get_field_schema())
        from ..core.compute import compute_vog, data_wait_hint, not_indexed_message

        if ctx.delegated:
            results = compute_vog(samples, progress=_delegated_progress(ctx, "Scoring"), **kwargs)
        else:
            results = yield from _run_in_thread(
                ctx, lambda p: compute_vog(samples, progress=p, **kwargs), "Compute VoG: scored"
            )
            yield ctx.trigger("reload_dataset")
        message = (
            f"VoG: scored {len(results.ids)} samples in {results.timings['total']:.1f}s; "
            f"wrote {', '.join(results.scores)}"
        )
        if set(results.scores) - existing:
            # The App applies the dataset's sidebar groups when it loads a dataset; a reload_dataset keeps
            # the groups it shows and lists new fields under PRIMITIVES until the page is reloaded.
            message += " (reload the page to see them in the sidebar's VoG group)"
        unindexed = not_indexed_message(results.config.get("indexes"))
        if unindexed:  # the App's Sort by lists indexed fields only: never a silent gap
            message += f". Note: {app_message(unindexed, 'compute_vog')}"
        hint = data_wait_hint(results.timings, results.config["num_workers"])
        if hint:
            message += f". Note: {app_message(hint, 'compute_vog')}"  # the form's control, not --num-workers
        if not ctx.delegated:
            yield ctx.ops.notify(message, variant="success")


# -- save_vog_views ----------------------------------------------------------------
class SaveVoGViews(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="save_vog_views",
            label="Save VoG views",
            description="Saved views vog-high, vog-low, vog-shuffled-labels, vog-ood, vog-label-errors and "
            "vog-likely-ood",
            icon="bookmarks",
            dynamic=True,
        )

    def __call__(self, dataset, **kwargs):
        return _execute(self, dataset, kwargs)

    def resolve_input(self, ctx):
        inputs = types.Object()
        save_vog_views_form(ctx, inputs)
        app_messages(ctx, inputs, "save_vog_views")
        return types.Property(inputs, view=types.View(label="Save VoG views"))

    @reported
    def execute(self, ctx):
        from ..audit.views import save_vog_views

        p = ctx.params
        # a parameter left out gets the API's default (e.g. shuffled_field="label_shuffled")
        views = save_vog_views(
            ctx.dataset,
            name_prefix=_name_prefix(p),
            **api_kwargs(
                save_vog_views,
                p,
                ("vog_field", "percentile", "label_error_rule", "shuffled_field", "ood_field", "ood_tag", "overwrite"),
                {"percentile": float, "overwrite": bool},
            ),
        )
        load = p.get("load_view")
        if not ctx.delegated:
            # The App lists a dataset's saved views from its own copy, fetched with the dataset:
            # reload_dataset refetches it, so the view selector lists the new views in place. Its
            # set_view(name=...) checks that copy before the refetch has landed ("saved view ... does
            # not exist"), so the view to open is sent as its stages, which need no lookup.
            ctx.ops.reload_dataset()
            if load in views:
                ctx.ops.set_view(view=views[load])
        return {
            "views": views.table(),
            "skipped": [
                {"view": name, "reason": app_message(why, "save_vog_views") if from_the_app(ctx) else why}
                for name, why in views.skipped.items()
            ],
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        table = types.TableView()
        table.add_column("view", label="Saved view")
        table.add_column("samples", label="Samples")
        table.add_column("sorted_by", label="Sorted by")
        outputs.list("views", types.Object(), label="Saved views", view=table)
        if ctx.results.get("skipped"):
            why = types.TableView()
            why.add_column("view", label="Not saved")
            why.add_column("reason", label="Why")
            outputs.list("skipped", types.Object(), label="Not saved", view=why)
        return types.Property(outputs, view=types.View(label="VoG views saved"))


# -- shuffle_labels ----------------------------------------------------------------
class ShuffleLabels(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="shuffle_labels",
            label="Shuffle labels (memorization audit)",
            description="Shuffle a fraction of the labels, keep the originals, flag changed samples; or restore them",
            icon="shuffle",
            dynamic=True,
        )

    def __call__(self, dataset, **kwargs):
        return _execute(self, dataset, kwargs)

    def resolve_input(self, ctx):
        inputs = types.Object()
        if not shuffle_labels_form(ctx, inputs):
            return types.Property(inputs)
        app_messages(ctx, inputs, "shuffle_labels")
        return types.Property(inputs, view=types.View(label="Shuffle labels"))

    @reported
    def execute(self, ctx):
        from ..audit.shuffle import restore_labels, shuffle_labels

        p = ctx.params
        samples = ctx.target_view()  # the dataset, the current view or the selected samples
        names = ("label_field", "flag_field", "original_field")
        if p.get("action", "shuffle") == "restore":
            kwargs = api_kwargs(restore_labels, p, names)
            out = restore_labels(samples, **kwargs)
            scope = {"samples": len(samples), "view": len(samples) != len(ctx.dataset)}
            summary = (
                f"Restored {out['restored']} labels of {kwargs['label_field']!r} in {_scope(scope)}; "
                f"removed {', '.join(out['deleted_fields']) or 'no field (samples outside still hold them)'}"
            )
        else:
            kwargs = api_kwargs(
                shuffle_labels, p, (*names, "fraction", "overwrite", "mode"), {"fraction": float, "overwrite": bool}
            )
            out = shuffle_labels(samples, seed=shuffle_seed(p), **kwargs)  # a seed of 1.5 or -1 is refused
            summary = (
                f"Shuffled {out['shuffled']} of {out['labeled']} labeled samples of {out['label_field']!r} in "
                f"{_scope(out)}; flag: {out['flag_field']}, originals: {out['original_field']}"
            )
        if not ctx.delegated:
            ctx.trigger("reload_dataset")
        return {**_jsonable(out), "summary": summary}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("summary", label="What was done")
        return types.Property(outputs, view=types.View(label="Label-shuffling audit"))


def _scope(out) -> str:
    return f"a view of {out['samples']} samples" if out["view"] else f"the whole dataset ({out['samples']} samples)"


# -- export_vog_subset -------------------------------------------------------------
class ExportVoGSubset(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="export_vog_subset",
            label="Export VoG subset",
            description="Export a saved view or the current view to a directory",
            icon="download",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def __call__(self, samples, export_dir, delegate=False, **kwargs):
        if isinstance(samples, str):  # a saved view's name
            raise VoGError(
                "pass the dataset and saved_view=<name>, e.g. op(dataset, export_dir, saved_view='vog-high')"
            )
        return _execute(self, samples, dict(export_dir=str(export_dir), **kwargs), delegate)

    def resolve_input(self, ctx):
        inputs = types.Object()
        export_vog_subset_form(ctx, inputs)
        app_messages(ctx, inputs, "export_vog_subset")
        return types.Property(inputs, view=types.View(label="Export VoG subset"))

    @reported
    def execute(self, ctx):
        from ..audit.export import export_vog_subset

        p = ctx.params
        source = p.get("saved_view") or ctx.target_view()
        path = export_vog_subset(
            source,
            export_dir_kwargs(ctx),  # confined to the App roots (re-checked: never trust the form alone)
            dataset=ctx.dataset,
            dataset_type=p.get("dataset_type", EXPORT_TYPES[0]),
            label_field=p.get("label_field") or "ground_truth",
            vog_field=p.get("vog_field") or "vog",
            overwrite=bool(p.get("overwrite", False)),
            progress=_delegated_progress(ctx, "Exporting") if ctx.delegated else False,
        )
        out = {"export_dir": str(path), "num_samples": int(getattr(path, "num_samples", 0))}
        if getattr(path, "warning", None):  # what Overwrite kept (not written by fiftyone-vog)
            out["warning"] = app_message(path.warning, "export_vog_subset")
        return out

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("export_dir", label="Exported to")
        outputs.int("num_samples", label="Samples exported")
        outputs.str("warning", label="Kept")
        return types.Property(outputs, view=types.View(label="Export complete"))


# -- index_vog_fields --------------------------------------------------------------
class IndexVoGFields(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name=INDEX_OPERATOR,
            label="Index VoG fields",
            description="Index VoG fields so that the grid's Sort by lists them, or drop the indexes fiftyone-vog made",
            icon="sort",
            dynamic=True,
        )

    def __call__(self, dataset, **kwargs):
        return _execute(self, dataset, kwargs)

    def resolve_input(self, ctx):
        inputs = types.Object()
        index_vog_fields_form(ctx, inputs)
        app_messages(ctx, inputs, INDEX_OPERATOR)
        return types.Property(inputs, view=types.View(label="Index VoG fields"))

    @reported
    def execute(self, ctx):
        from ..core.indexes import index_vog_fields

        p = ctx.params
        out = index_vog_fields(ctx.dataset, _split(p.get("fields")), drop=bool(p.get("drop", False)))
        done = out["dropped"] if p.get("drop") else out["indexed"]
        verb = "Dropped the indexes of" if p.get("drop") else "Indexed"
        summary = f"{verb} {', '.join(done) or 'no field'}; {out['indexes']} indexes in use"
        if out["unchanged"]:
            summary += f"; unchanged: {', '.join(out['unchanged'])}"
        if not ctx.delegated:
            ctx.ops.notify(summary, variant="success")
            ctx.ops.reload_dataset()
        return {**out, "summary": summary}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("summary", label="What was done")
        return types.Property(outputs, view=types.View(label="Index VoG fields"))


OPERATORS = (ComputeVoG, SaveVoGViews, ShuffleLabels, ExportVoGSubset, IndexVoGFields)
