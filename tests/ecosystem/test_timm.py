"""timm: architectures by name ("timm:NAME(k=v)"), checkpoints of timm's training script
(checkpoint-*.pth.tar with state_dict / state_dict_ema and argparse args), and the model's own
preprocessing as the default transform. Scores equal the naive float64 reference built through
timm's own loader and transform; the API, the CLI and the operator agree; nothing is downloaded."""

import os
import subprocess
import sys

import fiftyone.operators as foo
import numpy as np
import pytest
import torch

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin
from fiftyone_vog.inputs.checkpoints import model_factory

from conftest import build_dataset, resolve_form, run_cli
from eco import (  # noqa: F401  (fixtures)
    TIMM_MODELS,
    assert_close,
    dataset32,
    images32,
    script_args,
    spec,
    timm_eval_inputs,
    timm_reference,
    train_timm_script,
)

timm = pytest.importorskip("timm")

COMPUTE = "@fiftyone-vog/vog/compute_vog"
#: The training script's settings per architecture: the eval size 32 as --input-size / --img-size.
SCRIPT_SIZE = {"resnet": {"input_size": (3, 32, 32)}, "convnext": {"input_size": (3, 32, 32)}, "vit": {"img_size": 32}}


@pytest.fixture(scope="module")
def script_runs(images32, tmp_path_factory):
    """Per architecture: a folder written by timm's CheckpointSaver over 3 epochs, and its args."""
    paths, labels = images32
    runs = {}
    for key, (name, kwargs) in TIMM_MODELS.items():
        d = str(tmp_path_factory.mktemp(f"timm-{key}"))
        runs[key] = d, train_timm_script(d, name, kwargs, paths, labels, **SCRIPT_SIZE[key])
    return runs


@pytest.mark.parametrize("key", list(TIMM_MODELS))
def test_a_timm_training_folder_scores_to_the_naive_reference(dataset32, script_runs, key):
    name, kwargs = TIMM_MODELS[key]
    folder, args = script_runs[key]
    assert "last.pth.tar" in os.listdir(folder)  # timm's copy of the newest: left out, not scored twice
    res = fov.compute_vog(dataset32, folder, progress=False)  # no model=, no transform=
    c = res.config
    assert [os.path.basename(p) for p in c["checkpoints"]] == [f"checkpoint-{e}.pth.tar" for e in range(3)]
    assert c["model"] == spec(name, kwargs) and c["state_dict_key"] == "state_dict"
    assert c["preprocessing"]["source"] == "checkpoint"
    assert c["preprocessing"]["transform"]["data_config"]["input_size"] == [3, 32, 32]
    assert_close(dataset32.values("vog_raw"), timm_reference(folder, name, kwargs, args, dataset32))


def test_ema_weights_are_scored_on_request(dataset32, script_runs):
    name, kwargs = TIMM_MODELS["resnet"]
    folder, args = script_runs["resnet"]
    fov.compute_vog(dataset32, folder, progress=False)
    res = fov.compute_vog(dataset32, folder, state_dict_key="state_dict_ema", vog_field="ema", progress=False)
    assert res.config["state_dict_key"] == "state_dict_ema"
    assert_close(dataset32.values("ema_raw"), timm_reference(folder, name, kwargs, args, dataset32, use_ema=True))
    assert not np.allclose(dataset32.values("ema_raw"), dataset32.values("vog_raw"))
    with pytest.raises(fov.VoGError, match="has no 'state_dict_emma' entry of weights"):
        fov.compute_vog(dataset32, folder, state_dict_key="state_dict_emma", vog_field="typo", progress=False)


def test_a_timm_name_with_state_dicts_takes_the_models_own_preprocessing(dataset32, script_runs, tmp_path):
    name, kwargs = TIMM_MODELS["vit"]
    folder, _ = script_runs["vit"]
    for e in range(3):  # plain state_dicts, as torch.save(model.state_dict()) writes them
        state = torch.load(os.path.join(folder, f"checkpoint-{e}.pth.tar"), weights_only=False)["state_dict"]
        torch.save(state, tmp_path / f"vit_{e}.pth")
    res = fov.compute_vog(dataset32, str(tmp_path / "vit_*.pth"), model=spec(name, kwargs), progress=False)
    used = res.config["preprocessing"]
    assert used["source"] == "model" and used["transform"]["data_config"]["input_size"] == [3, 32, 32]
    # the same preprocessing timm's train.py gives this model at --img-size 32: the same scores
    args = script_args(name, kwargs, img_size=32)
    assert_close(dataset32.values("vog_raw"), timm_reference(folder, name, kwargs, args, dataset32))


@pytest.mark.parametrize(
    "model, message",
    [
        ("timm:resnet81", "unknown timm architecture 'resnet81'; did you mean resnet18"),
        ("timm:resnet18.no_such_tag", "has no configuration tagged 'no_such_tag'"),
        ("timm:resnet18(pretrained=True)", "pretrained= is not accepted in a model name"),
        ("timm:resnet18(checkpoint_path='/tmp/w.pth')", "checkpoint_path= is not accepted"),
        ("timm:resnet18(num_classes=3)", "set num_classes="),
        ("timm:hf-hub:timm/resnet18.a1_in1k", "name a timm architecture after 'timm:'"),
        ("timm:resnet18(3)", "write keyword arguments as NAME(key=value, ...)"),
        ("timm:resnet18(stem_width=__import__('os'))", "stem_width= must be a literal"),
        ("timm:resnet18(nope=1)", "timm could not build resnet18(nope=1): TypeError"),
    ],
)
def test_bad_timm_names_get_one_line(model, message):
    with pytest.raises(fov.VoGError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        model_factory(model, num_classes=4, allow_import=False)()
    assert "\n" not in str(e.value)


def test_timm_builds_nothing_from_the_network(tmp_path):
    """With every socket and the Hub's download functions broken, a timm name builds, its
    preprocessing resolves (a pretrained tag's too), and weights load."""
    torch.save(timm.create_model("resnet18", num_classes=3).state_dict(), tmp_path / "w.pth")
    code = f"""
import socket, huggingface_hub, huggingface_hub.file_download as fd
def refuse(*a, **k):
    raise AssertionError("network used")
socket.socket.connect = socket.socket.connect_ex = socket.create_connection = refuse
huggingface_hub.hf_hub_download = fd.hf_hub_download = huggingface_hub.snapshot_download = refuse
from fiftyone_vog.inputs.checkpoints import load_models
from fiftyone_vog.inputs.images import resolve_transform
(m,) = load_models([{str(tmp_path / "w.pth")!r}], "timm:resnet18", num_classes=3)
t, source = resolve_transform(None, m, "timm:resnet18")
m2 = load_models([{str(tmp_path / "w.pth")!r}], "timm:resnet18.tv_in1k", num_classes=3)[0]
t2, _ = resolve_transform(None, m2, "timm:resnet18.tv_in1k")
print(source, t["data_config"]["crop_pct"], t2["data_config"]["crop_pct"])
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "0"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["model", "0.95", "0.875"]  # resnet18's default (a1_in1k) and the tv_in1k tag's crop


# -- the App's form and operator, the CLI --------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


def test_the_form_takes_timm_names_without_the_import_switch(dataset32, script_runs, monkeypatch):
    monkeypatch.delenv("FIFTYONE_VOG_ALLOW_IMPORTS", raising=False)
    folder, _ = script_runs["convnext"]
    props, _ = resolve_form(COMPUTE, dataset32, {"checkpoints": folder, "model": "timm:convnext_ato"}, as_app=True)
    assert props["model"].invalid and "did you mean convnext_atto" in props["model"].error_message
    props, _ = resolve_form(COMPUTE, dataset32, {"checkpoints": folder, "model": "timm:convnext_at"})
    assert "timm:convnext_atto" in [c.value for c in props["model"].view.choices]  # autocomplete
    name, kwargs = TIMM_MODELS["convnext"]
    for model in (spec(name, kwargs), None):  # named, or left to timm's args in the checkpoints
        props, _ = resolve_form(COMPUTE, dataset32, {"checkpoints": folder, "model": model})
        assert not any(p.invalid for p in props.values()), [(k, p.error_message) for k, p in props.items() if p.invalid]
        label = props["transform_used"].view.label
        assert label.startswith("Preprocessing: timm's eval transform") and "32×32" in label
        assert label.endswith("(timm's training arguments in the checkpoints)")


def test_the_operator_and_the_cli_score_a_timm_folder_as_the_api(dataset32, script_runs, images32):
    folder, _ = script_runs["resnet"]
    want = fov.compute_vog(dataset32, folder, vog_field="api", progress=False).raw["api_raw"]
    foo.execute_operator(COMPUTE, ctx={"dataset": dataset32, "params": {"checkpoints": folder}})
    assert np.array_equal(dataset32.values("vog_raw"), want)

    ds = build_dataset(*images32, name="fiftyone-vog-timm-cli")
    ds.persistent = True
    try:
        r = run_cli("compute", ds.name, "--checkpoints", folder, "--quiet")
        assert r.returncode == 0, r.stderr[-2000:]
        assert "preprocessing: timm's eval transform" in r.stdout and "timm's training arguments" in r.stdout
        ds.reload()
        assert np.array_equal(ds.values("vog_raw"), want)
        r = run_cli("compute", ds.name, "--checkpoints", folder, "--model", "timm:resnet81", "--vog-field", "typo")
        assert r.returncode == 2 and "did you mean resnet18" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    finally:
        ds.delete()


def test_the_help_names_timm():
    r = subprocess.run([sys.executable, "-m", "fiftyone_vog.cli", "compute", "--help"], capture_output=True, text=True)
    assert "timm:resnet18" in r.stdout and "--state-dict-key" in r.stdout and "fiftyone-vog[timm]" in r.stdout
