"""One naming module: compute writes the names it derives, and panel, report, analysis and audit
read them through :func:`fiftyone_vog.core.naming.score_fields` — the run's recorded field list
where a run has one, the naming rule for fields no run recorded."""

import fiftyone as fo

import fiftyone_vog as fov
from fiftyone_vog.analysis import detector_table_from_view, per_class_from_view
from fiftyone_vog.app import panel as panels
from fiftyone_vog.core import compute
from fiftyone_vog.core.naming import (
    ALL,
    companion_field_names,
    raw_field_name,
    score_field_names,
    score_fields,
    window_field_name,
)

from conftest import small_model


def test_the_rule():
    assert window_field_name("vog") == "vog" and window_field_name("vog", "late") == "vog_late"
    assert raw_field_name("vog_late") == "vog_late_raw"
    assert score_field_names("s", ["early"]) == {ALL: ("s", "s_raw"), "early": ("s_early", "s_early_raw")}
    assert companion_field_names("s", ["late"], ["loss"]) == {ALL: {"loss": "s_loss"}, "late": {"loss": "s_late_loss"}}
    # compute writes exactly these names (it asks the same module)
    assert compute.field_names("s", ["early"]) == score_field_names("s", ["early"])
    assert compute.companion_fields("s", ["late"]) == companion_field_names("s", ["late"])


def test_readers_take_the_runs_field_list_over_a_lookalike_field(dataset, checkpoint_dir):
    """A run without companions beside a user's own ``vog_loss``: that field is no companion of
    the run, so the detector table leaves it out; the run's window fields are found from its record."""
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, companions=False, windows={"late": "-2:"})
    dataset.add_sample_field("vog_loss", fo.FloatField)
    dataset.set_values("vog_loss", [float(i) for i in range(len(dataset))])  # the user's, not the run's
    beside = score_fields(dataset, "vog")
    assert beside.recorded is not None and "vog_late_raw" in beside.recorded
    assert beside.raw == "vog_raw" and beside.companions == {} and beside.window("late") == "vog_late"
    assert score_fields(dataset, "vog_late").raw == "vog_late_raw"  # a window field: its run's record
    dataset.take(10, seed=0).tag_samples("ood")
    rows = [r["score"] for r in detector_table_from_view(dataset, "vog", tag="ood").rows]
    assert sorted(rows) == ["vog", "vog_raw"]
    stats = panels.view_stats(dataset, "vog", "ground_truth")
    assert stats["class_field"] == "vog_raw"


def test_fields_no_run_recorded_follow_the_rule(dataset):
    """Fields of runs from versions that recorded no field list (or of no run) are found by name."""
    n = len(dataset)
    for name in ("score", "score_raw", "score_loss"):
        dataset.add_sample_field(name, fo.FloatField)
        dataset.set_values(name, [float(i % 7) for i in range(n)])
    dataset.set_values("predictions", [fo.Classification(label=lab) for lab in dataset.values("ground_truth.label")])
    beside = score_fields(dataset, "score")
    assert beside.recorded is None
    assert beside.raw == "score_raw" and beside.companions == {"loss": "score_loss"}
    assert beside.raw_or_score == "score_raw" and score_fields(dataset, "vog").raw_or_score == "vog"
    assert score_fields(dataset, "score_raw").raw is None  # a raw field has no raw beside it
    assert per_class_from_view(dataset, "score", pred_field="predictions").n_classes_used > 0
    assert panels.view_stats(dataset, "score", "ground_truth")["class_field"] == "score_raw"
