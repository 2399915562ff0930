"""The whole class, not single instances: for each dataset-side destructive path, a field, saved
view or index that fiftyone-vog did not write — made by the user under the very name the path
would touch, also after deleting ours — is left exactly as it was, and the path says so in one
line (a refusal, or for a deletion that goes on with the rest, a one-line warning)."""

import logging

import fiftyone as fo
import pytest

import fiftyone_vog as fov
from fiftyone_vog import cli
from fiftyone_vog.core import ownership

from conftest import small_model


def _users_float(ds, name, value=7.0):
    """The user's own float field ``name`` (ours of that name, if any, deleted by the user first)."""
    if name in ds.get_field_schema():
        ds.delete_sample_field(name)  # the user, not fiftyone-vog
    ds.add_sample_field(name, fo.FloatField)
    ds.set_values(name, [value] * len(ds))


def _one_line(e):
    return "\n" not in str(e.value) and str(e.value)


@pytest.fixture
def run(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, windows={"late": "-2:"})
    return dataset


def test_compute_overwrite_refuses_the_users_field_of_its_own_name(run, checkpoint_dir, capsys):
    _users_float(run, "vog_late_raw")
    with pytest.raises(fov.VoGError, match="'vog_late_raw' exists and no VoG run wrote it") as e:
        fov.compute_vog(run, checkpoint_dir, model=small_model, windows={"late": "-2:"}, overwrite=True)
    assert _one_line(e)
    assert cli.main(["compute", run.name, "--checkpoints", checkpoint_dir, "--windows", "late=-2:", "--overwrite"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert run.values("vog_late_raw") == [7.0] * len(run)


def test_compute_overwrite_with_fewer_fields_leaves_the_users_field_of_a_dropped_name(run, checkpoint_dir):
    _users_float(run, "vog_late")
    fov.compute_vog(run, checkpoint_dir, model=small_model, overwrite=True)  # no window now: vog_late* go
    assert run.values("vog_late") == [7.0] * len(run)
    assert "vog_late_raw" not in run.get_field_schema()


@pytest.mark.parametrize("how", ["delete_vog_run", "dataset.delete_run"])
def test_deleting_a_run_keeps_the_users_field_of_its_name_with_a_warning(run, caplog, how):
    _users_float(run, "vog_raw")
    with caplog.at_level(logging.WARNING, logger="fiftyone_vog.core.runs"):
        fov.delete_vog_run(run, "vog") if how == "delete_vog_run" else run.delete_run("vog")
    assert run.values("vog_raw") == [7.0] * len(run)
    lines = [r.getMessage() for r in caplog.records if "vog_raw" in r.getMessage()]
    assert lines == [f"kept field 'vog_raw' of dataset {run.name!r}: fiftyone-vog did not write it"]
    assert "vog" not in run.get_field_schema() and not run.has_run("vog")


def test_restore_refuses_the_users_fields_of_the_audits_names(run):
    fov.shuffle_labels(run, fraction=0.25, seed=1)
    fov.restore_labels(run)
    for name, kind in (("label_shuffled", fo.BooleanField), ("ground_truth_original", None)):
        if kind is None:
            run.add_sample_field(name, fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
            run.set_values(name, [fo.Classification(label="dots")] * len(run))
        else:
            run.add_sample_field(name, kind)
            run.set_values(name, [True] * len(run))
    labels = run.values("ground_truth.label")
    with pytest.raises(fov.VoGError, match="'ground_truth_original' exists and was not written by") as e:
        fov.restore_labels(run)
    assert _one_line(e)
    run.delete_sample_field("ground_truth_original")  # the user
    with pytest.raises(fov.VoGError, match="'label_shuffled' exists and was not written by") as e:
        fov.restore_labels(run)
    assert _one_line(e) and run.values("label_shuffled") == [True] * len(run)
    assert run.values("ground_truth.label") == labels


def test_shuffle_overwrite_refuses_the_users_field_of_the_audits_name(run):
    fov.shuffle_labels(run, fraction=0.25, seed=1)
    labels = run.values("ground_truth.label")
    run.delete_sample_field("label_shuffled")  # the user replaces the flag with a field of their own
    run.add_sample_field("label_shuffled", fo.BooleanField)
    run.set_values("label_shuffled", [False] * len(run))
    with pytest.raises(fov.VoGError, match="'label_shuffled' exists and was not written by") as e:
        fov.shuffle_labels(run, fraction=0.5, seed=2, overwrite=True)
    assert _one_line(e)
    assert run.values("label_shuffled") == [False] * len(run) and run.values("ground_truth.label") == labels


def test_save_views_refuses_to_replace_the_users_view_of_its_name(run, capsys):
    run.save_view("vog-low", run.limit(3))  # the user's, under one of the names
    with pytest.raises(
        fov.VoGError, match=r"^saved view 'vog-low' of dataset .* was not written by fiftyone-vog; it never replaces it"
    ) as e:
        fov.save_vog_views(run)
    assert _one_line(e)
    assert not run.has_saved_view("vog-high")  # checked before any view was saved
    assert cli.main(["views", run.name]) == 2 and capsys.readouterr().err.count("\n") == 1
    assert len(run.load_saved_view("vog-low")) == 3


def test_save_views_never_replaces_or_deletes_a_view_the_user_resaved(run):
    fov.save_vog_views(run)
    run.save_view("vog-ood", run.limit(2))  # no sample is tagged ood: save_vog_views would skip this name
    run.save_view("vog-high", run.limit(5), overwrite=True)  # the user's own now, under our name
    with pytest.raises(fov.VoGError, match="saved view 'vog-high' .* was not written by fiftyone-vog"):
        fov.save_vog_views(run)
    views = fov.save_vog_views(run, names={"high": "mine-high"})
    assert "kept the saved view 'vog-ood': fiftyone-vog did not save it" in views.skipped["vog-ood"]
    assert len(run.load_saved_view("vog-ood")) == 2 and len(run.load_saved_view("vog-high")) == 5


def test_index_drop_leaves_indexes_fiftyone_vog_did_not_make(run, capsys):
    run.create_index("vog_late")  # the user's index on our field
    _users_float(run, "mine")
    run.create_index("mine")
    out = fov.index_vog_fields(run, ["vog_late"], drop=True)
    assert out["dropped"] == [] and out["unchanged"] == ["vog_late"]
    with pytest.raises(fov.VoGError, match="field 'mine' of dataset .* was not written by fiftyone-vog") as e:
        fov.index_vog_fields(run, ["mine"], drop=True)
    assert _one_line(e)
    assert cli.main(["index", run.name, "mine", "--drop"]) == 2 and capsys.readouterr().err.count("\n") == 1
    assert {"vog_late", "mine"} <= set(run.list_indexes())
    fov.index_vog_fields(run, ["vog"], drop=True)  # one fiftyone-vog made: dropped
    assert "vog" not in run.list_indexes()


def test_the_record_never_outlives_the_thing(run):
    """After the user deletes and re-creates one of each under our names, the record lists none."""
    fov.save_vog_views(run)
    _users_float(run, "vog_late")
    run.save_view("vog-high", run.limit(1), overwrite=True)
    names = {(e.kind, e.name) for e in ownership.listing(run)}
    assert ("field", "vog_late") not in names and ("view", "vog-high") not in names
    assert ("field", "vog") in names and ("view", "vog-low") in names
