"""Day two with a run: what it owns (fields, indexes, saved views), its description, renaming it
(its fields follow) and deleting it (its saved views go, a user's view of the same name stays)."""

import fiftyone as fo
import pytest
from fiftyone import ViewField as F

import fiftyone_vog as fov
from fiftyone_vog.core import ownership, run_views
from fiftyone_vog.core.runs import describe_vog_run, rename_vog_run, vog_run_contents

from conftest import small_model

FIELDS = [
    "vog",
    "vog_raw",
    "vog_late",
    "vog_late_raw",
    *(f"vog_{c}" for c in ("loss", "margin", "maxprob", "energy")),
    *(f"vog_late_{c}" for c in ("loss", "margin", "maxprob", "energy")),
]
VIEWS = ["vog-high", "vog-label-errors", "vog-likely-ood", "vog-low", "vog-ood"]


@pytest.fixture
def run(dataset, checkpoint_dir):
    """A run with a window and companions, and the views save_vog_views saves over it."""
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, windows={"late": [3, 4]}, progress=False)
    dataset.take(5, seed=1).tag_samples("ood")  # a marker view: vog-ood is saved too
    views = fov.save_vog_views(dataset)
    assert sorted(views) == VIEWS
    return dataset


def _snapshot(ds):
    ds.reload()
    return (
        sorted(ds.get_field_schema()),
        {f: ds.values(f) for f in ds.get_field_schema() if f.startswith("vog")},
        sorted(ds.list_indexes()),
        ds.list_runs(),
        {
            n: (ds._get_saved_view_doc(n).view_stages, ds._get_saved_view_doc(n).description)
            for n in ds.list_saved_views()
        },
        ds.get_run_info(ds.list_runs()[0]).config.serialize() if ds.list_runs() else None,
    )


def test_contents_list_the_fields_their_indexes_and_the_runs_own_views(run):
    run.save_view("mine", run.match(F("vog") > 0).sort_by("vog"), description="my sort by vog")  # a user's
    contents = vog_run_contents(run, "vog")
    assert contents.fields == FIELDS
    assert set(contents.indexes) == set(FIELDS) & set(run.list_indexes()) != set()  # the ones compute_vog made
    assert contents.views == VIEWS  # not the user's "mine"
    assert contents.kept == {}
    assert contents.lines()[0] == "fields: " + ", ".join(FIELDS)


def test_describe_gives_the_config_timings_and_contents(run, checkpoint_dir):
    info = describe_vog_run(run, "vog")
    c = info["config"]
    assert len(c["checkpoints"]) == len(c["checkpoint_sha256"]) == 5 and c["checkpoints"][0].startswith(checkpoint_dir)
    assert c["model"] and c["label_mode"] == "true" and c["windows"] == {"late": [3, 4]}
    assert {"num_threads", "device", "batch_size", "target", "statistic"} <= set(c)
    assert "cls" not in c and "method" not in c
    assert {"load", "score", "write", "total"} <= set(info["timings"])
    assert info["fields"] == FIELDS and info["views"][0] == "vog-high" and info["created"]


def test_rename_moves_the_fields_indexes_views_and_records_the_names(run):
    values = {f: run.values(f) for f in FIELDS}
    indexed = set(FIELDS) & set(run.list_indexes())
    high = run.load_saved_view("vog-high").values("id")
    low = run.load_saved_view("vog-low").values("id")
    assert rename_vog_run(run, "vog", "vog2", dry_run=True) == {f: "vog2" + f[3:] for f in FIELDS}
    assert "vog" in run.list_runs()  # a dry run changes nothing
    renamed = rename_vog_run(run, "vog", "vog2")
    assert renamed == {f: "vog2" + f[3:] for f in FIELDS}
    schema = run.get_field_schema()
    assert not set(FIELDS) & set(schema)
    for old, new in renamed.items():
        assert run.values(new) == values[old]
    assert {renamed[f] for f in indexed} <= set(run.list_indexes()) and not indexed & set(run.list_indexes())
    assert fov.list_vog_runs(run) == ["vog2"]
    config = fov.get_vog_run(run, "vog2").config
    assert config.vog_field == "vog2" and config.fields == list(renamed.values())
    assert isinstance(fov.load_vog_results(run, "vog2"), fov.VoGResults)
    # the run's saved views follow: same samples, same order, the new field in the description
    assert run.load_saved_view("vog-high").values("id") == high and run.load_saved_view("vog-low").values("id") == low
    assert "by vog2 (" in run._get_saved_view_doc("vog-high").description
    assert vog_run_contents(run, "vog2").views == VIEWS
    # the ownership record follows: the fields, their indexes and the views are the new run's
    assert ownership.names(run, ownership.run_owner("vog2")) == sorted(renamed.values())
    assert ownership.names(run, ownership.run_owner("vog")) == []
    records = {e.options["field"] for e in ownership.listing(run, owner="run:vog2", kind=ownership.INDEX)}
    assert records == {renamed[f] for f in indexed}
    assert ownership.entry(run, ownership.VIEW, "vog-label-errors").options["field"] == "vog2_loss"
    assert set(fov.save_vog_views(run, "vog2")) == set(VIEWS)  # a later call replaces them
    sidebar = next(g for g in run.app_config.sidebar_groups if g.name == "VoG")
    assert "vog2" in sidebar.paths and "vog" not in sidebar.paths
    fov.delete_vog_run(run, "vog2")  # what it owns now goes
    assert not set(renamed.values()) & set(run.get_field_schema()) and run.list_saved_views() == []


@pytest.mark.parametrize(
    "new_key, setup, message",
    [
        ("vog2", lambda ds: ds.add_sample_field("vog2_late_loss", fo.FloatField), "'vog2_late_loss', which exists"),
        ("vog2", lambda ds: ds.register_run("vog2", ds.init_run()), "has a run 'vog2'"),
        ("vog", None, "is the run's key already"),
        ("2vog", None, "not a valid field name"),
        ("filepath", None, "reserved by FiftyOne"),
    ],
)
def test_rename_refusals_leave_the_dataset_as_it_was(run, new_key, setup, message):
    if setup:
        setup(run)
    before = _snapshot(run)
    with pytest.raises(fov.VoGError, match=message) as e:
        rename_vog_run(run, "vog", new_key)
    assert "\n" not in str(e.value)
    assert _snapshot(run) == before


def test_rename_refuses_a_field_the_record_does_not_list_as_the_runs(run):
    ownership.forget(run, ownership.FIELD, "vog_raw")  # named in the run's config, but not ours any more
    before = _snapshot(run)
    with pytest.raises(fov.VoGError, match=r"'vog_raw' of VoG run 'vog' is not the run's \(fiftyone-vog did not write"):
        rename_vog_run(run, "vog", "vog2")
    assert _snapshot(run) == before


def test_rename_refuses_a_key_whose_earlier_fields_are_left(run):
    run.add_sample_field("vog2_extra", fo.FloatField)
    ownership.record(run, ownership.FIELD, "vog2_extra", ownership.run_owner("vog2"))  # an interrupted run vog2's
    before = _snapshot(run)
    with pytest.raises(fov.VoGError, match="still holds fields of an earlier run 'vog2'.*delete_vog_run"):
        rename_vog_run(run, "vog", "vog2")
    assert _snapshot(run) == before


def test_a_rename_that_fails_half_way_puts_everything_back(run, monkeypatch):
    before = _snapshot(run)
    real, calls = run_views.rename_view_fields, []

    def fail_once(*args):  # the last step: Ctrl-C there; the undo's own call goes through
        calls.append(args)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(run_views, "rename_view_fields", fail_once)
    with pytest.raises(KeyboardInterrupt):
        rename_vog_run(run, "vog", "vog2")
    assert _snapshot(run) == before


def test_delete_removes_what_it_listed_and_keeps_a_users_views(run):
    # the user's: a view of a run's name that is theirs (deleted ours, saved their own), and a
    # view over the run's field of another description
    run.delete_saved_view("vog-low")
    run.save_view("vog-low", run.sort_by("vog"))
    run.save_view("my-hard", run.match(F("vog") > 1).sort_by("vog", reverse=True), description="hard ones")
    listed = fov.delete_vog_run(run, "vog", dry_run=True)
    assert "vog" in run.list_runs() and set(FIELDS) <= set(run.get_field_schema())  # a dry run deletes nothing
    assert listed.views == [v for v in VIEWS if v != "vog-low"]
    gone = fov.delete_vog_run(run, "vog")
    assert gone == listed
    assert not set(FIELDS) & set(run.get_field_schema()) and not set(gone.indexes) & set(run.list_indexes())
    assert sorted(run.list_saved_views()) == ["my-hard", "vog-low"] and run.list_runs() == []


def test_fiftyones_delete_run_deletes_the_runs_views_too(run):
    run.delete_run("vog")
    assert run.list_saved_views() == []


def test_delete_keeping_the_fields_keeps_the_views(run):
    assert fov.delete_vog_run(run, "vog", delete_fields=False).views == []
    assert len(run.list_saved_views()) == len(VIEWS) and set(FIELDS) <= set(run.get_field_schema())
