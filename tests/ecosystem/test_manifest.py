"""The checkpoint folder's manifest (vog_checkpoints.json): CheckpointSaver writes it, the folder
form of compute_vog reads it (order, model, classes, transform), and bad manifests are refused
with one line before any work, the dataset unchanged."""

import json
import os

import numpy as np
import pytest
import torch

import fiftyone_vog as fov
from fiftyone_vog.inputs.checkpoints import resolve_checkpoints
from fiftyone_vog.inputs.manifest import MANIFEST_NAME, ManifestWriter, read_manifest
from fiftyone_vog.inputs.training import CheckpointSaver, train_classifier
from fiftyone_vog.models import SmallCNN

from conftest import CLASSES, make_images, to_tensor


def _train(directory, every=1, epochs=3, **saver_kw):
    imgs, labels = make_images(32, seed=1)
    torch.manual_seed(0)
    saver = CheckpointSaver(directory, every=every, **saver_kw)
    train_classifier(SmallCNN(num_classes=len(CLASSES)), to_tensor(imgs), torch.from_numpy(labels), epochs, saver)
    return saver


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A folder saved by CheckpointSaver with the architecture, classes and transform recorded."""
    d = tmp_path_factory.mktemp("recorded")
    _train(d, model="SmallCNN", classes=CLASSES, transform="rgb")
    return d


def _manifest(d):
    return json.loads((d / MANIFEST_NAME).read_text())


def test_checkpoint_saver_records_files_epochs_model_classes_and_transform(recorded):
    m = _manifest(recorded)
    assert m["format"] == "fiftyone-vog-checkpoints" and m["version"] == 1
    assert (m["model"], m["classes"], m["transform"]) == ("SmallCNN", CLASSES, "rgb")
    assert [(c["file"], c["epoch"]) for c in m["checkpoints"]] == [(f"epoch_{e}.pt", e) for e in (1, 2, 3)]


def test_a_recorded_folder_scores_with_no_other_argument(dataset, recorded):
    res = fov.compute_vog(dataset, str(recorded), progress=False)
    # the same as naming everything: the manifest is only the defaults
    want = fov.compute_vog(
        dataset,
        sorted(str(p) for p in recorded.glob("epoch_*.pt")),
        model="SmallCNN",
        classes=CLASSES,
        transform="rgb",
        vog_field="named",
        progress=False,
    )
    assert np.array_equal(res.raw["vog_raw"], want.raw["named_raw"])
    c = res.config
    assert c["model"] == "SmallCNN" and c["manifest"] == str(recorded / MANIFEST_NAME)
    assert c["preprocessing"] == {"transform": "rgb", "source": "manifest"}


def test_manifest_order_is_training_order_not_file_names(tmp_path):
    for name in ("b.pt", "a.pt", "c.pt"):
        (tmp_path / name).write_bytes(b"x")
    w = ManifestWriter(tmp_path)
    for epoch, name in ((1, "b.pt"), (2, "c.pt"), (3, "a.pt")):
        w.add(tmp_path / name, epoch)
    assert [p.name for p in resolve_checkpoints(str(tmp_path))] == ["b.pt", "c.pt", "a.pt"]


def test_resumed_training_continues_the_manifest_a_new_run_replaces_it(tmp_path):
    _train(tmp_path, epochs=3, model="SmallCNN")
    w = ManifestWriter(tmp_path, model="SmallCNN")  # resumed at epoch 4
    (tmp_path / "epoch_4.pt").write_bytes((tmp_path / "epoch_3.pt").read_bytes())
    w.add(tmp_path / "epoch_4.pt", 4)
    assert [c["epoch"] for c in _manifest(tmp_path)["checkpoints"]] == [1, 2, 3, 4]
    _train(tmp_path, epochs=2, model="SmallCNN")  # trained again from epoch 1: the old entries go
    assert [c["epoch"] for c in _manifest(tmp_path)["checkpoints"]] == [1, 2]
    _train(tmp_path, epochs=2, model="MLP")  # another model: nothing of the earlier run is kept
    assert [c["epoch"] for c in _manifest(tmp_path)["checkpoints"]] == [1, 2]


def test_a_foreign_vog_checkpoints_json_is_never_overwritten(tmp_path):
    (tmp_path / MANIFEST_NAME).write_text('{"mine": true}')
    with pytest.raises(fov.VoGError, match="not a fiftyone-vog checkpoint manifest"):
        _train(tmp_path, epochs=1)
    assert (tmp_path / MANIFEST_NAME).read_text() == '{"mine": true}'
    assert not list(tmp_path.glob("*.pt"))  # refused before any checkpoint was written


def _edit(d, **changes):
    m = _manifest(d)
    m.update(changes)
    (d / MANIFEST_NAME).write_text(json.dumps(m))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"version": 2}, "newer than this fiftyone-vog reads"),
        ({"checkpoints": [{"file": "../epoch_1.pt", "epoch": 1}]}, "relative to the folder, inside it"),
        ({"checkpoints": [{"file": "/etc/passwd", "epoch": 1}]}, "relative to the folder, inside it"),
        ({"checkpoints": [{"file": "gone.pt", "epoch": 1}, {"file": "epoch_1.pt", "epoch": 2}]}, "does not exist"),
        ({"checkpoints": [{"file": "epoch_1.pt", "epoch": "one"}]}, "must be a whole number"),
        ({"classes": "cat,dog"}, "'classes' must be a list"),
        ({"model": "os:system"}, "Python code that is not imported on a file's word"),
        ({"model": "resnet181"}, "did you mean resnet18"),
    ],
)
def test_bad_manifests_are_refused_before_any_work(dataset, tmp_path, changes, message):
    _train(tmp_path, model="SmallCNN", classes=CLASSES)
    _edit(tmp_path, **changes)
    schema = sorted(dataset.get_field_schema())
    with pytest.raises(fov.VoGError, match=message) as e:
        fov.compute_vog(dataset, str(tmp_path), progress=False)
    assert "\n" not in str(e.value) and MANIFEST_NAME in str(e.value)
    assert sorted(dataset.get_field_schema()) == schema and dataset.list_runs() == []


def test_a_link_out_of_the_folder_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    _train(outside, model="SmallCNN")
    d = tmp_path / "run"
    d.mkdir()
    for e in (1, 2):
        os.symlink(outside / f"epoch_{e}.pt", d / f"epoch_{e}.pt")
    w = ManifestWriter(d, model="SmallCNN")
    for e in (1, 2):
        w.add(d / f"epoch_{e}.pt", e)
    with pytest.raises(fov.VoGError, match="link out of the folder"):
        resolve_checkpoints(str(d))


def test_a_model_named_as_code_in_a_manifest_loads_when_the_caller_names_it(dataset, tmp_path):
    _train(tmp_path, model="fiftyone_vog.models:SmallCNN", classes=CLASSES)
    _edit(tmp_path, model="conftest:small_model")  # code: not imported on the file's word
    with pytest.raises(fov.VoGError, match="pass model='conftest:small_model' yourself"):
        fov.compute_vog(dataset, str(tmp_path), progress=False)
    res = fov.compute_vog(dataset, str(tmp_path), model="fiftyone_vog.models:SmallCNN", progress=False)
    assert res.config["model"] == "fiftyone_vog.models:SmallCNN"


def test_recorded_classes_are_the_models_and_checked_against_the_labels(dataset, tmp_path):
    _train(tmp_path, model="SmallCNN", classes=list(reversed(CLASSES)))
    res = fov.compute_vog(dataset, str(tmp_path), progress=False)
    assert res.config["classes"] == list(reversed(CLASSES))  # the model's order, not the dataset's
    with pytest.raises(fov.VoGError, match="differ from the model's output order recorded in"):
        fov.compute_vog(dataset, str(tmp_path), classes=CLASSES, vog_field="other", progress=False)
    _edit(tmp_path, classes=["circle", "square", "stripes", "ring"])
    with pytest.raises(fov.VoGError, match=r"\['dots'\] .* not among the 4 classes the model was trained on") as e:
        fov.compute_vog(dataset, str(tmp_path), vog_field="other", progress=False)
    assert MANIFEST_NAME in str(e.value)


def test_read_manifest_of_a_folder_without_one_is_none(tmp_path):
    assert read_manifest(tmp_path) is None
