"""Partial scores of deleted datasets are garbage-collected; those of existing datasets never are."""

import logging

import fiftyone.core.odm as foo
import pymongo.collection
import pytest

import fiftyone_vog as fov
from fiftyone_vog.core.resume import COLLECTION, drop_partials

from conftest import build_dataset, interrupt_after, small_model

KW = dict(model=small_model, device="cpu", batch_size=4, progress=False)


def _chunks(ds_id):
    return list(foo.get_db_conn()[COLLECTION].find({"dataset_id": ds_id}).sort("_id", 1))


def _interrupted_run(ds, checkpoint_dir, monkeypatch, batches=3):
    """A run stopped by Ctrl-C after ``batches`` batches; the dataset's id."""
    interrupt_after(ds, checkpoint_dir, monkeypatch, batches, **KW)
    return str(ds._doc.id)


@pytest.fixture
def orphaned(dataset, image_dir, checkpoint_dir, monkeypatch):
    """Interrupted runs on dataset A (then deleted) and on ``dataset`` (B); a chunk not of ours."""
    a = build_dataset(*image_dir)
    a_id = _interrupted_run(a, checkpoint_dir, monkeypatch)
    b_id = _interrupted_run(dataset, checkpoint_dir, monkeypatch)
    assert len(_chunks(a_id)) == 3 and len(_chunks(b_id)) == 3
    a.delete()
    coll = foo.get_db_conn()[COLLECTION]
    coll.insert_one({"dataset_id": "not-an-id", "vog_field": "vog", "key": "k", "ids": []})
    yield a_id, b_id, _chunks(b_id)
    coll.delete_many({"dataset_id": {"$in": ["not-an-id", a_id]}})


def test_opening_partials_deletes_the_chunks_of_deleted_datasets(orphaned, dataset, checkpoint_dir):
    a_id, b_id, b_chunks = orphaned
    res = fov.compute_vog(dataset, checkpoint_dir, vog_field="other", **KW)  # opens partials of B
    assert res.config["resumed_samples"] == 0
    assert _chunks(a_id) == []
    assert _chunks(b_id) == b_chunks  # another run key of an existing dataset: untouched
    assert len(_chunks("not-an-id")) == 1
    # B's interrupted run still resumes from its chunks
    assert fov.compute_vog(dataset, checkpoint_dir, resume=True, **KW).config["resumed_samples"] == 12
    assert _chunks(b_id) == []


def test_dropping_partials_deletes_the_chunks_of_deleted_datasets(orphaned, dataset):
    a_id, b_id, b_chunks = orphaned
    assert drop_partials(dataset, "other") == 0
    assert _chunks(a_id) == []
    assert _chunks(b_id) == b_chunks


def test_garbage_collection_failing_never_fails_a_run(orphaned, dataset, checkpoint_dir, monkeypatch, caplog):
    a_id, b_id, b_chunks = orphaned
    real = pymongo.collection.Collection.distinct

    def distinct(self, key, *args, **kwargs):
        if self.name == COLLECTION:
            raise pymongo.errors.OperationFailure("not authorized on fiftyone to execute command distinct")
        return real(self, key, *args, **kwargs)

    monkeypatch.setattr(pymongo.collection.Collection, "distinct", distinct)
    with caplog.at_level(logging.WARNING, logger="fiftyone_vog.core.resume"):
        fov.compute_vog(dataset, checkpoint_dir, vog_field="other", **KW)
    assert dataset.has_run("other")
    assert len(_chunks(a_id)) == 3 and _chunks(b_id) == b_chunks  # nothing deleted, and no error
    assert [r.getMessage() for r in caplog.records if r.name == "fiftyone_vog.core.resume"] == [
        "could not delete the partial VoG scores of deleted datasets: "
        "not authorized on fiftyone to execute command distinct"
    ]
