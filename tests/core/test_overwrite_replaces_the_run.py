"""An overwrite replaces the whole run: every field the ownership record lists as the run's and the
new run does not write (companions turned off, fewer windows, fields of a renamed run) is removed
once the new run is registered — no stale, unowned field is left to feed a view, block a later run
or outlive ``delete_vog_run``."""

import fiftyone_vog as fov
from fiftyone_vog.core import ownership

from conftest import small_model

COMPANIONS = ["vog_energy", "vog_loss", "vog_margin", "vog_maxprob"]


def _run_fields(ds, key="vog"):
    return sorted(ds.get_run_info(key).config.fields)


def _recorded(ds, key="vog"):
    return ownership.names(ds, ownership.run_owner(key))


def _vog_fields(ds):
    return sorted(n for n in ds.get_field_schema() if n.startswith(("vog", "old")))


def test_companions_off_removes_the_old_companions_and_on_again_works(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, overwrite=True, companions=False)
    assert _vog_fields(dataset) == _run_fields(dataset) == _recorded(dataset) == ["vog", "vog_raw"]
    views = fov.save_vog_views(dataset)  # no label-error view from the old losses
    assert "vog-label-errors" not in views and "vog_loss" in views.skipped["vog-label-errors"]
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, overwrite=True)  # companions back on
    assert _vog_fields(dataset) == _recorded(dataset) == sorted(["vog", "vog_raw", *COMPANIONS])
    fov.delete_vog_run(dataset, "vog")
    assert _vog_fields(dataset) == [] and _recorded(dataset) == []


def test_fewer_windows_remove_the_dropped_windows_fields(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, windows={"early": "0:2", "late": "-2:"})
    assert "vog_early_loss" in _vog_fields(dataset)
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, windows={"late": "-2:"}, overwrite=True)
    assert not [n for n in _vog_fields(dataset) if n.startswith("vog_early")]
    assert _vog_fields(dataset) == _run_fields(dataset) == _recorded(dataset)
    fov.delete_vog_run(dataset, "vog")
    assert _vog_fields(dataset) == []


def test_overwriting_a_renamed_run_removes_the_fields_it_had(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    dataset.rename_run("vog", "old")  # FiftyOne's own rename: the record follows the key
    assert _recorded(dataset, "old") == sorted(["vog", "vog_raw", *COMPANIONS]) and _recorded(dataset) == []
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, vog_field="old", overwrite=True)
    assert _vog_fields(dataset) == _run_fields(dataset, "old") == _recorded(dataset, "old")
    assert not [n for n in _vog_fields(dataset) if n.startswith("vog")]
    fov.compute_vog(dataset, checkpoint_dir, model=small_model)  # the names are free again
    assert fov.list_vog_runs(dataset) == ["old", "vog"]
