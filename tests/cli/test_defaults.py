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


def test_every_compute_default_is_the_options_tables_in_the_api_cli_and_form(dataset, checkpoint_dir):
    """One table (``options.DEFAULTS``): the signature, ``compute``'s parser, the form's controls and
    the kwargs an empty form produces all agree with it."""
    from fiftyone_vog import cli
    from fiftyone_vog.app.forms import compute_vog_kwargs
    from fiftyone_vog.options import DEFAULTS

    params = inspect.signature(fov.compute_vog).parameters
    args = cli.build_parser().parse_args(["compute", "ds", "--checkpoints", "x"])
    uri = "@fiftyone-vog/vog/compute_vog"
    op = foo.get_operator(uri)

    def ctx(p):
        return ExecutionContext(
            request_params={"dataset_name": dataset.name, "params": p},
            operator_uri=uri,
            required_secrets=op._plugin_secrets,
        )

    props = op.resolve_input(ctx({})).type.properties
    kw = compute_vog_kwargs(ctx({"checkpoints": checkpoint_dir}))
    for name, value in DEFAULTS.items():
        if name != "transform":  # the API's None means the "rgb" preset
            assert params[name].default == value, name
        assert getattr(args, name) == value, name
        assert kw[name] == value, name
        if name in props and name != "label_field":  # the form offers the dataset's label fields
            assert props[name].default == value, name
