"""Each user error gets a clear VoGError, and a failing or interrupted run changes nothing."""

import os
import shutil

import fiftyone as fo
import pytest
import torch

import fiftyone_vog as fov

from conftest import CLASSES, small_model


def _nan_checkpoints(tmp_path, checkpoint_dir):
    d = tmp_path / "nan"
    shutil.copytree(checkpoint_dir, d)
    sd = torch.load(d / "epoch_5.pt", weights_only=True)
    sd["head.weight"].fill_(float("nan"))
    torch.save(sd, d / "epoch_5.pt")
    return str(d)


def _one_checkpoint(tmp_path, checkpoint_dir):
    d = tmp_path / "one"
    d.mkdir()
    shutil.copy(os.path.join(checkpoint_dir, "epoch_1.pt"), d)
    return str(d)


def _corrupt_checkpoint(tmp_path, checkpoint_dir):
    d = tmp_path / "corrupt"
    shutil.copytree(checkpoint_dir, d)
    (d / "epoch_3.pt").write_bytes(b"\x00garbage")
    return str(d)


CASES = {
    "no checkpoint matches": (lambda tp, cd: dict(checkpoints=str(tp / "none_*.pt")), "no checkpoint file matches"),
    "fewer than 2 checkpoints": (lambda tp, cd: dict(checkpoints=_one_checkpoint(tp, cd)), "at least 2 checkpoints"),
    "corrupt checkpoint": (
        lambda tp, cd: dict(checkpoints=_corrupt_checkpoint(tp, cd)),
        "cannot read checkpoint .*epoch_3.pt",
    ),
    "checkpoint does not fit": (
        lambda tp, cd: dict(model=lambda: small_model(num_classes=7)),
        "does not fit the architecture",
    ),
    "head built for other classes": (lambda tp, cd: dict(classes=CLASSES + ["extra"]), "built for 5 classes"),
    "unknown torchvision name": (lambda tp, cd: dict(model="resnet1800"), "unknown torchvision architecture"),
    "label field missing": (lambda tp, cd: dict(label_field="labels"), "label field 'labels' does not exist"),
    "label field not Classification": (lambda tp, cd: dict(label_field="filepath"), "not a fo.Classification"),
    "label not in classes": (lambda tp, cd: dict(classes=CLASSES[:3]), r"labels \['dots'\] .* are not among"),
    "classes count != outputs": (
        lambda tp, cd: dict(classes=CLASSES + ["extra"], model=lambda: small_model()),
        "outputs \\(4,\\) scores .* 5 classes",
    ),
    "transform does not fit the model": (
        lambda tp, cd: dict(transform="gray"),
        "cannot take the images as transformed \\(1×12×10",
    ),
    "NaN gradients": (lambda tp, cd: dict(checkpoints=_nan_checkpoints(tp, cd)), "NaN/inf"),
    "window out of range": (lambda tp, cd: dict(windows={"late": [3, 9]}), "only 5 checkpoints"),
    "window unknown file": (
        lambda tp, cd: dict(windows={"late": ["epoch_99.pt", "epoch_1.pt"]}),
        "not among the checkpoints",
    ),
    "bad option": (lambda tp, cd: dict(target="loss"), "target='loss' is not supported"),
    "bad field name": (lambda tp, cd: dict(vog_field="my vog"), "not a valid field name"),
    "output field of another type": (
        lambda tp, cd: dict(vog_field="ground_truth"),
        "field 'ground_truth' exists with type EmbeddedDocumentField",
    ),
    "reserved field name": (lambda tp, cd: dict(vog_field="filepath"), "'filepath' is reserved by FiftyOne"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_error_is_raised_and_dataset_unchanged(scored_run, checkpoint_dir, tmp_path, case):
    dataset, snapshot = scored_run
    before = snapshot()
    make_kwargs, message = CASES[case]
    kwargs = dict(checkpoints=checkpoint_dir, model=small_model, overwrite=True)
    kwargs.update(make_kwargs(tmp_path, checkpoint_dir))
    with pytest.raises(fov.VoGError, match=message):
        fov.compute_vog(dataset, **kwargs)
    assert snapshot() == before


def test_empty_view(scored_run, checkpoint_dir):
    dataset, snapshot = scored_run
    with pytest.raises(fov.VoGError, match="view is empty"):
        fov.compute_vog(dataset.limit(0), checkpoint_dir, model=small_model, overwrite=True)


def test_missing_and_unreadable_images(scored_run, checkpoint_dir, tmp_path):
    dataset, snapshot = scored_run
    before = snapshot()
    sample = dataset.first()
    gone = tmp_path / "gone.png"
    dataset.add_sample(fo.Sample(filepath=str(gone), ground_truth=fo.Classification(label="dots")))
    with pytest.raises(fov.VoGError, match=f"image file not found: {gone}"):
        fov.compute_vog(dataset, checkpoint_dir, model=small_model, overwrite=True)
    gone.write_bytes(b"not a png")  # exists but cannot be decoded: found while scoring
    with pytest.raises(fov.VoGError, match=f"cannot read image {gone}"):
        fov.compute_vog(dataset, checkpoint_dir, model=small_model, overwrite=True, batch_size=4)
    view = dataset.match(fo.ViewField("filepath") != str(gone))
    assert {f: view.values(f) for f in ("vog", "vog_raw", "ground_truth.label")} == before[1]
    assert sample.filepath in dataset.values("filepath")


def test_interrupted_run_leaves_everything(scored_run, checkpoint_dir):
    dataset, snapshot = scored_run
    before = snapshot()

    def interrupt(pb):
        if pb.iteration >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fov.compute_vog(
            dataset,
            checkpoint_dir,
            model=small_model,
            overwrite=True,
            batch_size=4,
            statistic="std",
            progress=interrupt,
        )
    assert snapshot() == before


def test_new_field_not_left_behind_on_failure(dataset, checkpoint_dir, monkeypatch):
    """A failure while writing removes the fields this run created."""
    import fiftyone_vog.core.writer as writer

    def failing(samples, ids, scores, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(writer, "bulk_set", failing)
    with pytest.raises(RuntimeError, match="database went away"):
        fov.compute_vog(dataset, checkpoint_dir, model=small_model, vog_field="fresh")
    assert not [f for f in dataset.get_field_schema() if f.startswith("fresh")]
    assert not dataset.has_run("fresh")


def test_bulk_write_equals_set_values(dataset):
    """The one-pass writer stores what set_values would, and bumps last_modified_at."""
    import numpy as np

    from fiftyone_vog.core.writer import bulk_set

    ids = dataset.values("id")
    view = dataset.skip(5).limit(20)
    view_ids = view.values("id")
    a, b = np.linspace(0, 1, 20), np.arange(20.0)
    for f in ("a", "b", "c"):
        dataset.add_sample_field(f, fo.FloatField)
    before = dict(zip(ids, dataset.values("last_modified_at")))
    bulk_set(view, view_ids[::-1], {"a": a[::-1], "b": b[::-1]}, chunk=3)  # any order: keyed by id; 7 chunks
    view.set_values("c", dict(zip(view_ids, a.tolist())), key_field="id")
    assert view.values("a") == view.values("c") == a.tolist() and view.values("b") == b.tolist()
    after = dict(zip(ids, dataset.values("last_modified_at")))
    assert all(after[i] > before[i] for i in view_ids)
    outside = [i for i in ids if i not in set(view_ids)]
    assert all(after[i] == before[i] for i in outside)
    assert dataset.select(outside).values("a") == [None] * len(outside)
