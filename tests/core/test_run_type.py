"""A VoG run is a FiftyOne run type: FiftyOne's own delete/rename/list do the right thing, and the
FiftyOne internals the all-or-nothing writer relies on still exist."""

import warnings

import fiftyone as fo
import fiftyone.core.runs as fors
import fiftyone.core.sample as fos
import pytest

import fiftyone_vog as fov
from fiftyone_vog.core.runs import RUN_METHOD, VoGResults, VoGRun, VoGRunConfig

from conftest import small_model


@pytest.fixture
def computed(dataset, checkpoint_dir):
    res = fov.compute_vog(dataset, checkpoint_dir, model=small_model, windows={"late": [3, 4]}, progress=False)
    return dataset, res


def test_compute_and_load_return_the_same_type(computed):
    dataset, res = computed
    loaded = fov.load_vog_results(dataset, "vog")
    assert type(res) is type(loaded) is VoGResults
    assert isinstance(dataset.get_run_info("vog").config, VoGRunConfig)
    assert res.config["vog_field"] == loaded.config.vog_field == "vog"
    assert loaded.class_stats == res.class_stats and loaded.summary == res.summary
    assert loaded.ids is None and len(res.ids) == len(dataset)  # arrays live in the fields, not the run
    assert list(loaded["vog"]) == dataset.values("vog")


def test_fiftyones_delete_run_removes_the_fields_and_their_indexes(computed):
    dataset, res = computed
    fields = list(res.config.fields)
    assert set(fields) <= set(dataset.get_field_schema()) and "vog" in dataset.list_indexes()
    dataset.delete_run("vog")  # FiftyOne's own call, not ours
    schema = dataset.get_field_schema()
    assert not set(fields) & set(schema), "FiftyOne's delete_run left VoG fields behind"
    assert "vog" not in dataset.list_indexes() and "vog" not in dataset.list_runs()


def test_fiftyones_delete_run_keeps_the_fields_while_the_key_is_locked(computed, caplog):
    """FiftyOne logs a failed cleanup and drops the run record anyway: the fields a computing
    process is writing stay (its write registers the run again when it ends)."""
    from fiftyone_vog.core.locks import run_lock

    dataset, res = computed
    before = dataset.values("vog")
    with run_lock(dataset, "vog"):  # what a computing process holds
        dataset.delete_run("vog")
    assert dataset.values("vog") == before and set(res.config.fields) <= set(dataset.get_field_schema())
    assert "the VoG run 'vog' of dataset" in caplog.text and "is locked" in caplog.text


def test_fiftyones_delete_run_keeps_a_field_another_run_claims(computed, checkpoint_dir):
    """A dataset from before the ownership record where an old-style run (a plain RunConfig with
    our method) lists vog_raw as its own too: the record adopts it once, for one run only."""
    from fiftyone_vog.core import ownership

    dataset, _ = computed
    cfg = dataset.init_run(method=RUN_METHOD, vog_field="old", fields=["old", "vog_raw"])
    dataset.register_run("old", cfg)
    ownership._coll().delete_many({"dataset_id": str(dataset._doc.id)})  # as written by an earlier version
    assert ownership.owner_of(dataset, ownership.FIELD, "vog_raw") == "run:old"  # runs adopted in key order
    dataset.delete_run("vog")
    assert "vog_raw" in dataset.get_field_schema() and "vog" not in dataset.get_field_schema()


def test_rename_and_list_by_method(computed):
    dataset, _ = computed
    assert dataset.list_runs(method=RUN_METHOD) == ["vog"]
    dataset.rename_run("vog", "first")
    assert fov.list_vog_runs(dataset) == ["first"]
    assert dataset.get_run_info("first").config.fields[0] == "vog"  # fields keep their names
    fov.delete_vog_run(dataset, "first")
    assert "vog" not in dataset.get_field_schema()


def test_runs_of_earlier_versions_still_list_load_and_delete(dataset):
    dataset.add_sample_field("vog", fo.FloatField)
    dataset.set_values("vog", [1.0] * len(dataset))
    cfg = dataset.init_run(method=RUN_METHOD, vog_field="vog", fields=["vog"])  # how 0.1 registered runs
    dataset.register_run("vog", cfg)
    dataset.save_run_results("vog", dataset.init_run_results("vog", class_stats={}, summary={}, timings={}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fov.list_vog_runs(dataset) == ["vog"]
        assert fov.load_vog_results(dataset, "vog").class_stats == {}
    fov.delete_vog_run(dataset, "vog")
    assert "vog" not in dataset.get_field_schema() and dataset.list_runs() == []


def test_the_fiftyone_internals_we_rely_on_still_exist(dataset):
    """The writer swaps runs and reloads samples through these; a FiftyOne upgrade that changes
    them must fail here, not corrupt a dataset (core/writer.py names each use)."""
    assert hasattr(dataset._doc, "runs") and callable(dataset._run_cache.pop)
    assert dataset._sample_collection.name == dataset._sample_collection_name
    assert callable(fos.Sample._reload_docs)
    assert VoGRun.run_info_cls() is fors.RunInfo and VoGRunConfig().run_cls is VoGRun
    assert "cleanup" in fors.Run.delete_run.__code__.co_varnames
