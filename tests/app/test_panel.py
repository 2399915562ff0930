"""The VoG panel: its pure computations against hand counts, and its events through the executor."""

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest

from fiftyone_vog.app import panel as panels
from fiftyone_vog.app.install import install_plugin

PANEL = "@fiftyone-vog/vog/vog_panel"


def test_histogram_counts_every_score_once():
    h = panels.histogram([0.0, 0.1, 0.5, 1.0, 1.0], bins=2)
    assert h == {"edges": [0.0, 0.5, 1.0], "counts": [2, 3]}
    assert panels.histogram([3.0, 3.0], bins=2) == {"edges": [2.5, 3.0, 3.5], "counts": [0, 2]}
    assert panels.histogram([]) == {"edges": [], "counts": []}


def test_deciles_by_rank():
    scores = np.arange(25, dtype=float)[::-1]  # 24 … 0
    d = panels.decile_of(scores)
    assert np.bincount(d).tolist() == [3, 2, 3, 2, 3, 2, 3, 2, 3, 2]
    assert d[-1] == 0 and d[0] == 9  # lowest score → first decile


def test_decile_table_error_rate_by_hand():
    scores = [5, 1, 4, 2, 3, 6, 8, 7, 9, 10]  # one sample per decile
    errors = [True, False, None, True, False, False, True, True, False, None]
    rows = panels.decile_table(scores, errors)
    assert [r["lo"] for r in rows] == list(range(1, 11))
    by_score = dict(zip(scores, errors))
    assert [r["error_rate"] for r in rows] == [
        None if by_score[s] is None else float(by_score[s]) for s in range(1, 11)
    ]
    rows = panels.decile_table(list(range(20)), [i % 2 == 0 for i in range(20)])
    assert all(r["count"] == 2 and r["error_rate"] == 0.5 for r in rows)
    assert panels.decile_table([1.0, 2.0])[0]["error_rate"] is None


def test_class_means_and_errors():
    rows = panels.class_means([1.0, 3.0, 10.0, 5.0], ["a", "a", "b", None])
    assert rows == [{"label": "b", "mean": 10.0, "count": 1}, {"label": "a", "mean": 2.0, "count": 2}]
    assert panels.classification_errors(["a", "b", None, "c"], ["a", "c", "a", None]) == [False, True, None, None]


def test_slice_bounds():
    stats = {"histogram": {"edges": [0.0, 0.5, 1.0]}, "deciles": [{"lo": 0.1, "hi": 0.2}]}
    assert panels.slice_bounds(stats, "histogram", 1) == (0.5, 1.0)
    assert panels.slice_bounds(stats, "deciles", 0) == (0.1, 0.2)
    assert panels.slice_bounds(stats, "histogram", 2) is None


@pytest.fixture
def panel_dataset(dataset):
    rng = np.random.default_rng(0)
    dataset.add_sample_field("vog", fo.FloatField)
    dataset.set_values("vog", rng.normal(size=len(dataset)).tolist())
    dataset.set_values("vog_raw", rng.uniform(size=len(dataset)).tolist())
    labels = dataset.values("ground_truth.label")
    dataset.set_values("predictions", [fo.Classification(label=l if i % 4 else "circle") for i, l in enumerate(labels)])
    cfg = dataset.init_run(
        method="fiftyone_vog.compute_vog", vog_field="vog", label_field="ground_truth", fields=["vog", "vog_raw"]
    )
    dataset.register_run("vog", cfg)
    return dataset


def test_view_stats_uses_raw_scores_for_class_means(panel_dataset):
    stats = panels.view_stats(panel_dataset, "vog", "ground_truth", "predictions")
    raw = np.array(panel_dataset.values("vog_raw"))
    labels = panel_dataset.values("ground_truth.label")
    circle = raw[[l == "circle" for l in labels]].mean()
    assert next(r for r in stats["classes"] if r["label"] == "circle")["mean"] == pytest.approx(circle)
    preds = panel_dataset.values("predictions.label")
    assert sum(r["count"] for r in stats["deciles"]) == 40 == stats["count"]
    wrong = sum(p != l for p, l in zip(preds, labels))
    assert sum(r["error_rate"] * r["count"] for r in stats["deciles"]) == pytest.approx(wrong)


def _run(ds, method, state=None, **params):
    return foo.execute_operator(
        PANEL,
        ctx={"dataset": ds, "params": {"__method__": method, "panel_id": "p1", "panel_state": state or {}, **params}},
    )


def test_panel_load_and_click_through_the_executor(panel_dataset):
    install_plugin()
    result = _run(panel_dataset, "on_load")
    patches = [r.params["state"] for r in result.executor._requests if r.operator_uri == "patch_panel_state"]
    state = {k: v for p in patches for k, v in p.items()}
    assert state["vog_field"] == "vog" and state["pred_field"] == "predictions"
    assert state["stats"]["count"] == 40
    assert any(r.operator_uri == "show_panel_output" for r in result.executor._requests)
    # click the top decile: the App gets a view of exactly those samples, hardest first
    result = _run(panel_dataset, "on_click_deciles", state=state, idx=9)
    view_req = next(r for r in result.executor._requests if r.operator_uri == "set_view")
    view = fo.DatasetView._build(panel_dataset, view_req.params["view"])
    vog = np.array(panel_dataset.values("vog"))
    top = np.sort(vog)[-4:][::-1]
    assert view.values("vog") == top.tolist()


def test_late_view_event_for_the_same_view_keeps_the_picked_field(panel_dataset):
    """The App may deliver a view-change event for the view the statistics already describe, carrying
    an older panel state: it must not undo the VoG field the user has just picked."""
    install_plugin()
    panel_dataset.set_values("other", np.array(panel_dataset.values("vog")) * 2)
    cfg = panel_dataset.init_run(
        method="fiftyone_vog.compute_vog", vog_field="other", label_field="ground_truth", fields=["other"]
    )
    panel_dataset.register_run("other", cfg)

    def state_after(result):
        patches = [r.params["state"] for r in result.executor._requests if r.operator_uri == "patch_panel_state"]
        return {k: v for p in patches for k, v in p.items()}

    state = state_after(_run(panel_dataset, "on_load"))
    assert state["vog_field"] in ("vog", "other")
    picked = "other" if state["vog_field"] == "vog" else "vog"
    new = state_after(_run(panel_dataset, "on_change_vog_field", state=state, value=picked))
    assert new["vog_field"] == picked
    stale = dict(state, base_view=[])  # the older state, for the unchanged (full) view
    result = _run(panel_dataset, "on_change_view", state=stale)
    assert not [r for r in result.executor._requests if r.operator_uri == "patch_panel_state"]
    # a real view change is recomputed
    view = panel_dataset.limit(10)
    result = foo.execute_operator(
        PANEL,
        ctx={
            "dataset": panel_dataset,
            "view": view,
            "params": {"__method__": "on_change_view", "panel_id": "p1", "panel_state": new},
        },
    )
    assert state_after(result)["stats"]["count"] == 10


def test_a_flat_zero_error_chart_says_why_through_the_executor(panel_dataset):
    """On data the model fit (every prediction right) the error-by-decile chart is flat at 0: the
    panel says why in an element of its own (issue 18), and says nothing when there are errors."""
    import json

    from fiftyone_vog.analysis import error_by_bin
    from fiftyone_vog.analysis.binned import NO_ERRORS_NOTE

    install_plugin()

    def shown(ds):
        result = _run(ds, "on_load")
        return json.dumps([r.params for r in result.executor._requests if r.operator_uri == "show_panel_output"])

    labels = panel_dataset.values("ground_truth.label")
    wrong = [fo.Classification(label=l if i % 3 else "not-" + l) for i, l in enumerate(labels)]
    panel_dataset.set_values("predictions", wrong)
    assert NO_ERRORS_NOTE not in shown(panel_dataset)  # a third of the predictions are wrong
    panel_dataset.set_values("predictions", [fo.Classification(label=l) for l in labels])
    assert "deciles_note" in shown(panel_dataset) and NO_ERRORS_NOTE in shown(panel_dataset)
    # the report's error section carries the same note
    assert NO_ERRORS_NOTE in error_by_bin(np.arange(20.0), np.ones(20, bool), 10).note
    assert NO_ERRORS_NOTE not in error_by_bin(np.arange(20.0), np.arange(20) % 3 > 0, 10).note
