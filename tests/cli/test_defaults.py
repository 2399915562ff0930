"""The measured default target is the same, and visible, in the API, the CLI --help and the App form."""

import inspect
import os
import subprocess
import sys

import fiftyone.operators as foo
import pytest
from fiftyone.operators.executor import ExecutionContext

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin
from fiftyone_vog.options import DEFAULT_TARGET as TARGET

from conftest import ROOT  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


def test_default_target_is_probability_in_the_api_signature():
    assert TARGET == "probability"
    params = inspect.signature(fov.compute_vog).parameters
    assert params["target"].default == "probability"
    assert params["companions"].default is True
    assert "logit" in fov.compute_vog.__doc__  # the paper's option stays documented


def test_default_target_in_cli_help():
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-m", "fiftyone_vog.cli", "compute", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    flat = " ".join(out.split())
    assert "default: probability" in flat and "logit" in flat and "--no-companions" in flat


def test_default_target_and_companions_in_the_app_form(dataset, checkpoint_dir):
    uri = "@fiftyone-vog/vog/compute_vog"
    op = foo.get_operator(uri)
    ctx = ExecutionContext(
        request_params={"dataset_name": dataset.name, "params": {}},
        operator_uri=uri,
        required_secrets=op._plugin_secrets,
    )
    props = op.resolve_input(ctx).type.properties
    assert props["target"].default == "probability"
    assert props["companions"].default is True
    from fiftyone_vog.app.forms import compute_vog_kwargs

    ctx = ExecutionContext(
        request_params={"dataset_name": dataset.name, "params": {"checkpoints": checkpoint_dir}},
        operator_uri=uri,
        required_secrets=op._plugin_secrets,
    )
    kw = compute_vog_kwargs(ctx)
    assert kw["target"] == "probability" and kw["companions"] is True
