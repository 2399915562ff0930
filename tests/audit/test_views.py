"""save_vog_views on real datasets: contents, order, thresholds, ties, markers, expressions."""

import json
import logging
import math
import os

import fiftyone as fo
import numpy as np
import pytest
from fiftyone import ViewField as F

import fiftyone_vog as fov
from fiftyone_vog.audit.views import percentile_thresholds

from conftest import small_model

# 40 distinct scores in a scrambled order (7 is coprime with 40)
SCORES = [float((7 * i) % 40) - 3.5 for i in range(40)]


def _by_score(ds, field="vog"):
    ids, v = ds.values(["id", field])
    return ids, v


def _naive(ids, values, k, high):
    """The k highest (descending) or lowest (ascending) ids; values distinct."""
    pairs = [(v, i) for i, v in zip(ids, values) if v is not None]
    pairs.sort(reverse=high)
    return [i for _, i in pairs[:k]]


def test_names():
    assert fov.vog_view_names() == [
        "vog-high",
        "vog-low",
        "vog-shuffled-labels",
        "vog-ood",
        "vog-label-errors",
        "vog-likely-ood",
    ]
    assert list(fov.VOG_VIEW_NAMES) == fov.vog_view_names()


@pytest.mark.parametrize("percentile,k", [(10, 4), (25, 10), (2.5, 1), (1, 1), (12.5, 5), (100, 40)])
def test_high_low_contents_and_order(dataset, percentile, k):
    dataset.set_values("vog", SCORES)
    views = fov.save_vog_views(dataset, percentile=percentile)
    ids, values = _by_score(dataset)
    assert views.k == k and views.scored == 40
    high = dataset.load_saved_view("vog-high")
    low = dataset.load_saved_view("vog-low")
    assert high.values("id") == _naive(ids, values, k, high=True)
    assert low.values("id") == _naive(ids, values, k, high=False)
    # hardest first in vog-high; lowest first in vog-low
    assert high.values("vog") == sorted(high.values("vog"), reverse=True)
    assert low.values("vog") == sorted(low.values("vog"))
    assert views.thresholds == {"high": sorted(SCORES)[40 - k], "low": sorted(SCORES)[k - 1]}
    assert views["vog-high"].values("id") == high.values("id")


def test_ties_at_threshold_are_all_included(dataset):
    # scores 0..39 but the 4th, 5th and 6th largest share one value
    values = [float(i) for i in range(40)]
    values[34] = values[35] = values[36] = 36.0
    values[3] = values[4] = 3.0  # the 4th smallest ties with the 5th
    dataset.set_values("vog", values)
    fov.save_vog_views(dataset, percentile=10)
    assert dataset.load_saved_view("vog-high").values("vog") == [39.0, 38.0, 37.0, 36.0, 36.0, 36.0]
    assert dataset.load_saved_view("vog-low").values("vog") == [0.0, 1.0, 2.0, 3.0, 3.0]


def test_missing_scores_are_in_no_view_and_not_counted(dataset):
    values = [None if i % 4 == 0 else float(i) for i in range(40)]  # 30 scored
    values[1] = float("nan")  # 29 scored
    dataset.set_values("vog", values)
    views = fov.save_vog_views(dataset, percentile=10)
    assert views.scored == 29 and views.k == 3
    assert dataset.load_saved_view("vog-high").values("vog") == [39.0, 38.0, 37.0]
    low = dataset.load_saved_view("vog-low").values("vog")
    assert low == [2.0, 3.0, 5.0]  # None (MongoDB orders it lowest) and NaN are left out


def test_views_are_expressions_not_id_lists(dataset):
    dataset.set_values("vog", SCORES)
    fov.save_vog_views(dataset, percentile=10)
    stages = dataset._doc.saved_views
    for doc in stages:
        kinds = [json.loads(s)["_cls"].rsplit(".", 1)[-1] for s in doc.view_stages]
        assert kinds[-1] == "SortBy" and "Match" in kinds, (doc.name, kinds)
        assert not any(k in ("Select", "Exclude") for k in kinds)
    # moving a score across the threshold changes membership of the stored view
    ids, values = _by_score(dataset)
    lowest = ids[int(np.argmin(values))]
    assert dataset[lowest].has_field("vog")
    dataset.set_values("vog", {lowest: 1000.0}, key_field="id")
    high = dataset.load_saved_view("vog-high")
    assert high.first().id == lowest and len(high) == 5
    assert lowest not in dataset.load_saved_view("vog-low").values("id")


def test_marker_views(dataset):
    dataset.set_values("vog", SCORES)
    ids = dataset.values("id")
    shuffled = set(ids[::5])  # 8 samples
    dataset.set_values("label_shuffled", [i in shuffled for i in ids])
    ood = ids[1:7]
    dataset.select(ood).tag_samples("ood")
    views = fov.save_vog_views(dataset)
    assert set(views.skipped) == {"vog-label-errors"}  # no vog_loss field here (tests/test_label_error_view.py)
    sh = dataset.load_saved_view("vog-shuffled-labels")
    assert set(sh.values("id")) == shuffled
    assert sh.values("vog") == sorted((v for i, v in zip(ids, SCORES) if i in shuffled), reverse=True)
    od = dataset.load_saved_view("vog-ood")
    assert od.values("vog") == sorted(SCORES[1:7], reverse=True)
    # a flag flipped later shows in the stored view
    dataset.set_values("label_shuffled", {ids[1]: True}, key_field="id")
    assert ids[1] in dataset.load_saved_view("vog-shuffled-labels").values("id")
    # an OOD boolean field instead of the tag
    dataset.set_values("is_ood", [i in (ids[0], ids[39]) for i in ids])
    fov.save_vog_views(dataset, ood_field="is_ood")
    assert dataset.load_saved_view("vog-ood").values("vog") == sorted([SCORES[0], SCORES[39]], reverse=True)


def test_missing_markers_are_skipped_with_a_note(dataset, caplog):
    dataset.set_values("vog", SCORES)
    with caplog.at_level(logging.WARNING, logger="fiftyone_vog.audit.views"):
        views = fov.save_vog_views(dataset, shuffled_field="flipped", ood_field="novel")
    assert set(views) == {"vog-high", "vog-low", "vog-likely-ood"}  # no raw field: likely-ood by vog itself
    assert "field 'flipped' does not exist" in views.skipped["vog-shuffled-labels"]
    assert "field 'novel' does not exist" in views.skipped["vog-ood"]
    assert "vog-shuffled-labels" in caplog.text and "vog-ood" in caplog.text
    assert sorted(dataset.list_saved_views()) == ["vog-high", "vog-likely-ood", "vog-low"]
    # tag missing: skipped; a stale saved view of that name is removed
    dataset.select(dataset.values("id")[:2]).tag_samples("ood")
    fov.save_vog_views(dataset)
    assert dataset.has_saved_view("vog-ood")
    dataset.untag_samples("ood")
    views = fov.save_vog_views(dataset)
    assert "no sample is tagged 'ood'" in views.skipped["vog-ood"] and "deleted" in views.skipped["vog-ood"]
    assert not dataset.has_saved_view("vog-ood")
    # a non-boolean marker is skipped too
    dataset.set_values("label_shuffled", ["yes"] * 40)
    views = fov.save_vog_views(dataset)
    assert "not a BooleanField" in views.skipped["vog-shuffled-labels"]


def test_errors(dataset):
    with pytest.raises(fov.VoGError, match=r"no field 'vog'.*fov\.compute_vog"):
        fov.save_vog_views(dataset)
    dataset.add_sample_field("vog", fo.FloatField)
    with pytest.raises(fov.VoGError, match="no sample has a VoG score"):
        fov.save_vog_views(dataset)
    dataset.set_values("vog", SCORES)
    for bad in (0, -5, 101, "ten"):
        with pytest.raises(fov.VoGError, match="percentile"):
            fov.save_vog_views(dataset, percentile=bad)
    assert dataset.list_saved_views() == []
    fov.save_vog_views(dataset)
    with pytest.raises(fov.VoGError, match="already exists.*overwrite=True"):
        fov.save_vog_views(dataset, overwrite=False)


def test_view_input_slices_within_the_view(dataset):
    dataset.set_values("vog", SCORES)
    circles = dataset.match(F("ground_truth.label") == "circle")  # 10 samples
    views = fov.save_vog_views(circles, percentile=20)
    assert views.k == 2
    assert dataset.load_saved_view("vog-high").values("vog") == sorted(circles.values("vog"), reverse=True)[:2]
    assert set(dataset.load_saved_view("vog-high").values("ground_truth.label")) == {"circle"}


def test_percentile_thresholds_reference():
    rng = np.random.default_rng(0)
    v = rng.normal(size=37).tolist()
    for p in (1, 5, 10, 33.3, 50, 99, 100):
        hi, lo, k, n = percentile_thresholds(v + [None], p)
        assert n == 37 and k == max(1, math.ceil(p * 37 / 100))
        assert sum(x >= hi for x in v) == k and sum(x <= lo for x in v) == k


def test_views_after_compute_vog(dataset, checkpoint_dir):
    fov.compute_vog(dataset, os.path.join(checkpoint_dir, "epoch_*.pt"), model=small_model)
    views = fov.save_vog_views(dataset, percentile=10)
    ids, vog = dataset.values(["id", "vog"])
    assert views["vog-high"].values("id") == _naive(ids, vog, 4, high=True)
    assert views["vog-low"].values("id") == _naive(ids, vog, 4, high=False)


# -- name_prefix / names -------------------------------------------------------------------
def test_view_names_for_a_prefix():
    assert fov.vog_view_names("vog-test") == [
        "vog-test-high",
        "vog-test-low",
        "vog-test-shuffled-labels",
        "vog-test-ood",
        "vog-test-label-errors",
        "vog-test-likely-ood",
    ]
    assert fov.vog_view_names(None) == fov.vog_view_names() == list(fov.VOG_VIEW_NAMES)
    for bad in ("", "  ", " vog", 3):
        with pytest.raises(fov.VoGError, match="name_prefix"):
            fov.vog_view_names(bad)


def test_name_prefix_saves_its_own_set_beside_the_default(dataset):
    dataset.set_values("vog", SCORES)
    dataset.set_values("vog_b", [-s for s in SCORES])
    dataset.select(dataset.values("id")[:3]).tag_samples("ood")
    default = fov.save_vog_views(dataset, percentile=10)
    other = fov.save_vog_views(dataset, vog_field="vog_b", percentile=10, name_prefix="vog-b")
    assert set(other) == {"vog-b-high", "vog-b-low", "vog-b-ood", "vog-b-likely-ood"}
    assert other.names == {
        "high": "vog-b-high",
        "low": "vog-b-low",
        "shuffled-labels": "vog-b-shuffled-labels",
        "ood": "vog-b-ood",
        "label-errors": "vog-b-label-errors",
        "likely-ood": "vog-b-likely-ood",
    }
    assert "vog-b-shuffled-labels" in other.skipped  # no label_shuffled field
    assert sorted(dataset.list_saved_views()) == sorted([*default, *other])
    # vog_b = -vog: its high slice is vog's low slice, in the reverse order of vog-low's ascending sort
    assert dataset.load_saved_view("vog-b-high").values("id") == dataset.load_saved_view("vog-low").values("id")
    assert dataset.load_saved_view("vog-high").values("vog") == sorted(SCORES, reverse=True)[:4]  # untouched
    assert "by vog_b" in dataset.get_saved_view_info("vog-b-ood")["description"]


def test_names_rename_or_leave_out_single_views(dataset):
    dataset.set_values("vog", SCORES)
    dataset.set_values("label_shuffled", [i % 5 == 0 for i in range(40)])
    views = fov.save_vog_views(
        dataset,
        name_prefix="run2",
        names={"ood": "vog-ood", "shuffled-labels": None, "label-errors": None, "likely-ood": None},
    )
    assert views.names == {"high": "run2-high", "low": "run2-low", "ood": "vog-ood"}
    assert set(views) == {"run2-high", "run2-low"} and set(views.skipped) == {"vog-ood"}  # no sample is tagged
    assert sorted(dataset.list_saved_views()) == ["run2-high", "run2-low"]
    for bad, match in [
        ({"hig": "x"}, "unknown view kind 'hig'"),
        ({"low": ""}, "non-empty view name"),
        ({"low": "run2-high"}, "would both be named 'run2-high'"),
        (["high"], "must be a mapping"),
    ]:
        with pytest.raises(fov.VoGError, match=match):
            fov.save_vog_views(dataset, name_prefix="run2", names=bad)
    with pytest.raises(fov.VoGError, match="'run2-high' already exists"):
        fov.save_vog_views(dataset, name_prefix="run2", overwrite=False)
    fov.save_vog_views(dataset, name_prefix="run3", overwrite=False)  # other names: nothing taken


def test_a_call_without_ood_samples_keeps_another_calls_vog_ood(dataset):
    """The demo's two calls: the training split (no OOD sample) must not delete the test split's vog-ood."""
    ids = dataset.values("id")
    train, test = dataset.select(ids[:24]), dataset.select(ids[24:])
    dataset.select(ids[30:36]).tag_samples("ood")
    train.set_values("vog", SCORES[:24])
    test.set_values("vog_test", SCORES[24:])
    tv = fov.save_vog_views(test, vog_field="vog_test", name_prefix="vog-test", names={"ood": "vog-ood"})
    assert set(tv) == {"vog-test-high", "vog-test-low", "vog-ood", "vog-test-likely-ood"}
    assert set(dataset.load_saved_view("vog-ood").values("id")) == set(ids[30:36])
    for _ in range(2):  # in either order, and again
        views = fov.save_vog_views(train, vog_field="vog")
        assert "no sample in these samples is tagged 'ood'" in views.skipped["vog-ood"]
        assert "kept the saved view 'vog-ood'" in views.skipped["vog-ood"]
        assert set(dataset.load_saved_view("vog-ood").values("id")) == set(ids[30:36])
        fov.save_vog_views(test, vog_field="vog_test", name_prefix="vog-test", names={"ood": "vog-ood"})
    # the same call over the same samples, once the tag is gone, does delete its stale vog-ood
    dataset.untag_samples("ood")
    views = fov.save_vog_views(test, vog_field="vog_test", name_prefix="vog-test", names={"ood": "vog-ood"})
    assert "deleted the earlier saved view 'vog-ood'" in views.skipped["vog-ood"]
    assert not dataset.has_saved_view("vog-ood") and dataset.has_saved_view("vog-test-high")


def test_views_of_a_view_are_its_stages_then_the_filter(dataset):
    dataset.set_values("vog", SCORES)
    circles = dataset.match(F("ground_truth.label") == "circle")
    views = fov.save_vog_views(circles, percentile=20, name_prefix="circles")
    base = circles._serialize(include_uuids=False)
    for name in views:
        stages = dataset.load_saved_view(name)._serialize(include_uuids=False)
        assert stages[: len(base)] == base and len(stages) == len(base) + 2, name
        assert stages[-2]["_cls"].endswith(".Match") and stages[-1]["_cls"].endswith(".SortBy")
    # a square whose score jumps above the threshold stays out: the view's own stages come first
    square = dataset.match(F("ground_truth.label") == "square").first().id
    dataset.set_values("vog", {square: 1e6}, key_field="id")
    assert square not in dataset.load_saved_view("circles-high").values("id")
