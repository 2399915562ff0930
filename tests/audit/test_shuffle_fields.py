"""Two label fields' shuffling audits side by side: each has its own flag and backup field, a
restore of one never touches the other's, the operator shuffles only its target view and says
what it did, and Save VoG views with parameters left out keeps the API's defaults."""

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.operators.executor import ExecutionError

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin

from conftest import resolve_form, small_model

PLUGIN = "@fiftyone-vog/vog"
SHUFFLE = f"{PLUGIN}/shuffle_labels"


@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


@pytest.fixture
def two_fields(dataset):
    """``dataset`` with a second Classification field ``predictions`` (a copy of the labels)."""
    dataset.add_sample_field("predictions", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    dataset.set_values("predictions", [fo.Classification(label=c.label) for c in dataset.values("ground_truth")])
    dataset.classes["predictions"] = dataset.classes["ground_truth"]
    dataset.save()
    return dataset


def _choices(prop):
    return [c.value for c in prop.view.choices]


def _audit(ds, label_field, flag):
    return ds.values(flag), ds.values(f"{label_field}_original.label"), ds.values(f"{label_field}.label")


def test_each_label_field_gets_its_own_flag(two_fields):
    ds = two_fields
    gt = fov.shuffle_labels(ds, fraction=0.25, seed=1)
    assert gt["flag_field"] == "label_shuffled"  # ground_truth keeps the historic name
    before = _audit(ds, "ground_truth", "label_shuffled")
    pred = fov.shuffle_labels(ds, fraction=0.5, label_field="predictions", seed=2)  # no false "already shuffled"
    assert pred["flag_field"] == "predictions_shuffled" and pred["shuffled"] == 20
    assert sum(ds.values("predictions_shuffled")) == 20
    assert _audit(ds, "ground_truth", "label_shuffled") == before


def test_restoring_one_field_leaves_the_others_audit_intact(two_fields):
    ds = two_fields
    fov.shuffle_labels(ds, fraction=0.25, seed=1)
    before = _audit(ds, "ground_truth", "label_shuffled")
    labels = ds.values("predictions.label")
    fov.shuffle_labels(ds, fraction=0.5, label_field="predictions", seed=2, flag_field="pred_shuffled")
    out = fov.restore_labels(ds, label_field="predictions")  # defaults: the flag the shuffle recorded
    assert sorted(out["deleted_fields"]) == ["pred_shuffled", "predictions_original"]
    assert ds.values("predictions.label") == labels
    assert _audit(ds, "ground_truth", "label_shuffled") == before
    assert sum(ds.values("label_shuffled")) == 10


def test_restore_refuses_another_fields_flag(two_fields):
    ds = two_fields
    fov.shuffle_labels(ds, fraction=0.25, seed=1)
    fov.shuffle_labels(ds, fraction=0.5, label_field="predictions", seed=2)
    before = _audit(ds, "ground_truth", "label_shuffled")
    with pytest.raises(
        fov.VoGError, match="'label_shuffled' flags the shuffle of 'ground_truth', not of 'predictions'"
    ):
        fov.restore_labels(ds, label_field="predictions", flag_field="label_shuffled")
    with pytest.raises(fov.VoGError, match="belongs to the shuffle of 'ground_truth'"):
        fov.shuffle_labels(ds, label_field="predictions", flag_field="label_shuffled", overwrite=True)
    assert _audit(ds, "ground_truth", "label_shuffled") == before
    assert "predictions_shuffled" in ds.get_field_schema()


def test_operator_restore_with_defaults_keeps_the_other_audit(two_fields):
    ds = two_fields
    foo.execute_operator(SHUFFLE, ctx={"dataset": ds, "params": {"fraction": 0.25}})
    before = _audit(ds, "ground_truth", "label_shuffled")
    foo.execute_operator(SHUFFLE, ctx={"dataset": ds, "params": {"label_field": "predictions", "fraction": 0.5}})
    r = foo.execute_operator(
        SHUFFLE, ctx={"dataset": ds, "params": {"action": "restore", "label_field": "predictions"}}
    )
    assert "Restored 20 labels of 'predictions' in the whole dataset (40 samples)" in r.result["summary"]
    assert _audit(ds, "ground_truth", "label_shuffled") == before
    assert not {"predictions_shuffled", "predictions_original"} & set(ds.get_field_schema())
    # another field's flag is an inline error naming the form's control, and execution is refused
    props, val = resolve_form(
        SHUFFLE, ds, {"action": "restore", "label_field": "predictions", "flag_field": "label_shuffled"}
    )
    assert props["flag_field"].invalid and "'Flag field'" in props["flag_field"].error_message and val.invalid
    with pytest.raises(ExecutionError, match="flags the shuffle of 'ground_truth'"):
        foo.execute_operator(
            SHUFFLE,
            ctx={
                "dataset": ds,
                "params": {"action": "restore", "label_field": "predictions", "flag_field": "label_shuffled"},
            },
        )
    assert _audit(ds, "ground_truth", "label_shuffled") == before


def test_operator_shuffles_only_its_target_view(dataset):
    view = dataset.limit(12)
    outside = dataset.skip(12)
    labels_outside = outside.values("ground_truth.label")
    r = foo.execute_operator(SHUFFLE, ctx={"view": view, "params": {"fraction": 0.5, "view_target": "CURRENT_VIEW"}})
    assert r.result["shuffled"] == 6 and r.result["labeled"] == 12
    assert "Shuffled 6 of 12 labeled samples of 'ground_truth' in a view of 12 samples" in r.result["summary"]
    assert outside.values("ground_truth.label") == labels_outside
    assert set(outside.values("label_shuffled")) == {None} and sum(view.values("label_shuffled")) == 6


def test_form_messages_name_the_controls_and_hide_backups(two_fields):
    ds = two_fields
    fov.shuffle_labels(ds, fraction=0.25, seed=1)
    props, val = resolve_form(SHUFFLE, ds, {"fraction": 0.25})
    msg = props["label_field"].error_message
    assert props["label_field"].invalid and "tick 'Overwrite'" in msg and "overwrite=True" not in msg and val.invalid
    props, val = resolve_form(SHUFFLE, ds, {"fraction": 0.25, "overwrite": True})
    assert not val.invalid
    # the backup field ground_truth_original is no label field to offer
    assert _choices(props["label_field"]) == ["ground_truth", "predictions"]
    props, _ = resolve_form(f"{PLUGIN}/compute_vog", ds, {})
    assert "ground_truth_original" not in _choices(props["label_field"])
    props, _ = resolve_form(f"{PLUGIN}/export_vog_subset", ds, {})
    assert "ground_truth_original" not in _choices(props["label_field"])


def test_save_views_operator_with_parameters_left_out_keeps_the_shuffled_view(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, device="cpu", progress=False)
    fov.shuffle_labels(dataset, fraction=0.25, seed=1)
    assert "vog-shuffled-labels" in fov.save_vog_views(dataset)
    r = foo.execute_operator(f"{PLUGIN}/save_vog_views", ctx={"dataset": dataset, "params": {}})
    saved = {row["view"]: row["samples"] for row in r.result["views"]}  # the App's table: one row per view
    assert saved["vog-shuffled-labels"] == 10
    assert "vog-shuffled-labels" not in [row["view"] for row in r.result["skipped"]]
    assert dataset.has_saved_view("vog-shuffled-labels")


def test_panel_does_not_offer_the_backup_as_a_prediction_field(two_fields):
    ds = two_fields
    fov.shuffle_labels(ds, fraction=0.25, seed=1)
    ds.add_sample_field("vog", fo.FloatField)
    ds.set_values("vog", [float(i) for i in range(len(ds))])
    ds.register_run(
        "vog",
        ds.init_run(method="fiftyone_vog.compute_vog", vog_field="vog", label_field="ground_truth", fields=["vog"]),
    )
    result = foo.execute_operator(
        f"{PLUGIN}/vog_panel",
        ctx={"dataset": ds, "params": {"__method__": "on_load", "panel_id": "p1", "panel_state": {}}},
    )
    patches = [r.params["state"] for r in result.executor._requests if r.operator_uri == "patch_panel_state"]
    state = {k: v for p in patches for k, v in p.items()}
    assert state["preds"] == ["predictions"]
