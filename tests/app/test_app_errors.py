"""Failures and mistakes in the App (issue 11, items 1-3), through FiftyOne's own executor: a run
that fails reaches the user as an error notification with the API's message and reopens the form;
the form's inline checks; architectures offered by name."""

import asyncio
import glob
import json
import os
import shutil

import fiftyone.operators as foo
import pytest
from fiftyone.operators.executor import ExecutionError, _parse_ctx, execute_or_delegate_operator
from fiftyone.operators.server import create_response_generator

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin

from conftest import resolve_form

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
    """Run an operator as the App's server does for a form's Execute button: the App's request
    body names the operator; a streaming operator's messages are the JSON lines the App receives."""
    request_params = _parse_ctx(ctx={"dataset": ds, "params": params, "operator_uri": uri, **request})
    result = asyncio.run(execute_or_delegate_operator(uri, request_params))
    if result.is_generator:  # what fiftyone.operators.server streams to the App
        lines = [json.loads(line) for line in create_response_generator(result.result)]
        return [m["body"] for m in lines if m["cls"] == "InvocationRequest"], result
    return [r.to_json() for r in result.executor._requests], result


def _broken_checkpoints(checkpoint_dir, tmp_path):
    """The five trained checkpoints, the third one truncated: the form reads the first one, the run
    fails on loading the third."""
    for path in sorted(glob.glob(os.path.join(checkpoint_dir, "epoch_*.pt"))):
        shutil.copy(path, tmp_path)
    with open(tmp_path / "epoch_3.pt", "r+b") as f:
        f.truncate(100)
    return str(tmp_path / "epoch_*.pt")


# -- 1. a run that fails tells the user, and the form comes back -----------------------------
def test_failed_compute_notifies_with_the_api_message_and_reopens_the_form(
    dataset, checkpoint_dir, tmp_path, allow_imports
):
    spec = _broken_checkpoints(checkpoint_dir, tmp_path)
    with pytest.raises(fov.VoGError) as api:
        fov.compute_vog(dataset, spec, model=MODEL, progress=False)
    params = {"checkpoints": spec, "model": MODEL, "batch_size": 8, "vog_field": "mine"}
    requests, result = _from_the_app(COMPUTE, dataset, params)
    notes = [r["params"] for r in requests if r["operator_uri"] == "notify"]
    assert notes == [{"message": _app(str(api.value)), "variant": "error"}]  # the API's, in the form's words
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
    # a failure only the run finds (an already shuffled field is the form's inline error)
    dataset.classes, dataset.default_classes = {}, []
    dataset.set_values("ground_truth.label", ["circle"] * len(dataset))
    with pytest.raises(fov.VoGError) as api:
        fov.shuffle_labels(dataset, fraction=0.25)
    assert "shuffling needs at least 2" in str(api.value)
    requests, result = _from_the_app(uri, dataset, {"fraction": 0.25, "seed": 7})
    assert result.error is None and result.result is None  # no result: the App closes the failed run's view
    assert [r["params"] for r in requests if r["operator_uri"] == "notify"] == [
        {"message": str(api.value), "variant": "error"}
    ]
    prompts = [r["params"] for r in requests if r["operator_uri"] == "prompt_user_for_operation"]
    assert prompts[0]["operator_uri"] == uri and prompts[0]["params"] == {"fraction": 0.25, "seed": 7}


# -- 2. the run's up-front checks are the form's inline errors ------------------------------
def _form(uri, ds, params, **request):
    """Resolve the form as the App sends its requests."""
    return resolve_form(uri, ds, params, as_app=True, **request)


def _plugin_module(name):
    """The plugin's own copy of ``fiftyone_vog.<name>`` (e.g. ``inputs.checkpoints``): FiftyOne
    imports the plugin folder under a name of its own, and its submodules stay loaded between
    requests."""
    import importlib

    package = type(foo.get_operator(COMPUTE)).__module__.rsplit(".", 2)[0]  # <root>.app.operators
    return importlib.import_module(f"{package}.{name}")


def _api_error(fn, *args, **kwargs):
    with pytest.raises(fov.VoGError) as e:
        fn(*args, **kwargs)
    return str(e.value)


def _app(message, operator="compute_vog"):
    """An API message in the form's words, as the App shows it (``forms.app_message``)."""
    from fiftyone_vog.app.forms import app_message

    return app_message(message, operator)


def _inline(ds, params, prop):
    props, val = _form(COMPUTE, ds, params)
    assert props[prop].invalid, f"{prop} is not invalid"
    assert val.invalid and f".{prop}" in [e.path for e in val.errors]  # Execute is disabled
    return props[prop].error_message


def test_unlabeled_samples_with_label_mode_true(dataset, checkpoint_dir, allow_imports):
    sample = dataset.first()
    sample["ground_truth"] = None
    sample.save()
    params = {"checkpoints": checkpoint_dir, "model": MODEL}
    msg = _api_error(fov.compute_vog, dataset, checkpoint_dir, model=MODEL, progress=False)
    assert msg == (
        "1 samples have no 'ground_truth' label; label_mode='true' needs labels — use label_mode='auto' "
        "(true label where present, the model's prediction elsewhere)"
    )
    assert (
        _inline(dataset, params, "label_mode")
        == _app(msg)
        == (
            "1 samples have no 'ground_truth' label; 'Label mode' set to true needs labels — set 'Label mode' to auto "
            "(true label where present, the model's prediction elsewhere)"
        )
    )
    props, _ = _form(COMPUTE, dataset, {**params, "label_mode": "auto"})
    assert not props["label_mode"].invalid
    # the target view counts: the labeled rest is fine
    view = dataset.skip(1)
    props, _ = _form(COMPUTE, dataset, {**params, "view_target": "CURRENT_VIEW"}, view=view._serialize())
    assert not props["label_mode"].invalid


@pytest.mark.parametrize("device", ["cuda:99", "gpu"])
def test_a_device_that_does_not_exist(dataset, checkpoint_dir, device):
    msg = _api_error(fov.compute_vog, dataset, checkpoint_dir, model="resnet18", device=device, progress=False)
    assert _inline(dataset, {"checkpoints": checkpoint_dir, "device": device}, "device") == _app(msg)
    assert "cuda:99" not in msg or "does not exist" in msg or "CUDA is not available" in msg
    props, _ = _form(COMPUTE, dataset, {"checkpoints": checkpoint_dir, "device": "cpu"})
    assert not props["device"].invalid


def test_classes_that_disagree_with_the_model(dataset, checkpoint_dir, allow_imports):
    params = {"checkpoints": checkpoint_dir, "model": MODEL, "classes": "circle,square,stripes"}
    msg = _inline(dataset, params, "classes")
    assert "does not fit the architecture" in msg and "built for 3 classes" in msg and "'Classes'" in msg
    assert "num_classes" not in msg  # the form has no such control
    assert not _form(COMPUTE, dataset, {**params, "classes": "circle,square,stripes,dots"})[0]["classes"].invalid


def test_classes_that_disagree_with_a_torchscript_model(dataset, checkpoint_dir, tmp_path, allow_imports):
    """No architecture to build: the model's output size is checked on one image of the view
    (TorchScript is code: the API's opt-in, the App the server's switch)."""
    import torch

    from conftest import small_model

    for i, path in enumerate(sorted(glob.glob(os.path.join(checkpoint_dir, "epoch_*.pt")))[:2]):
        model = small_model()
        model.load_state_dict(torch.load(path, weights_only=True))
        torch.jit.save(torch.jit.script(model.eval()), str(tmp_path / f"epoch_{i}.pt"))
    classes = ["circle", "square", "stripes", "dots", "extra"]
    params = {"checkpoints": str(tmp_path), "classes": ",".join(classes)}
    msg = _api_error(
        fov.compute_vog,
        dataset,
        str(tmp_path),
        classes=classes,
        label_mode="predicted",
        allow_torchscript=True,
        progress=False,
    )
    assert _inline(dataset, {**params, "label_mode": "predicted"}, "classes") == _app(msg)
    assert msg.startswith("the model outputs (4,) scores per sample but 5 classes were given")


def test_checkpoints_that_do_not_fit_the_architecture_are_loaded_once(dataset, checkpoint_dir, monkeypatch):
    fc, preflight = _plugin_module("inputs.checkpoints"), _plugin_module("core.preflight")
    api = _api_error(fov.compute_vog, dataset, checkpoint_dir, model="resnet18", progress=False)  # not counted:
    preflight._CACHE.clear()  # the plugin runs the package's own modules, the API's loads would count
    loads = []
    real = fc.load_checkpoint
    monkeypatch.setattr(fc, "load_checkpoint", lambda *a, **k: loads.append(a[0]) or real(*a, **k))
    params = {"checkpoints": checkpoint_dir, "model": "resnet18"}
    msg = _inline(dataset, params, "model")
    assert msg.startswith(f"{os.path.join(checkpoint_dir, 'epoch_1.pt')} does not fit the architecture")
    assert msg == api
    assert len(loads) == 1  # one checkpoint, not all five
    _inline(dataset, {**params, "vog_field": "typing"}, "model")  # the next keystroke
    assert len(loads) == 1  # from the cache: same path, mtime and size
    os.utime(loads[0], ns=(0, 0))  # a rewritten file is read again
    try:
        _inline(dataset, params, "model")
        assert len(loads) == 2
    finally:
        os.utime(loads[0])


def test_an_output_field_of_another_type(dataset, checkpoint_dir, allow_imports):
    msg = _api_error(
        fov.compute_vog, dataset, checkpoint_dir, model=MODEL, vog_field="ground_truth", overwrite=True, progress=False
    )
    for overwrite in (False, True):
        got = _inline(
            dataset,
            {"checkpoints": checkpoint_dir, "model": MODEL, "vog_field": "ground_truth", "overwrite": overwrite},
            "vog_field",
        )
        assert got.startswith(_app(msg)) and "Overwrite" not in msg
        assert "field 'ground_truth' exists with type EmbeddedDocumentField; choose another" in got


def test_a_float_field_no_vog_run_wrote(dataset, checkpoint_dir, allow_imports):
    import fiftyone as fo

    dataset.add_sample_field("mine", fo.FloatField)
    msg = _api_error(
        fov.compute_vog, dataset, checkpoint_dir, model=MODEL, vog_field="mine", overwrite=True, progress=False
    )
    assert msg.startswith("field 'mine' exists and no VoG run wrote it")
    for overwrite in (False, True):  # not "tick 'Overwrite'": it would be refused
        got = _inline(
            dataset,
            {"checkpoints": checkpoint_dir, "model": MODEL, "vog_field": "mine", "overwrite": overwrite},
            "vog_field",
        )
        assert got.startswith(_app(msg)) and "tick" not in got and "'Output field'" in got


def test_a_glob_that_matches_images(dataset, image_dir):
    folder = os.path.dirname(image_dir[0][0])
    spec = os.path.join(folder, "*")
    msg = _api_error(fov.compute_vog, dataset, spec, model="resnet18", progress=False)
    assert _inline(dataset, {"checkpoints": spec, "model": "resnet18"}, "checkpoints") == msg
    assert msg.startswith("the checkpoints include image files (img_000.png and 39 more), not training checkpoints")


def test_a_good_form_is_valid(dataset, checkpoint_dir, allow_imports):
    props, val = _form(COMPUTE, dataset, {"checkpoints": checkpoint_dir, "model": MODEL, "device": "cpu"})
    assert not val.invalid, [(e.path, e.reason) for e in val.errors]


# -- 3. architectures of this package and torchvision by name, without the import switch ----
@pytest.fixture
def small_cnn_checkpoints(tmp_path):
    """Two checkpoints of the package's SmallCNN as the demo builds it (4 classes)."""
    import torch

    from fiftyone_vog.models import SmallCNN

    for i in range(2):
        torch.manual_seed(i)
        torch.save(SmallCNN(num_classes=4).state_dict(), tmp_path / f"epoch_{i + 1}.pt")
    return str(tmp_path / "epoch_*.pt")


@pytest.mark.parametrize("name", ["SmallCNN", "fiftyone_vog.models:SmallCNN"])
def test_package_architectures_need_no_switch(dataset, small_cnn_checkpoints, monkeypatch, name):
    monkeypatch.delenv("FIFTYONE_VOG_ALLOW_IMPORTS", raising=False)
    props, val = _form(COMPUTE, dataset, {"checkpoints": small_cnn_checkpoints, "model": name})
    assert not val.invalid, [(e.path, e.reason) for e in val.errors]
    choices = [c.value for c in props["model"].view.choices]
    assert {"SmallCNN", "fiftyone_vog.models:SmallCNN", "MLP", "CifarResNet18", "resnet18"} <= set(choices)
    foo.execute_operator(
        COMPUTE,
        ctx={
            "dataset": dataset,
            "params": {"checkpoints": small_cnn_checkpoints, "model": name, "vog_field": "by_name"},
        },
    )
    assert dataset.count("by_name") == 40
    assert fov.get_vog_run(dataset, "by_name").config.model == name


def test_other_code_still_needs_the_switch(dataset, checkpoint_dir, monkeypatch):
    monkeypatch.delenv("FIFTYONE_VOG_ALLOW_IMPORTS", raising=False)
    for spec in ("os:system", "fiftyone_vog.models:nn"):
        msg = _inline(dataset, {"checkpoints": checkpoint_dir, "model": spec}, "model")
        assert "FIFTYONE_VOG_ALLOW_IMPORTS=1" in msg
        with pytest.raises(ExecutionError, match="FIFTYONE_VOG_ALLOW_IMPORTS"):
            foo.execute_operator(
                COMPUTE, ctx={"dataset": dataset, "params": {"checkpoints": checkpoint_dir, "model": spec}}
            )


def test_a_label_field_of_another_type_keeps_the_form_usable(dataset, checkpoint_dir, allow_imports):
    """From Python a non-Classification label field can reach the form: its checks skip the model."""
    props, val = _form(COMPUTE, dataset, {"checkpoints": checkpoint_dir, "model": MODEL, "label_field": "filepath"})
    assert not props["model"].invalid and not props["label_mode"].invalid


def test_a_checkpoint_of_another_output_size_names_the_forms_control(dataset, small_cnn_checkpoints):
    """The API's hint names classes= and num_classes=; the form has 'Classes' and no num_classes."""
    params = {
        "checkpoints": small_cnn_checkpoints,
        "model": "SmallCNN",
        "classes": "circle,dots,square,stripes,extra",
    }  # 5, not 4
    api = _api_error(
        fov.compute_vog,
        dataset,
        small_cnn_checkpoints,
        model="SmallCNN",
        classes=["circle", "dots", "square", "stripes", "extra"],
    )
    assert "check classes= or pass num_classes=" in api
    props, _ = _form(COMPUTE, dataset, params)  # as the App asks
    msg = next(p.error_message for p in props.values() if p.invalid)
    assert msg.endswith("if the checkpoint has another output size, check 'Classes')"), msg
    assert "=" not in msg.split("does not fit the architecture")[1].split("(")[-1]
