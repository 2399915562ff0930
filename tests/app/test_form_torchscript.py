"""The Compute VoG form accepts TorchScript checkpoints where the server's owner allows them
(FIFTYONE_VOG_ALLOW_IMPORTS=1), as the run does, and refuses them inline otherwise."""

import os

import fiftyone.operators as foo
import pytest
import torch
from fiftyone.operators.executor import ExecutionContext

from fiftyone_vog.app.install import install_plugin

from conftest import small_model

COMPUTE = "@fiftyone-vog/vog/compute_vog"


@pytest.fixture(scope="module")
def torchscript_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ts")
    torch.manual_seed(0)
    for i in (1, 2):
        torch.jit.save(torch.jit.script(small_model().eval()), os.path.join(out, f"epoch_{i}.pt"))
    return str(out)


def _model_prop(ds, params):
    install_plugin()
    op = foo.get_operator(COMPUTE)
    ctx = ExecutionContext(
        request_params={"dataset_name": ds.name, "params": dict(params)},
        operator_uri=COMPUTE,
        required_secrets=op._plugin_secrets,
    )
    return op.resolve_input(ctx).type.properties["model"]


def test_torchscript_checkpoints_pass_the_form_when_the_owner_allows_them(dataset, torchscript_dir, monkeypatch):
    params = {"checkpoints": os.path.join(torchscript_dir, "epoch_*.pt")}
    monkeypatch.delenv("FIFTYONE_VOG_ALLOW_IMPORTS", raising=False)
    prop = _model_prop(dataset, params)
    assert prop.invalid and "TorchScript" in prop.error_message
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")
    prop = _model_prop(dataset, params)
    assert not prop.invalid, prop.error_message
