"""Failures and mistakes in the App (issue 11, items 1-3), through FiftyOne's own executor: a run
that fails reaches the user as an error notification with the API's message and reopens the form;
the form's inline checks; architectures offered by name."""

import asyncio
import glob
import json
import os
import shutil

import pytest

import fiftyone as fo
import fiftyone.operators as foo
from fiftyone.operators.executor import ExecutionError, _parse_ctx, execute_or_delegate_operator
from fiftyone.operators.server import create_response_generator

import fiftyone_vog as fov
from fiftyone_vog.install import install_plugin

PLUGIN = "@fiftyone-vog/vog"
COMPUTE = f"{PLUGIN}/compute_vog"
MODEL = "conftest:small_model"


@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


@pytest.fixture
def allow_imports(monkeypatch):
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")


def _from_the_app(uri, ds, params, **request):
    """Run an operator as the App's server does for a form's Execute button: the request carries
    the prompt's id; a streaming operator's messages are the JSON lines the App receives."""
    request_params = _parse_ctx(ctx={"dataset": ds, "params": params, "prompt_id": "prompt-1", **request})
    result = asyncio.run(execute_or_delegate_operator(uri, request_params))
    if result.is_generator:  # what fiftyone.operators.server streams to the App
        lines = [json.loads(line) for line in create_response_generator(result.result)]
        return [m["body"] for m in lines if m["cls"] == "InvocationRequest"], result
    return [r.to_json() for r in result.executor._requests], result


def _broken_checkpoints(checkpoint_dir, tmp_path):
    """The five trained checkpoints, the last one truncated: only loading it fails."""
    for path in sorted(glob.glob(os.path.join(checkpoint_dir, "epoch_*.pt"))):
        shutil.copy(path, tmp_path)
    with open(tmp_path / "epoch_5.pt", "r+b") as f:
        f.truncate(100)
    return str(tmp_path / "epoch_*.pt")


# -- 1. a run that fails tells the user, and the form comes back -----------------------------
def test_failed_compute_notifies_with_the_api_message_and_reopens_the_form(dataset, checkpoint_dir, tmp_path,
                                                                          allow_imports):
    spec = _broken_checkpoints(checkpoint_dir, tmp_path)
    with pytest.raises(fov.VoGError) as api:
        fov.compute_vog(dataset, spec, model=MODEL, progress=False)
    params = {"checkpoints": spec, "model": MODEL, "batch_size": 8, "vog_field": "mine"}
    requests, result = _from_the_app(COMPUTE, dataset, params)
    notes = [r["params"] for r in requests if r["operator_uri"] == "notify"]
    assert notes == [{"message": str(api.value), "variant": "error"}]
    prompts = [r["params"] for r in requests if r["operator_uri"] == "prompt_user_for_operation"]
    assert len(prompts) == 1 and prompts[0]["operator_uri"] == COMPUTE
    assert {k: prompts[0]["params"][k] for k in params} == params  # the values the user typed
    assert "mine" not in dataset.get_field_schema()


def test_failed_compute_still_raises_from_python(dataset, checkpoint_dir, tmp_path, allow_imports):
    spec = _broken_checkpoints(checkpoint_dir, tmp_path)
    with pytest.raises(ExecutionError, match="cannot read checkpoint"):
        foo.execute_operator(COMPUTE, ctx={"dataset": dataset, "params": {"checkpoints": spec, "model": MODEL}})


def test_failed_plain_operator_notifies_and_reopens_the_form(dataset):
    uri = f"{PLUGIN}/shuffle_labels"
    foo.execute_operator(uri, ctx={"dataset": dataset, "params": {"fraction": 0.25}})
    with pytest.raises(fov.VoGError) as api:
        fov.shuffle_labels(dataset, fraction=0.25)
    requests, result = _from_the_app(uri, dataset, {"fraction": 0.25, "seed": 7})
    assert result.error is None and result.result is None  # no result: the App closes the failed run's view
    assert [r["params"] for r in requests if r["operator_uri"] == "notify"] == [
        {"message": str(api.value), "variant": "error"}]
    prompts = [r["params"] for r in requests if r["operator_uri"] == "prompt_user_for_operation"]
    assert prompts[0]["operator_uri"] == uri and prompts[0]["params"] == {"fraction": 0.25, "seed": 7}
