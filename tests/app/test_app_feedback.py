"""What the App shows while a user fills a form and runs it (issue 11's small items), through
FiftyOne's own executor: no Done button while Compute VoG runs, no "Required property" before the
user typed, a form that reflects the params it was given, messages that name the form's controls
(not ``overwrite=True (CLI: --overwrite)``), and no data-loading advice after a short run."""

import asyncio
import json
import os
import re

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types
import pytest
from fiftyone.operators.executor import (
    ExecutionContext,
    ExecutionError,
    Executor,
    ValidationContext,
    _parse_ctx,
    execute_or_delegate_operator,
)
from fiftyone.operators.server import create_response_generator

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin

PLUGIN = "@fiftyone-vog/vog"
COMPUTE = f"{PLUGIN}/compute_vog"
EXPORT = f"{PLUGIN}/export_vog_subset"
MODEL = "conftest:small_model"
#: what an App message must not say: API argument syntax and CLI flags
API_WORDS = re.compile(r"=True|=False|\(CLI:|--[a-z]|\b(overwrite|label_mode|vog_field|num_workers|export_dir)=")


@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


@pytest.fixture
def allow_imports(monkeypatch):
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")


def _ctx(uri, ds, params, **request):
    op = foo.get_operator(uri)
    ctx = ExecutionContext(
        request_params={
            "dataset_name": ds.name,
            "params": dict(params),
            "operator_uri": uri,
            **request,
        },  # as the App sends it
        executor=Executor(),
        operator_uri=uri,
        required_secrets=op._plugin_secrets,
    )
    return op, ctx


def _form(uri, ds, params, **request):
    """Resolve the operator's form on the server, as the App does on every change."""
    op, ctx = _ctx(uri, ds, params, **request)
    inputs = op.resolve_input(ctx)
    return inputs.type.properties, ValidationContext(ctx, inputs, op)


def _from_the_app(uri, ds, params):
    """Run an operator as the App's server does for the form's Execute button; the JSON lines of
    a streaming operator are what the App receives."""
    request_params = _parse_ctx(ctx={"dataset": ds, "params": params, "operator_uri": uri})
    result = asyncio.run(execute_or_delegate_operator(uri, request_params))
    lines = [json.loads(line) for line in create_response_generator(result.result)]
    return [m["body"] for m in lines if m["cls"] == "InvocationRequest"], result


def _messages(requests):
    return [r["params"]["message"] for r in requests if r["operator_uri"] == "notify"]


# -- 1. no Done button while Compute VoG runs ---------------------------------------------------
def test_an_app_run_opens_no_progress_dialog(dataset, checkpoint_dir, allow_imports):
    """FiftyOne 1.22's set_progress (and show_output) open a dialog with a Done button that stays
    while the run goes on; the operator's own "Executing..." dialog has none and closes at the end."""
    params = {"checkpoints": os.path.join(checkpoint_dir, "epoch_*.pt"), "model": MODEL, "batch_size": 8}
    requests, result = _from_the_app(COMPUTE, dataset, params)
    names = [r["operator_uri"] for r in requests]
    assert "set_progress" not in names and "show_output" not in names, names
    assert names[-1] == "notify" and _messages(requests)[-1].startswith("VoG: scored 40 samples")
    op, ctx = _ctx(COMPUTE, dataset, params)
    assert op.resolve_output(ctx) is None  # no result view (with its Close button) after the run either
    assert dataset.count("vog") == 40


# -- 2. no "Required property" before the user typed -------------------------------------------
@pytest.mark.parametrize(
    ("uri", "name", "label"), [(COMPUTE, "checkpoints", "Checkpoints"), (EXPORT, "export_dir", "Export directory")]
)
def test_an_untouched_form_shows_no_error_but_cannot_execute(dataset, uri, name, label):
    props, val = _form(uri, dataset, {})
    # FiftyOne's required=True shows "Required property" under the input as soon as the form opens
    assert not props[name].required
    assert not props[name].invalid and not props[name].error_message
    assert val.invalid  # Execute stays disabled ...
    shown = {p for p, prop in props.items() if not isinstance(prop.view, types.HiddenView)}
    assert all(e.path.lstrip(".") not in shown for e in val.errors), [e.path for e in val.errors]  # ... silently
    assert [e.reason for e in val.errors] == [f"enter the {label}: " + val.errors[0].reason.split(": ", 1)[1]]
    assert "Required property" not in [e.reason for e in val.errors]
    # typed and emptied again: now the input itself says what is missing
    props, val = _form(uri, dataset, {name: ""})
    assert props[name].invalid and props[name].error_message.startswith(f"enter the {label}: ")


def test_execute_without_checkpoints_says_what_is_missing(dataset):
    with pytest.raises(ExecutionError, match="enter the Checkpoints: a glob, a directory or comma-separated files"):
        foo.execute_operator(COMPUTE, ctx={"dataset": dataset, "params": {}})


# -- 3. the form reflects the params it was given ---------------------------------------------
def test_each_resolve_reflects_its_own_params(dataset, checkpoint_dir, allow_imports):
    """A user typing: each resolve's errors are those of its params (the checkpoint-fit cache is
    keyed by file and model, never by an earlier keystroke). The ~0.6 s a message lags behind the
    typing is the App's debounce (docs/app.md)."""
    good = {"checkpoints": checkpoint_dir, "model": MODEL}
    for params, invalid in [
        ({**good, "model": "resnet18"}, "model"),  # checkpoints do not fit
        (good, None),
        ({**good, "model": "resnet18"}, "model"),  # from the cache: still wrong
        ({**good, "device": "gpu"}, "device"),
        (good, None),
        ({**good, "vog_field": "1vog"}, "vog_field"),
        (good, None),
    ]:
        props, val = _form(COMPUTE, dataset, params)
        assert [p for p in ("model", "device", "vog_field") if props[p].invalid] == ([invalid] if invalid else [])
        assert val.invalid == bool(invalid)


# -- 4. messages name the form's controls ------------------------------------------------------
def test_form_labels_are_the_forms_own(dataset, checkpoint_dir, scored_run, allow_imports):
    """The table the messages are translated with (forms.FORM_LABELS) says what each form says."""
    from fiftyone_vog.app.forms import FORM_LABELS

    ds, _ = scored_run
    params = {
        "compute_vog": {"checkpoints": checkpoint_dir},
        "save_vog_views": {},
        "shuffle_labels": {},
        "export_vog_subset": {"dataset_type": "csv"},
        "index_vog_fields": {"drop": True},  # the run has no unindexed field: offer the drop
    }
    for op, labels in FORM_LABELS.items():
        props, _ = _form(f"{PLUGIN}/{op}", ds, params[op])
        assert {a: props[a].view.label for a in labels} == labels, op


def _run_past_the_form(uri, ds, params):
    """Execute as the App does, the state having changed since the form validated (another user,
    another tab): the operator's own checks at run time, messages as streamed to the App."""
    op, ctx = _ctx(uri, ds, {**params}, operator_uri=uri)
    out = op.execute(ctx)
    if hasattr(out, "__next__"):
        list(out)
    return [r.params["message"] for r in ctx.executor._requests if r.operator_uri == "notify"]


def test_no_app_message_names_api_arguments(dataset, checkpoint_dir, tmp_path, allow_imports):
    ckpts = os.path.join(checkpoint_dir, "epoch_*.pt")
    base = {"checkpoints": ckpts, "model": MODEL, "batch_size": 8}
    seen = []

    def inline(uri, params, prop):
        props, val = _form(uri, dataset, params)
        assert props[prop].invalid, (prop, params)
        seen.append(props[prop].error_message)

    # the form's inline errors
    fov.compute_vog(dataset, ckpts, model=MODEL, progress=False)  # a run "vog" exists
    inline(COMPUTE, base, "vog_field")  # taken, Overwrite not ticked
    inline(COMPUTE, {**base, "vog_field": "ground_truth"}, "vog_field")
    inline(COMPUTE, {**base, "device": "cuda:99"}, "device")
    inline(COMPUTE, {**base, "device": "gpu"}, "device")
    inline(COMPUTE, {**base, "classes": "a,b,c", "vog_field": "other"}, "classes")
    inline(COMPUTE, {**base, "windows": "thirds", "vog_field": "other"}, "windows")
    export_dir = tmp_path / "export"
    fov.export_vog_subset(dataset, str(export_dir), dataset_type="csv")
    inline(EXPORT, {"export_dir": str(export_dir), "dataset_type": "csv"}, "export_dir")
    unlabeled = dataset.first()
    unlabeled["ground_truth"] = None
    unlabeled.save()
    inline(COMPUTE, {**base, "vog_field": "other"}, "label_mode")
    # failures only the run finds: the error notification
    unlabeled["ground_truth"] = fo.Classification(label="circle")
    unlabeled.save()
    runtime = _run_past_the_form(COMPUTE, dataset, base)  # the run "vog" exists
    assert runtime and "tick 'Overwrite'" in runtime[0], runtime
    seen += runtime
    seen += _run_past_the_form(EXPORT, dataset, {"export_dir": str(export_dir), "dataset_type": "csv"})
    # the views that could not be saved, and why
    fov.compute_vog(dataset, ckpts, model=MODEL, vog_field="bare", companions=False, progress=False)
    _, result = _from_the_app(f"{PLUGIN}/save_vog_views", dataset, {"vog_field": "bare", "ood_tag": "none"})
    seen += [s["reason"] for s in result.result["skipped"]]
    assert len(seen) >= 12
    bad = [m for m in seen if API_WORDS.search(m)]
    assert not bad, bad
    assert any("tick 'Overwrite'" in m for m in seen) and any("'Label mode'" in m for m in seen)


def test_app_message_translations():
    from fiftyone_vog.app.forms import app_message

    assert app_message(
        "a VoG run with key 'vog' already exists on dataset 'd'; pass overwrite=True (CLI: --overwrite) to "
        "replace it, or choose another vog_field",
        "compute_vog",
    ) == (
        "a VoG run with key 'vog' already exists on dataset 'd'; tick 'Overwrite' to replace it, or choose "
        "another 'Output field'"
    )
    assert app_message("use label_mode='auto'", "compute_vog") == "set 'Label mode' to auto"
    assert (
        app_message("no VoG field 'x'; pass vog_field=", "export_vog_subset") == "no VoG field 'x'; fill in 'VoG field'"
    )
    assert (
        app_message(
            "score it first with fov.compute_vog(dataset, checkpoints, vog_field='v') (CLI: fiftyone-vog compute)",
            "save_vog_views",
        )
        == "score it first with 'Compute VoG' ('Output field' set to v)"
    )
    assert (
        app_message("the field 'label_mode' and label_mode", "compute_vog") == "the field 'label_mode' and 'Label mode'"
    )


# -- 5. data-loading advice only where it matters, in the form's words --------------------------
def test_data_wait_hint_in_the_app_names_the_control():
    from fiftyone_vog.app.forms import app_message
    from fiftyone_vog.core.compute import data_wait_hint

    hint = data_wait_hint({"data_wait": 30.0, "compute": 10.0}, 0)
    shown = app_message(hint, "compute_vog")
    assert "'Data loader workers' set to 0: raise 'Data loader workers'" in shown
    assert not API_WORDS.search(shown), shown
    assert data_wait_hint({"data_wait": 3.0, "compute": 1.0}, 0) is None  # 75 % of a 4 s run: no advice


def test_a_short_app_run_gives_no_data_loading_advice(dataset, checkpoint_dir, allow_imports):
    params = {"checkpoints": os.path.join(checkpoint_dir, "epoch_*.pt"), "model": MODEL, "batch_size": 8}
    requests, _ = _from_the_app(COMPUTE, dataset, params)
    message = _messages(requests)[-1]
    assert message.startswith("VoG: scored 40 samples") and "Note:" not in message, message
