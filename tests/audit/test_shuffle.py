"""shuffle_labels / restore_labels: exact counts, flags, originals, seeds, overwrite, views, atomicity."""

from collections import Counter

import fiftyone as fo
import pytest
from fiftyone import ViewField as F

import fiftyone_vog as fov

from conftest import CLASSES


def _state(ds):
    return ds.values("ground_truth.label"), ds.values("ground_truth.id")


def test_exact_count_and_flags_mark_exactly_changed(dataset):
    before, label_ids = _state(dataset)
    out = fov.shuffle_labels(dataset, fraction=0.2)
    after = dataset.values("ground_truth.label")
    flags = dataset.values("label_shuffled")
    assert out["labeled"] == 40 and out["selected"] == 8 and out["shuffled"] == 8 and out["unlabeled"] == 0
    assert sum(flags) == 8 and None not in flags
    assert flags == [a != b for a, b in zip(after, before)]
    assert set(after) <= set(CLASSES)
    # originals kept as Classification copies with their own ids; label ids of the field unchanged
    assert dataset.values("ground_truth_original.label") == before
    assert dataset.values("ground_truth.id") == label_ids
    assert not set(dataset.values("ground_truth_original.id")) & set(label_ids)
    assert isinstance(dataset.get_field("ground_truth_original").document_type(), fo.Classification)
    assert isinstance(dataset.get_field("label_shuffled"), fo.BooleanField)
    assert out["changed"] == dict(sorted(Counter(b for b, f in zip(before, flags) if f).items()))


@pytest.mark.parametrize("fraction,expected", [(0.0, 0), (0.05, 2), (0.1, 4), (0.5, 20), (1.0, 40), (0.0625, 3)])
def test_rounding(dataset, fraction, expected):
    # 0.05 × 40 = 2; 0.0625 × 40 = 2.5 rounds half up to 3
    out = fov.shuffle_labels(dataset, fraction=fraction)
    assert out["selected"] == out["shuffled"] == expected
    assert sum(dataset.values("label_shuffled")) == expected


def test_seeded_and_reproducible(dataset):
    fov.shuffle_labels(dataset, seed=7)
    a = dataset.values("ground_truth.label")
    fov.shuffle_labels(dataset, seed=7, overwrite=True)
    assert dataset.values("ground_truth.label") == a
    fov.shuffle_labels(dataset, seed=8, overwrite=True)
    assert dataset.values("ground_truth.label") != a


def test_refuses_twice_and_overwrite_restores_first(dataset):
    before = dataset.values("ground_truth.label")
    fov.shuffle_labels(dataset, fraction=0.5, seed=1)
    shuffled = dataset.values("ground_truth.label")
    with pytest.raises(fov.VoGError, match="already shuffled.*overwrite=True.*restore_labels"):
        fov.shuffle_labels(dataset, fraction=0.5, seed=2)
    assert dataset.values("ground_truth.label") == shuffled
    out = fov.shuffle_labels(dataset, fraction=0.25, seed=2, overwrite=True)
    # originals are the true labels, not the first shuffle's
    assert dataset.values("ground_truth_original.label") == before
    after = dataset.values("ground_truth.label")
    assert dataset.values("label_shuffled") == [a != b for a, b in zip(after, before)]
    assert out["shuffled"] == 10 == sum(a != b for a, b in zip(after, before))


def test_restore(dataset):
    before, label_ids = _state(dataset)
    fov.shuffle_labels(dataset, fraction=0.3)
    out = fov.restore_labels(dataset)
    assert out == {"restored": 12, "checked": 40, "deleted_fields": ["label_shuffled", "ground_truth_original"]}
    assert _state(dataset) == (before, label_ids)
    schema = dataset.get_field_schema()
    assert "label_shuffled" not in schema and "ground_truth_original" not in schema
    with pytest.raises(fov.VoGError, match="nothing to restore"):
        fov.restore_labels(dataset)
    # after a restore, a new shuffle needs no overwrite
    fov.shuffle_labels(dataset)


def test_unlabeled_samples_untouched(dataset, image_dir):
    paths, _ = image_dir
    dataset.add_samples([fo.Sample(filepath=p, tags=["ood"]) for p in paths[:5]])
    out = fov.shuffle_labels(dataset, fraction=0.2)
    assert out["labeled"] == 40 and out["unlabeled"] == 5 and out["shuffled"] == 8
    ood = dataset.match_tags("ood")
    assert ood.values("label_shuffled") == [None] * 5 and ood.values("ground_truth") == [None] * 5


def test_view_only(dataset):
    view = dataset.match(F("ground_truth.label").is_in(["circle", "square"]))  # 20 samples
    rest = dataset.match(~F("ground_truth.label").is_in(["circle", "square"]))
    rest_ids, rest_labels = rest.values(["id", "ground_truth.label"])
    out = fov.shuffle_labels(view, fraction=0.5)
    assert out["labeled"] == 20 and out["shuffled"] == 10
    outside = dataset.select(rest_ids)
    assert outside.values("ground_truth.label") == rest_labels
    assert outside.values("label_shuffled") == [None] * 20
    assert dataset.values("label_shuffled").count(True) == 10
    # restoring a view that holds part of the shuffled samples clears them only
    flagged = dataset.match(F("label_shuffled") == True)  # noqa: E712
    part = dataset.select(flagged.values("id")[:4])
    r = fov.restore_labels(part)
    assert r["restored"] == 4 and r["deleted_fields"] == []
    assert part.values("label_shuffled") == [None] * 4
    assert dataset.values("label_shuffled").count(True) == 6
    fov.restore_labels(dataset)
    assert "label_shuffled" not in dataset.get_field_schema()


def test_permute_mode_keeps_histogram(dataset):
    before = dataset.values("ground_truth.label")
    out = fov.shuffle_labels(dataset, fraction=0.5, mode="permute", seed=3)
    after = dataset.values("ground_truth.label")
    assert Counter(after) == Counter(before)
    flags = dataset.values("label_shuffled")
    assert flags == [a != b for a, b in zip(after, before)]
    assert out["selected"] == 20 and out["shuffled"] == sum(flags) <= 20 and out["shuffled"] > 0


def test_custom_field_names(dataset):
    dataset.clone_sample_field("ground_truth", "gt2")
    before = dataset.values("gt2.label")
    fov.shuffle_labels(dataset, label_field="gt2", flag_field="noisy", original_field="gt2_clean")
    assert dataset.values("gt2_clean.label") == before
    assert sum(dataset.values("noisy")) == 8
    fov.restore_labels(dataset, label_field="gt2", flag_field="noisy", original_field="gt2_clean")
    assert dataset.values("gt2.label") == before


def test_bad_input(dataset):
    with pytest.raises(fov.VoGError, match="fraction"):
        fov.shuffle_labels(dataset, fraction=1.5)
    with pytest.raises(fov.VoGError, match="no field 'labels'"):
        fov.shuffle_labels(dataset, label_field="labels")
    dataset.set_values("score", [1.0] * 40)
    with pytest.raises(fov.VoGError, match="not a fo.Classification"):
        fov.shuffle_labels(dataset, label_field="score")
    with pytest.raises(fov.VoGError, match="mode"):
        fov.shuffle_labels(dataset, mode="swap")
    with pytest.raises(fov.VoGError, match="different fields"):
        fov.shuffle_labels(dataset, flag_field="ground_truth")
    one = dataset.match(F("ground_truth.label") == "circle")
    one.set_values("ground_truth.label", ["circle"] * 10)
    dataset.classes.pop("ground_truth")
    dataset.save()
    with pytest.raises(fov.VoGError, match="at least 2"):
        fov.shuffle_labels(dataset.select(one.values("id")))
    assert "label_shuffled" not in dataset.get_field_schema()


def test_bulk_writes_and_failure_leaves_dataset(dataset, monkeypatch):
    before = dataset.values("ground_truth.label")

    def no_save(*a, **k):
        raise AssertionError("sample.save() called")

    monkeypatch.setattr(fo.Sample, "save", no_save)
    fov.shuffle_labels(dataset)
    fov.restore_labels(dataset)
    monkeypatch.undo()

    real = fo.core.collections.SampleCollection.set_values
    calls = []

    def fail_on_labels(self, path, *a, **k):
        calls.append(path)
        if path == "ground_truth.label" and calls.count(path) == 1:
            raise RuntimeError("disk full")
        return real(self, path, *a, **k)

    monkeypatch.setattr(fo.core.collections.SampleCollection, "set_values", fail_on_labels)
    with pytest.raises(RuntimeError, match="disk full"):
        fov.shuffle_labels(dataset)
    monkeypatch.undo()
    assert dataset.values("ground_truth.label") == before
    schema = dataset.get_field_schema()
    assert "label_shuffled" not in schema and "ground_truth_original" not in schema


def test_every_drawn_sample_gets_another_class(dataset):
    before = dataset.values("ground_truth.label")
    fov.shuffle_labels(dataset, fraction=1.0, seed=0)
    after = dataset.values("ground_truth.label")
    assert all(a != b for a, b in zip(after, before))
    for c in CLASSES:  # spread over the other classes, not a fixed rotation
        assert len({a for a, b in zip(after, before) if b == c}) >= 2
    assert set(after) == set(CLASSES)
