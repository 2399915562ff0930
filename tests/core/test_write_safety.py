"""A write that fails part way — the database, a bug, Ctrl-C — leaves the dataset as it was.

The failures are real: pymongo's ``Collection.bulk_write`` on the dataset's sample collection
writes part of a chunk and then raises; FiftyOne's ``register_run`` registers and then raises.
"""

import threading

import fiftyone as fo
import fiftyone.core.odm as foo
import pymongo.collection
import pytest

import fiftyone_vog as fov
import fiftyone_vog.core.writer as writer

from conftest import small_model

FIELDS = ("vog", "vog_raw")
WRITTEN = (*FIELDS, "vog_loss", "vog_margin", "vog_maxprob", "vog_energy")  # with the default companions


def _raw_docs(dataset):
    """What MongoDB holds for the score fields: an absent key stays absent, None stays None."""
    proj = {f: True for f in FIELDS}
    return {str(d["_id"]): d for d in dataset._sample_collection.find({}, proj)}


def _run_state(dataset):
    """The run as the database holds it (timestamps there have millisecond precision)."""
    dataset.reload()
    info = dataset.get_run_info("vog")
    return info.key, info.timestamp, info.config.serialize(), dataset.load_run_results("vog", cache=False).serialize()


def _small_chunks(monkeypatch, chunk=4, threads=1):
    """The real writer, in chunks of 4 samples (10 chunks for the 40 samples)."""
    real = writer.bulk_set
    monkeypatch.setattr(writer, "bulk_set", lambda *a, **k: real(*a, chunk=chunk, threads=threads, **k))


def _failing_bulk_write(monkeypatch, dataset, fail_on=2, error=RuntimeError("connection reset"), keep_failing=False):
    """Make the ``fail_on``-th bulk write to the dataset's samples write half its chunk, then raise."""
    real = pymongo.collection.Collection.bulk_write
    calls, lock = [], threading.Lock()
    landed = {}

    def bulk_write(self, requests, *args, **kwargs):
        if self.name != dataset._sample_collection_name:
            return real(self, requests, *args, **kwargs)
        with lock:
            calls.append("write" if "vog_late" in requests[0]._doc["$set"] else "restore")
            n = len(calls)
        if n == fail_on or (keep_failing and n > fail_on):
            real(self, requests[: len(requests) // 2], *args, **kwargs)
            if n == fail_on:  # what the failed run left at that moment: new values on some samples
                landed["docs"] = _raw_docs(dataset)
            raise error
        return real(self, requests, *args, **kwargs)

    monkeypatch.setattr(pymongo.collection.Collection, "bulk_write", bulk_write)
    return calls, landed


@pytest.fixture
def first_run(scored_run, image_dir):
    """The first run's dataset, with one sample whose vog is None and one added since (no key)."""
    dataset, snapshot = scored_run
    none_sample = dataset.first()
    dataset.select(none_sample.id).set_values("vog", [None])  # stores null (sample.save() drops the key)
    paths, labels = image_dir
    late = fo.Sample(filepath=paths[0], ground_truth=fo.Classification(label=labels[0]))
    dataset.add_sample(late)
    docs = _raw_docs(dataset)
    assert docs[none_sample.id]["vog"] is None and "vog" not in docs[late.id] and "vog_raw" not in docs[late.id]
    return dataset, snapshot, none_sample, late


@pytest.mark.parametrize("error", [RuntimeError("connection reset"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_overwrite_failing_mid_write_restores_every_old_value(first_run, checkpoint_dir, monkeypatch, error):
    dataset, snapshot, none_sample, late = first_run
    before, docs, run = snapshot(), _raw_docs(dataset), _run_state(dataset)
    _small_chunks(monkeypatch)
    calls, landed = _failing_bulk_write(monkeypatch, dataset, error=error)

    with pytest.raises(type(error)) as raised:
        fov.compute_vog(
            dataset, checkpoint_dir, model=small_model, overwrite=True, statistic="std", windows={"late": "3:5"}
        )
    assert raised.value is error  # the original error, not one from putting things back

    # the failure really struck mid-write: a whole chunk and half of the next had the new values
    changed = [i for i, d in landed["docs"].items() if d.get("vog_raw") != docs[i].get("vog_raw")]
    assert len(changed) == 4 + 2
    # the chunks not yet started were cancelled by the failing worker itself (however late the
    # waiting thread wakes up); then one restore per chunk that began
    assert calls == ["write"] * 2 + ["restore"] * 2
    assert _raw_docs(dataset) == docs  # None still None, the absent key still absent
    assert snapshot() == before  # schema (no vog_late*), values, run config, run list
    assert _run_state(dataset) == run  # same run document: timestamp and stored results too
    assert none_sample.vog is None and late.vog is None


def test_failure_while_registering_the_run_restores_values_and_run(first_run, checkpoint_dir, monkeypatch):
    dataset, snapshot, none_sample, _ = first_run
    before, docs, run = snapshot(), _raw_docs(dataset), _run_state(dataset)
    real = type(dataset).register_run

    def register_then_fail(self, *args, **kwargs):
        real(self, *args, **kwargs)  # the new run is registered; then the connection drops
        raise KeyboardInterrupt

    monkeypatch.setattr(type(dataset), "register_run", register_then_fail)
    with pytest.raises(KeyboardInterrupt):
        fov.compute_vog(
            dataset, checkpoint_dir, model=small_model, overwrite=True, target="logit"
        )  # not the default: new values
    assert _raw_docs(dataset) == docs
    assert snapshot() == before
    assert _run_state(dataset) == run
    assert foo.get_db_conn().runs.count_documents({"_dataset_id": dataset._doc.id, "key": "vog"}) == 1
    assert none_sample.vog is None and none_sample.vog_raw == before[1]["vog_raw"][0]  # reloaded after the restore


def test_failure_while_saving_the_run_results_restores_values_and_run(first_run, checkpoint_dir, monkeypatch):
    """The run's results (timings, class statistics) are part of the same all-or-nothing write."""
    dataset, snapshot, _, _ = first_run
    before, docs, run = snapshot(), _raw_docs(dataset), _run_state(dataset)

    def fail(self, *args, **kwargs):
        raise RuntimeError("results store unreachable")

    monkeypatch.setattr(type(dataset), "save_run_results", fail)
    with pytest.raises(RuntimeError, match="results store unreachable"):
        fov.compute_vog(
            dataset, checkpoint_dir, model=small_model, overwrite=True, target="logit"
        )  # not the default: new values
    assert _raw_docs(dataset) == docs
    assert snapshot() == before
    assert _run_state(dataset) == run
    assert foo.get_db_conn().runs.count_documents({"_dataset_id": dataset._doc.id, "key": "vog"}) == 1


def test_restore_failing_too_names_the_mixed_fields_and_the_fix(scored_run, checkpoint_dir, monkeypatch):
    dataset, _ = scored_run
    _small_chunks(monkeypatch)
    _failing_bulk_write(monkeypatch, dataset, keep_failing=True)  # the database stays away
    with pytest.raises(fov.VoGError) as raised:
        fov.compute_vog(dataset, checkpoint_dir, model=small_model, overwrite=True, statistic="std")
    message = str(raised.value)
    assert message.startswith(
        "writing the VoG scores failed (RuntimeError: connection reset) and putting the "
        f"dataset {dataset.name!r} back as it was failed too: fields {sorted(WRITTEN)} may "
        "hold the new values on some samples and the old ones on others."
    )
    assert "compute_vog(..., vog_field='vog', overwrite=True) again" in message
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert dataset.get_run_info("vog").config.statistic == "variance"  # the run was never replaced


def test_successful_overwrite_leaves_no_old_run_document(scored_run, checkpoint_dir):
    dataset, snapshot = scored_run
    before = snapshot()
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, overwrite=True, statistic="std")
    runs = foo.get_db_conn().runs
    assert runs.count_documents({"_dataset_id": dataset._doc.id, "key": "vog"}) == 1
    assert dataset.get_run_info("vog").config.statistic == "std"
    assert set(dataset.load_run_results("vog", cache=False).summary) == {"all"}
    assert snapshot()[1]["vog_raw"] != before[1]["vog_raw"]
