"""The VoG panel picks the field that scores the view, re-reads the runs, draws class names as
categories, keeps titles clear of plotly's toolbar and says what its error rates are over."""

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest

from fiftyone_vog.app import panel as panels
from fiftyone_vog.app.install import install_plugin

PANEL = "@fiftyone-vog/vog/vog_panel"


@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


def _register(ds, field, ids):
    """A VoG run ``field`` scoring the samples ``ids`` only (as compute_vog on a view does)."""
    rng = np.random.default_rng(len(field))
    ds.add_sample_field(field, fo.FloatField)
    ds.add_sample_field(f"{field}_raw", fo.FloatField)
    ds.select(ids).set_values(field, rng.normal(size=len(ids)).tolist())
    ds.select(ids).set_values(f"{field}_raw", rng.uniform(size=len(ids)).tolist())
    cfg = ds.init_run(
        method="fiftyone_vog.compute_vog", vog_field=field, label_field="ground_truth", fields=[field, f"{field}_raw"]
    )
    ds.register_run(field, cfg)


@pytest.fixture
def split(dataset):
    """``vog`` scores the first 30 samples, ``vog_test`` the last 10 (tagged ``ood``, unlabeled)."""
    ids = dataset.values("id")
    _register(dataset, "vog", ids[:30])
    _register(dataset, "vog_test", ids[30:])
    dataset.select(ids[30:]).tag_samples("ood")
    dataset.select(ids[30:]).set_field("ground_truth", None).save()
    labels = dataset.values("ground_truth.label")
    dataset.set_values("predictions", [fo.Classification(label=l or "circle") for l in labels])
    return dataset


def _state(result):
    patches = [r.params["state"] for r in result.executor._requests if r.operator_uri == "patch_panel_state"]
    return {k: v for p in patches for k, v in p.items()}


def _run(ds, method, state=None, view=None, **params):
    ctx = {"dataset": ds, "params": {"__method__": method, "panel_id": "p1", "panel_state": state or {}, **params}}
    if view is not None:
        ctx["view"] = view
    return foo.execute_operator(PANEL, ctx=ctx)


def test_pick_vog_field_scoring_the_view(split):
    ood = split.match_tags("ood")
    assert panels.pick_vog_field(ood, ["vog", "vog_test"]) == "vog_test"
    assert panels.pick_vog_field(split, ["vog_test", "vog"]) == "vog_test"  # made last, scores 10 of 40
    assert panels.pick_vog_field(split.match_tags("ood", bool=False), ["vog_test", "vog"]) == "vog"
    assert panels.pick_vog_field(ood, ["vog", "vog_test"], current="vog_test") == "vog_test"
    assert panels.pick_vog_field(ood, ["vog", "vog_test"], current="vog") == "vog_test"  # scores none here
    assert panels.pick_vog_field(split, ["vog", "vog_test"], current="vog_test") == "vog_test"  # the user's pick
    assert panels.pick_vog_field(split, []) is None


def test_panel_on_the_ood_view_shows_the_field_that_scores_it(split):
    state = _state(_run(split, "on_load", view=split.match_tags("ood")))
    assert state["vog_field"] == "vog_test"
    assert state["stats"]["count"] == 10


def test_runs_computed_later_appear_in_the_field_list(split):
    state = _state(_run(split, "on_load"))
    assert state["runs"] == ["vog", "vog_test"]
    _register(split, "vog_later", split.values("id"))
    # the App's view event after a Compute VoG reloads the dataset: same view, the runs re-read
    result = _run(split, "on_change_view", state=dict(state, base_view=[]))
    assert _state(result)["runs"] == ["vog", "vog_later", "vog_test"]
    # and the Refresh button
    state = _state(_run(split, "on_click_refresh", state=state))
    assert "vog_later" in state["runs"]


def test_digit_class_names_are_categories_highest_first():
    stats = {
        "class_field": "vog_raw",
        "classes": [
            {"label": "7", "mean": 3.0, "count": 2},
            {"label": "1", "mean": 2.0, "count": 2},
            {"label": "4", "mean": 1.0, "count": 1},
        ],
    }
    layout = panels._class_layout(stats)
    assert layout["xaxis"]["type"] == "category"
    assert layout["xaxis"]["categoryarray"] == ["7", "1", "4"]
    assert panels._class_traces(stats)[0]["x"] == ["7", "1", "4"]


def test_titles_clear_the_toolbar():
    layout = panels._layout("t", "x", "y")
    assert layout["margin"]["t"] >= 60
    assert layout["title"]["yref"] == "container" and layout["title"]["pad"]["t"] >= 30


def test_error_rate_notes(split):
    # labeled view with predictions: error rates, over the labeled samples only
    stats = panels.view_stats(split, "vog", "ground_truth", "predictions")
    title = panels._decile_layout(stats)["title"]["text"]
    assert "over the 30 labeled samples only" in title
    # the OOD view has predictions but no labels: no "add a prediction field" while one is selected
    stats = panels.view_stats(split.match_tags("ood"), "vog_test", "ground_truth", "predictions")
    title = panels._decile_layout(stats)["title"]["text"]
    assert "add a prediction field" not in title
    assert "no sample here has both a ground_truth label and a predictions prediction" in title
    stats = panels.view_stats(split, "vog", "ground_truth", None)
    assert "add a prediction field" in panels._decile_layout(stats)["title"]["text"]


def test_the_panel_opens_on_the_run_made_last(split):
    """Not a tie-break among fields: two runs scoring every sample, the later one is shown."""
    _register(split, "vog_later", split.values("id"))
    split.set_values("vog", [1.0] * len(split))  # vog scores every sample too
    assert _state(_run(split, "on_load"))["vog_field"] == "vog_later"
