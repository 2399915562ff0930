"""The ownership record itself (fiftyone_vog/core/ownership.py): what it lists, that it believes a
record only while the thing is still the one we wrote, and that its destructive steps refuse
anything it does not list — on real MongoDB, real datasets and real files."""

import os

import fiftyone as fo
import pytest

from fiftyone_vog.core import ownership as own
from fiftyone_vog.errors import VoGError


def _float_field(ds, name, value=1.0):
    ds.add_sample_field(name, fo.FloatField)
    ds.set_values(name, [value] * len(ds))


def test_a_recorded_field_is_listed_with_its_owner_and_deleted_through_the_record(dataset):
    _float_field(dataset, "mine")
    e = own.record(dataset, own.FIELD, "mine", own.run_owner("mine"), role="score", options={"a": 1})
    assert e.owner == "run:mine" and e.role == "score" and e.options == {"a": 1}
    assert [(x.kind, x.name, x.owner) for x in own.listing(dataset)] == [("field", "mine", "run:mine")]
    assert own.owns(dataset, own.FIELD, "mine", "run:mine") and not own.owns(dataset, own.FIELD, "mine", "run:x")
    own.delete_field(dataset, "mine", "run:mine")
    assert "mine" not in dataset.get_field_schema() and own.listing(dataset) == []


def test_a_field_nobody_recorded_is_refused_and_untouched(dataset):
    _float_field(dataset, "users", 3.0)
    with pytest.raises(
        VoGError, match=r"field 'users' of dataset .* was not written by fiftyone-vog; it never deletes it"
    ):
        own.delete_field(dataset, "users")
    assert dataset.values("users") == [3.0] * len(dataset)


def test_a_field_of_another_owner_is_refused(dataset):
    _float_field(dataset, "a")
    own.record(dataset, own.FIELD, "a", own.run_owner("a"))
    with pytest.raises(VoGError, match=r"belongs to the VoG run 'a', not the shuffle audit of 'ground_truth'"):
        own.delete_field(dataset, "a", own.shuffle_owner("ground_truth"))
    with pytest.raises(VoGError, match="never takes it over"):
        own.record(dataset, own.FIELD, "a", own.run_owner("b"))
    assert "a" in dataset.get_field_schema()


def test_a_user_field_recreated_under_our_name_is_the_users(dataset):
    """The record names the field, the field's info carries the token: delete ours, make your own
    field of that name, and it is yours."""
    _float_field(dataset, "vog")
    own.record(dataset, own.FIELD, "vog", own.run_owner("vog"))
    dataset.delete_sample_field("vog")  # the user, not us
    _float_field(dataset, "vog", 7.0)
    assert not own.owns(dataset, own.FIELD, "vog")
    with pytest.raises(VoGError, match="was not written by fiftyone-vog"):
        own.delete_field(dataset, "vog")
    assert dataset.values("vog") == [7.0] * len(dataset)
    assert own.listing(dataset) == []  # the stale record is gone


def test_a_renamed_field_follows_through_transfer(dataset):
    _float_field(dataset, "old")
    own.record(dataset, own.FIELD, "old", own.run_owner("old"))
    dataset.rename_sample_field("old", "new")
    own.transfer(dataset, own.FIELD, "old", own.run_owner("old"), own.run_owner("new"), new_name="new")
    assert own.owner_of(dataset, own.FIELD, "new") == "run:new"
    assert own.owner_of(dataset, own.FIELD, "old") is None


def test_a_saved_view_resaved_by_the_user_is_the_users(dataset):
    dataset.save_view("vog-high", dataset.limit(3))
    own.record(dataset, own.VIEW, "vog-high", own.views_owner("vog"))
    assert own.owns(dataset, own.VIEW, "vog-high")
    dataset.save_view("vog-high", dataset.limit(5), overwrite=True)  # the user's own now
    with pytest.raises(VoGError, match="saved view 'vog-high' .* was not written by fiftyone-vog"):
        own.delete_view(dataset, "vog-high")
    assert len(dataset.load_saved_view("vog-high")) == 5


def test_an_index_is_ours_only_with_its_record(dataset):
    _float_field(dataset, "s")
    own.record(dataset, own.FIELD, "s", own.run_owner("s"))
    dataset.create_index("s")
    with pytest.raises(VoGError, match="index 's' .* was not written by fiftyone-vog; it never drops it"):
        own.drop_index(dataset, "s")
    own.record(dataset, own.INDEX, "s", own.run_owner("s"), options={"field": "s"})
    own.drop_index(dataset, "s", own.run_owner("s"))
    assert "s" not in dataset.list_indexes()


def test_files_are_ours_while_unchanged(tmp_path):
    ours, theirs, swapped = (tmp_path / n for n in ("ours.txt", "theirs.txt", "swapped.txt"))
    for p in (ours, theirs, swapped):
        p.write_text("x")
    owner = own.export_owner()
    assert own.record_paths([str(ours), str(swapped), str(tmp_path)], owner) == 3
    os.remove(swapped)
    swapped.write_text("the user's")  # same name, another file
    with pytest.raises(VoGError, match="was not written by fiftyone-vog"):
        own.remove_file(str(theirs))
    with pytest.raises(VoGError, match="was not written by fiftyone-vog"):
        own.remove_file(str(swapped))
    own.remove_file(str(ours), owner)
    assert not ours.exists() and theirs.read_text() == "x" and swapped.read_text() == "the user's"
    with pytest.raises(OSError):  # ours, but not empty: rmdir never removes what it holds
        own.remove_dir(str(tmp_path), owner)


def test_a_link_is_recorded_as_itself_never_its_target(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("precious")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    owner = own.export_owner()
    own.record_paths([str(link)], owner)
    assert not own.owns(None, own.FILE, str(target))
    own.remove_file(str(link), owner)
    assert target.read_text() == "precious" and not link.exists()


def test_legacy_run_and_shuffle_fields_are_adopted_once(scored_run):
    """A dataset from before the record: its VoG run's listed fields and the shuffle's fields
    (recorded in their info) are adopted; a user's field is not."""
    import fiftyone_vog as fov

    ds, _ = scored_run
    fov.shuffle_labels(ds, fraction=0.25, seed=0)
    _float_field(ds, "users")
    coll = own._coll()
    coll.delete_many({"dataset_id": str(ds._doc.id)})  # as if written by an earlier version
    listed = {(e.name, e.owner) for e in own.listing(ds, kind=own.FIELD)}
    assert ("vog", "run:vog") in listed and ("vog_raw", "run:vog") in listed
    assert ("label_shuffled", "shuffle:ground_truth") in listed
    assert ("ground_truth_original", "shuffle:ground_truth") in listed
    assert all(name != "users" and name != "ground_truth" for name, _ in listed)
    assert coll.count_documents({"dataset_id": str(ds._doc.id), "kind": "meta"}) == 1
