"""What the ownership record lists after each operation of a whole audit — compute, an overwrite
with other options, shuffle, save views, restore, delete run — exactly."""

import pytest

import fiftyone_vog as fov
from fiftyone_vog.core import ownership

from conftest import small_model

COMPANIONS = ("loss", "margin", "maxprob", "energy")


def _listing(ds):
    return [(e.kind, e.name, e.owner, e.role) for e in ownership.listing(ds)]


def _fields(prefix, roles):
    return [("field", n, "run:vog", r) for n, r in sorted(roles.items()) if n.startswith(prefix)]


def test_the_record_after_each_operation(dataset, checkpoint_dir):
    ds = dataset
    fov.compute_vog(ds, checkpoint_dir, model=small_model, windows={"late": "-2:"})
    roles = {"vog": "score", "vog_raw": "raw", "vog_late": "window", "vog_late_raw": "window-raw"}
    roles |= {f"vog_{c}": "companion" for c in COMPANIONS} | {f"vog_late_{c}": "window-companion" for c in COMPANIONS}
    indexed = sorted(["vog", "vog_raw", *(f"vog_{c}" for c in COMPANIONS)])
    index_rows = [("index", n, "run:vog", None) for n in indexed]
    assert _listing(ds) == _fields("vog", roles) + index_rows
    assert {e.name: e.options for e in ownership.listing(ds, kind="index")} == {n: {"field": n} for n in indexed}
    cfg = ds.get_run_info("vog").config.indexes
    assert sorted(cfg["indexed"]) == indexed and cfg["not_indexed"] == {}
    assert sorted(cfg["on_request"]) == sorted(n for n in roles if n.startswith("vog_late"))

    # an overwrite with other options: only what the new run wrote is listed (and exists)
    fov.compute_vog(ds, checkpoint_dir, model=small_model, overwrite=True, companions=False)
    small = {"vog": "score", "vog_raw": "raw"}
    assert _listing(ds) == _fields("vog", small) + [("index", n, "run:vog", None) for n in ("vog", "vog_raw")]
    assert sorted(n for n in ds.get_field_schema() if n.startswith("vog")) == ["vog", "vog_raw"]

    fov.shuffle_labels(ds, fraction=0.25, seed=1)
    audit = [
        ("field", "ground_truth_original", "shuffle:ground_truth", "original"),
        ("field", "label_shuffled", "shuffle:ground_truth", "flag"),
    ]
    assert _listing(ds) == sorted(audit + _fields("vog", small)) + [
        ("index", n, "run:vog", None) for n in ("vog", "vog_raw")
    ]

    views = fov.save_vog_views(ds)
    assert sorted(views) == ["vog-high", "vog-likely-ood", "vog-low", "vog-shuffled-labels"]
    view_rows = [("view", n, "views:vog", None) for n in sorted(views)]
    assert [r for r in _listing(ds) if r[0] == "view"] == view_rows

    fov.restore_labels(ds)
    assert not [r for r in _listing(ds) if r[2].startswith("shuffle:")]

    fov.delete_vog_run(ds, "vog")
    assert _listing(ds) == view_rows  # the views are save_vog_views', not the run's
    assert ownership.listing(ds, owner="run:vog") == []


def test_rename_moves_the_record_to_the_new_key(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, companions=False)
    assert {e.owner for e in ownership.listing(dataset)} == {"run:vog"}
    dataset.rename_run("vog", "first")
    assert {(e.name, e.owner) for e in ownership.listing(dataset)} == {
        ("vog", "run:first"),
        ("vog_raw", "run:first"),
    }
    fov.delete_vog_run(dataset, "first")
    assert ownership.listing(dataset) == [] and "vog" not in dataset.get_field_schema()


def test_delete_keeping_the_fields_hands_them_to_the_user(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, companions=False)
    assert {e.owner for e in ownership.listing(dataset)} == {"run:vog"}
    fov.delete_vog_run(dataset, "vog", delete_fields=False)
    assert ownership.listing(dataset) == [] and {"vog", "vog_raw"} <= set(dataset.get_field_schema())
    # the user's fields now: a new run of that key refuses them
    with pytest.raises(fov.VoGError, match="'vog' exists and no VoG run wrote it"):
        fov.compute_vog(dataset, checkpoint_dir, model=small_model, companions=False, overwrite=True)
