"""Resuming after the labels or image paths changed: the changed samples are scored again, the
others resume; a sample that occurs twice in a view is scored (and counted) once."""

import logging
import shutil

import numpy as np

import fiftyone_vog as fov

from conftest import interrupt_after, small_model

KW = dict(model=small_model, device="cpu", batch_size=4, progress=False)
# resumed and fresh runs batch the samples differently: float32 rounding differs by ~1e-8


def _interrupt_after(ds, checkpoint_dir, monkeypatch, batches, **kw):
    interrupt_after(ds, checkpoint_dir, monkeypatch, batches, **KW, **kw)


def test_resume_rescores_samples_whose_label_or_path_changed(dataset, checkpoint_dir, monkeypatch, tmp_path, caplog):
    _interrupt_after(dataset, checkpoint_dir, monkeypatch, batches=3)  # the first 12 samples flushed
    samples = list(dataset.iter_samples(autosave=False))
    relabeled, moved = samples[0], samples[5]
    new_label = next(c for c in dataset.classes["ground_truth"] if c != relabeled.ground_truth.label)
    relabeled.ground_truth.label = new_label
    relabeled.save()
    other = samples[20].filepath  # sample 5 now shows another picture, under a new path
    moved.filepath = str(tmp_path / "moved.png")
    shutil.copy(other, moved.filepath)
    moved.save()

    with caplog.at_level(logging.WARNING, logger="fiftyone_vog.core.resume"):
        res = fov.compute_vog(dataset, checkpoint_dir, resume=True, **KW)
    assert res.config["resumed_samples"] == 10
    assert res.config["resume_changed_samples"] == 2
    assert any("scored again" in r.getMessage() for r in caplog.records)

    fresh = fov.compute_vog(dataset, checkpoint_dir, vog_field="fresh", **KW)
    np.testing.assert_allclose(dataset.values("vog_raw"), dataset.values("fresh_raw"), rtol=1e-6)
    np.testing.assert_allclose(dataset.values("vog"), dataset.values("fresh"), rtol=1e-5, atol=1e-6)
    assert fresh.config["resumed_samples"] == 0


def test_resume_with_unchanged_labels_still_resumes_everything_flushed(dataset, checkpoint_dir, monkeypatch):
    _interrupt_after(dataset, checkpoint_dir, monkeypatch, batches=3)
    res = fov.compute_vog(dataset, checkpoint_dir, resume=True, **KW)
    assert res.config["resumed_samples"] == 12 and res.config["resume_changed_samples"] == 0


def test_label_changed_back_after_two_interruptions_resumes_from_the_matching_chunk(
    dataset, checkpoint_dir, monkeypatch
):
    """A → flushed, B → flushed again on resume, back to A: the score under A is reused, once."""
    _interrupt_after(dataset, checkpoint_dir, monkeypatch, batches=1)  # samples 0..3 under label A
    s = dataset.first()
    a = s.ground_truth.label
    s.ground_truth.label = next(c for c in dataset.classes["ground_truth"] if c != a)
    s.save()
    _interrupt_after(dataset, checkpoint_dir, monkeypatch, batches=1, resume=True)  # sample 0 again, under B
    s.ground_truth.label = a
    s.save()
    res = fov.compute_vog(dataset, checkpoint_dir, resume=True, **KW)
    # 0..3 from the first run, 4..6 from the second (whose first batch was 0, 4, 5, 6)
    assert res.config["resumed_samples"] == 7 and res.config["resume_changed_samples"] == 0
    fov.compute_vog(dataset, checkpoint_dir, vog_field="fresh", **KW)
    np.testing.assert_allclose(dataset.values("vog_raw"), dataset.values("fresh_raw"), rtol=1e-6)


def test_a_sample_twice_in_the_view_is_scored_and_counted_once(dataset, checkpoint_dir, caplog):
    ids = dataset.values("id")[:8]
    view = dataset.select(ids).concat(dataset.select(ids))
    assert len(view) == 16
    with caplog.at_level(logging.WARNING, logger="fiftyone_vog.core.compute"):
        res = fov.compute_vog(view, checkpoint_dir, **KW)
    assert res.config["num_samples"] == 8 and res.config["duplicate_samples"] == 8
    assert res.ids == ids
    assert sum(s["count"] for s in res.class_stats["all"].values()) == 8
    assert any("scored once" in r.getMessage() for r in caplog.records)
    # the same numbers as scoring the 8 samples once
    ref = fov.compute_vog(dataset.select(ids), checkpoint_dir, vog_field="ref", **KW)
    np.testing.assert_array_equal(res["vog"], ref["ref"])
    assert ref.config["duplicate_samples"] == 0
