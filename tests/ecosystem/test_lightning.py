"""PyTorch Lightning: a LightningModule trained a few steps by the real ``lightning.Trainer`` with
the VoGCheckpoint callback leaves a folder that scores with no other argument, to the naive float64
reference (weights read from Lightning's own .ckpt files, inputs by timm's own transform), through
the API, the CLI and the operator; Lightning's own .ckpt files score the same."""

import json
import os

import fiftyone.operators as foo
import numpy as np
import pytest
import torch
from PIL import Image

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin
from fiftyone_vog.engine import VoGOptions
from fiftyone_vog.options import DEFAULT_TARGET

from conftest import CLASSES, build_dataset, run_cli
from eco import assert_close, dataset32, images32, train_lightning  # noqa: F401  (fixtures)
from naive import naive_vog

L = pytest.importorskip("lightning")
timm = pytest.importorskip("timm")

#: The evaluation preprocessing the training used, recorded by the callback.
TF32 = {
    "kind": "timm",
    "data_config": {
        "input_size": [3, 32, 32],
        "interpolation": "bilinear",
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "crop_pct": 1.0,
        "crop_mode": "center",
    },
}
COMPUTE = "@fiftyone-vog/vog/compute_vog"


def _inputs(paths):
    from timm.data import create_transform

    tf = create_transform(**{**TF32["data_config"], "input_size": (3, 32, 32)}, is_training=False)
    return torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])


@pytest.fixture(scope="module")
def lightning_run(images32, tmp_path_factory):
    """timm's resnet18 inside a LightningModule, 3 epochs: the callback's folder and ModelCheckpoint's."""
    from fiftyone_vog.inputs.callbacks import VoGCheckpoint

    root = tmp_path_factory.mktemp("lightning")
    paths, labels = images32
    x, y = _inputs(paths), torch.tensor([CLASSES.index(l) for l in labels])
    callbacks = [
        VoGCheckpoint(root / "vog", transform=TF32),  # the architecture found, the classes from hparams
        VoGCheckpoint(root / "every2", every_n_epochs=2, transform=TF32),
        L.pytorch.callbacks.ModelCheckpoint(root / "lightning", save_top_k=-1, every_n_epochs=1),
    ]
    net = timm.create_model("resnet18", pretrained=False, num_classes=len(CLASSES))
    train_lightning(net, x, y, callbacks, root=root, classes=list(CLASSES))
    return root


def _reference(ckpt_dir, ds):
    """Naive float64 VoG over Lightning's own .ckpt files, their ``model.`` keys stripped here."""
    models = []
    for name in sorted(os.listdir(ckpt_dir)):
        state = torch.load(ckpt_dir / name, weights_only=True)["state_dict"]
        m = timm.create_model("resnet18", pretrained=False, num_classes=len(CLASSES))
        m.load_state_dict({k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")})
        models.append(m.eval())
    paths, labels = ds.values(["filepath", "ground_truth.label"])
    y = torch.tensor([CLASSES.index(l) for l in labels])
    return naive_vog(models, _inputs(paths), y, VoGOptions(target=DEFAULT_TARGET), list(range(len(models))))


def test_the_callback_records_files_epochs_steps_model_classes_transform(lightning_run):
    m = json.loads((lightning_run / "vog" / "vog_checkpoints.json").read_text())
    assert (m["model"], m["classes"], m["transform"]) == ("timm:resnet18", CLASSES, TF32)
    assert m["writer"] == "lightning:VoGCheckpoint"
    assert [(c["file"], c["epoch"], c["step"]) for c in m["checkpoints"]] == [
        (f"epoch_{e}.pt", e, 3 * e)
        for e in (1, 2, 3)  # 12 images, batches of 4
    ]
    every2 = json.loads((lightning_run / "every2" / "vog_checkpoints.json").read_text())
    assert [c["epoch"] for c in every2["checkpoints"]] == [2, 3]  # every 2nd, and the last
    state = torch.load(lightning_run / "vog" / "epoch_1.pt", weights_only=True)
    assert "conv1.weight" in state and not any(k.startswith(("model.", "loss.")) for k in state)


def test_a_callback_folder_scores_to_the_naive_reference_with_no_other_argument(dataset32, lightning_run):
    res = fov.compute_vog(dataset32, str(lightning_run / "vog"), progress=False)
    assert res.config["model"] == "timm:resnet18"
    assert res.config["preprocessing"] == {"transform": TF32, "source": "manifest"}
    assert_close(dataset32.values("vog_raw"), _reference(lightning_run / "lightning", dataset32))


def test_lightnings_own_ckpt_files_score_the_same(dataset32, lightning_run):
    ckpts = lightning_run / "lightning"
    assert sorted(os.listdir(ckpts)) == [f"epoch={e}-step={3 * (e + 1)}.ckpt" for e in range(3)]
    fov.compute_vog(dataset32, str(lightning_run / "vog"), progress=False)
    fov.compute_vog(dataset32, str(ckpts), model="timm:resnet18", transform=TF32, vog_field="pl", progress=False)
    assert np.array_equal(dataset32.values("pl_raw"), dataset32.values("vog_raw"))


def test_a_network_under_any_attribute_next_to_a_weighted_loss_loads_from_a_ckpt(dataset32, images32, tmp_path):
    """The weights carry the LightningModule's attribute (``encoder.``) as a prefix, beside the
    loss's ``loss.weight`` buffer: only the network's keys load, strictly."""
    paths, labels = images32
    x, y = _inputs(paths), torch.tensor([CLASSES.index(l) for l in labels])
    net = timm.create_model("resnet18", pretrained=False, num_classes=len(CLASSES))
    ckpt = L.pytorch.callbacks.ModelCheckpoint(tmp_path, save_top_k=-1, every_n_epochs=1)
    train_lightning(net, x, y, [ckpt], epochs=2, root=tmp_path, attribute="encoder", loss_weight=torch.ones(4))
    state = torch.load(next(tmp_path.glob("*.ckpt")), weights_only=True)["state_dict"]
    assert "loss.weight" in state and "encoder.conv1.weight" in state
    res = fov.compute_vog(dataset32, str(tmp_path), model="timm:resnet18", transform=TF32, progress=False)
    assert len(res.config["checkpoints"]) == 2 and np.all(np.isfinite(dataset32.values("vog_raw")))


@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


def test_the_operator_and_the_cli_score_a_callback_folder_as_the_api(dataset32, lightning_run, images32):
    folder = str(lightning_run / "vog")
    want = fov.compute_vog(dataset32, folder, vog_field="api", progress=False).raw["api_raw"]
    foo.execute_operator(COMPUTE, ctx={"dataset": dataset32, "params": {"checkpoints": folder}})
    assert np.array_equal(dataset32.values("vog_raw"), want)
    ds = build_dataset(*images32, name="fiftyone-vog-lightning-cli")
    ds.persistent = True
    try:
        r = run_cli("compute", ds.name, "--checkpoints", folder, "--quiet")
        assert r.returncode == 0, r.stderr[-2000:]
        assert "(the checkpoints' manifest)" in r.stdout
        ds.reload()
        assert np.array_equal(ds.values("vog_raw"), want)
    finally:
        ds.delete()
