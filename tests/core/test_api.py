"""compute_vog on real FiftyOne datasets: fields, runs, order, errors, atomicity."""

import os

import fiftyone as fo
import numpy as np
import pytest
import torch

import fiftyone_vog as fov
from fiftyone_vog.engine import VoGEngine, VoGOptions, score_batches
from fiftyone_vog.inputs.checkpoints import load_models, resolve_checkpoints
from fiftyone_vog.inputs.images import ImageDataset, make_loader, read_view

from conftest import CLASSES, small_model

MODEL = "fiftyone_vog.models:SmallCNN"


def _factory():
    return small_model()


def test_compute_vog_writes_fields_and_run(dataset, checkpoint_dir):
    res = fov.compute_vog(
        dataset, os.path.join(checkpoint_dir, "epoch_*.pt"), model=_factory, windows={"early": "0:2", "late": "-2:"}
    )
    schema = dataset.get_field_schema()
    for f in ["vog", "vog_raw", "vog_early", "vog_early_raw", "vog_late", "vog_late_raw"]:
        assert isinstance(schema[f], fo.FloatField), f
        assert None not in dataset.values(f)
    # values stay with the right samples
    ids, raw = dataset.values(["id", "vog_raw"])
    by_id = dict(zip(res.ids, res.raw["vog_raw"]))
    assert raw == pytest.approx([by_id[i] for i in ids], rel=1e-12)
    # class-normalized per label
    labels = np.array(dataset.values("ground_truth.label"))
    z = np.array(dataset.values("vog"))
    for c in CLASSES:
        assert abs(z[labels == c].mean()) < 1e-9 and abs(z[labels == c].std() - 1) < 1e-9
    # run registered with its configuration
    assert fov.list_vog_runs(dataset) == ["vog"]
    cfg = fov.get_vog_run(dataset).config
    assert cfg.checkpoints == [
        os.path.abspath(p) for p in resolve_checkpoints(os.path.join(checkpoint_dir, "epoch_*.pt"))
    ]
    assert len(cfg.checkpoint_sha256) == 5 and all(len(h) == 64 for h in cfg.checkpoint_sha256)
    assert cfg.windows == {"early": [0, 1], "late": [3, 4]}
    stored = fov.load_vog_results(dataset)
    assert set(stored.class_stats["all"]) == set(CLASSES)
    assert stored.class_stats["all"]["circle"]["count"] == 10
    # App sidebar group
    group = [g for g in dataset.app_config.sidebar_groups if g.name == "VoG"][0]
    assert "vog" in group.paths and "vog_late_raw" in group.paths


def test_matches_engine_on_tensors_and_loader_order(dataset, checkpoint_dir):
    # float64 end to end: exact up to summation order. (In float32 a pixel on a ReLU kink can
    # flip with the batch size, which moves one sample's score by ~1e-4 on some CPUs.)
    res = fov.compute_vog(dataset, checkpoint_dir, model=_factory, batch_size=7, precision="float64")
    data = read_view(dataset)
    models = load_models(resolve_checkpoints(checkpoint_dir), _factory)
    opts = VoGOptions(target="probability")  # compute_vog's default target (fiftyone_vog.options.DEFAULT_TARGET)
    eng = VoGEngine(models, {"all": list(range(5))}, opts, device="cpu", dtype=torch.float64)
    ds = ImageDataset(data.ids, data.filepaths, data.labels)
    ref = score_batches(eng, make_loader(ds, batch_size=40), data.ids).raw["all"]
    np.testing.assert_allclose(res.raw["vog_raw"], ref, rtol=1e-10)
    # shuffled, multi-worker loader: same per-sample scores, placed by id
    eng2 = VoGEngine(
        load_models(resolve_checkpoints(checkpoint_dir), _factory),
        {"all": list(range(5))},
        opts,
        device="cpu",
        dtype=torch.float64,
    )
    shuffled = score_batches(eng2, make_loader(ds, batch_size=6, shuffle=True, num_workers=2, seed=5), data.ids).raw[
        "all"
    ]
    np.testing.assert_allclose(shuffled, ref, rtol=1e-10)


def test_identical_inputs_identical_scores(dataset, checkpoint_dir):
    a = fov.compute_vog(dataset, checkpoint_dir, model=_factory, vog_field="a")
    b = fov.compute_vog(dataset, checkpoint_dir, model=_factory, vog_field="b", num_workers=2, batch_size=5)
    np.testing.assert_allclose(dataset.values("a_raw"), dataset.values("b_raw"), rtol=1e-6)
    assert a.config["checkpoint_sha256"] == b.config["checkpoint_sha256"]


def test_view_only_and_outside_samples_untouched(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=_factory, statistic="std")  # other values everywhere
    before = {f: dict(zip(dataset.values("id"), dataset.values(f))) for f in ("vog", "vog_raw")}
    view = dataset.match(fo.ViewField("ground_truth.label") == "circle")
    fov.compute_vog(view, checkpoint_dir, model=_factory, overwrite=True)
    outside = dataset.match(fo.ViewField("ground_truth.label") != "circle")
    for f in ("vog", "vog_raw"):
        assert dict(zip(outside.values("id"), outside.values(f))) == {i: before[f][i] for i in outside.values("id")}
        assert all(v != before[f][i] for i, v in zip(view.values("id"), view.values(f)))


def test_rerun_needs_overwrite_and_delete_run(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=_factory)
    with pytest.raises(fov.VoGError, match="overwrite=True"):
        fov.compute_vog(dataset, checkpoint_dir, model=_factory)
    fov.compute_vog(dataset, checkpoint_dir, model=_factory, overwrite=True, statistic="std")
    assert fov.get_vog_run(dataset).config.statistic == "std"
    fov.delete_vog_run(dataset, "vog")
    assert "vog" not in dataset.get_field_schema() and "vog_raw" not in dataset.get_field_schema()
    assert fov.list_vog_runs(dataset) == []


def test_auto_mode_with_unlabeled_samples(dataset, checkpoint_dir, image_dir):
    paths, _ = image_dir
    dataset.add_samples([fo.Sample(filepath=p, tags=["ood"]) for p in paths[:4]])
    with pytest.raises(fov.VoGError, match="label_mode='auto'"):
        fov.compute_vog(dataset, checkpoint_dir, model=_factory)
    res = fov.compute_vog(dataset, checkpoint_dir, model=_factory, label_mode="auto")
    assert None not in dataset.values("vog")
    ood = np.array([t == ["ood"] for t in dataset.values("tags")])
    np.testing.assert_array_equal(res.used_labels[ood], res.predicted[ood])


def test_delete_run_drops_leftover_partial_scores(dataset, checkpoint_dir):
    import fiftyone.core.odm as foo

    from fiftyone_vog.core.resume import COLLECTION

    fov.compute_vog(dataset, checkpoint_dir, model=_factory)
    coll = foo.get_db_conn()[COLLECTION]
    mine = {"dataset_id": str(dataset._doc.id), "vog_field": "vog"}
    coll.insert_one({**mine, "key": "an interrupted run's", "ids": []})
    coll.insert_one({**mine, "vog_field": "other", "key": "x", "ids": []})
    fov.delete_vog_run(dataset, "vog")
    assert coll.count_documents(mine) == 0
    assert coll.count_documents({**mine, "vog_field": "other"}) == 1  # other keys untouched


def test_timings_split_scoring_into_compute_and_waiting_for_images(dataset, checkpoint_dir):
    """A slow image pipeline shows up as data_wait, and the user is told what to do."""
    import time

    from torchvision.transforms.functional import pil_to_tensor

    from fiftyone_vog.core.compute import data_wait_hint

    def slow(img):  # 40 images × 30 ms of "decoding"
        time.sleep(0.03)
        return pil_to_tensor(img).float() / 255

    res = fov.compute_vog(
        dataset, checkpoint_dir, model=small_model, transform=slow, num_workers=0, batch_size=8, progress=False
    )
    t = res.timings
    assert t["data_wait"] >= 40 * 0.03 and t["compute"] > 0
    assert t["data_wait"] + t["compute"] <= t["score"] + 1e-6
    assert res.config["num_workers"] == 0
    # threshold 0: the message's form, whatever share the machine's load left to waiting
    hint = data_wait_hint(t, res.config["num_workers"], threshold=0.0, min_wait=0.0)
    assert hint.startswith(
        f"scoring waited for images {t['data_wait'] / (t['data_wait'] + t['compute']):.0%} of the time"
    )
    assert hint.endswith("with num_workers=0: raise num_workers (--num-workers) so that decoding keeps up")
    assert fov.load_vog_results(dataset).timings["data_wait"] == pytest.approx(t["data_wait"])


def test_data_wait_hint_threshold():
    from fiftyone_vog.core.compute import data_wait_hint

    assert data_wait_hint({"data_wait": 1.0, "compute": 3.0}, 4) is None  # 25 %: fine
    assert data_wait_hint({"data_wait": 0.0, "compute": 0.0}, 0) is None  # nothing scored (all resumed)
    assert data_wait_hint({"data_wait": 30.0, "compute": 10.0}, 2) == (
        "scoring waited for images 75% of the time (30.0s of 40.0s) with num_workers=2: raise num_workers "
        "(--num-workers) so that decoding keeps up"
    )
    # a short run gets no advice: 75% of 4 s is 3 s of waiting, less than starting workers costs
    assert data_wait_hint({"data_wait": 3.0, "compute": 1.0}, 2) is None
    assert data_wait_hint({"data_wait": 10.0, "compute": 1.0}, 0) is not None  # 10 s: the least that gets a hint
