"""The saved view vog-label-errors: the run's recorded loss companion, the even-odds rule (mean
loss above ln 2) by default, the top percentile on request, highest loss first."""

import math

import fiftyone as fo
import numpy as np
import pytest

import fiftyone_vog as fov

from conftest import small_model

RNG = np.random.default_rng(3)
LOSS = [float(v) for v in RNG.permutation(40) * 0.25]  # distinct values, 0 … 9.75
VOG = [float(v) for v in RNG.normal(size=40)]


def _top(ids, values, keep):
    """The ids of the samples ``keep`` selects, highest value first (values distinct)."""
    order = np.argsort(-np.asarray(values, dtype=float), kind="stable")
    return [ids[i] for i in order if keep[i]]


def test_percentile_rule_contents_and_order(dataset):
    dataset.set_values("vog", VOG)
    dataset.set_values("vog_loss", LOSS)
    views = fov.save_vog_views(dataset, percentile=20, label_error_rule="percentile")
    assert "vog-label-errors" in views and "vog-label-errors" in fov.vog_view_names()
    ids = dataset.values("id")
    expected = [ids[i] for i in np.argsort(-np.array(LOSS))[:8]]  # ceil(20% × 40) = 8, highest loss first
    assert dataset.load_saved_view("vog-label-errors").values("id") == expected
    assert views.thresholds["label-errors"] == sorted(LOSS)[-8]
    description = dataset.get_saved_view_info("vog-label-errors")["description"]
    assert "likely label errors" in description and "top 20% by vog_loss" in description
    # an expression, not a list of ids: a sample whose loss rises enters the view
    low = ids[int(np.argmin(LOSS))]
    dataset.set_values("vog_loss", {low: 1e6}, key_field="id")
    assert dataset.load_saved_view("vog-label-errors").first().id == low


def test_even_odds_rule_is_the_default_and_sized_by_the_data(dataset):
    """Mean loss strictly above ln 2 (the used label's geometric-mean probability below 1/2)."""
    ln2 = math.log(2)
    loss = [ln2 * (0.5 + 0.05 * i) for i in range(40)]  # 30 above ln 2 …
    loss[3] = ln2  # … one exactly at it (not above: left out)
    loss[4] = math.nextafter(ln2, 1.0)  # and the next float (above: in)
    dataset.set_values("vog", VOG)
    dataset.set_values("vog_loss", loss)
    views = fov.save_vog_views(dataset, percentile=10)
    ids = dataset.values("id")
    expected = _top(ids, loss, [v > ln2 for v in loss])
    got = dataset.load_saved_view("vog-label-errors").values("id")
    assert got == expected and len(got) == 30  # not the 10% (4) of the percentile rule
    assert ids[3] not in got and ids[4] in got
    assert views.thresholds["label-errors"] == math.nextafter(ln2, 1.0)
    assert views.sorted_by["vog-label-errors"] == "vog_loss"
    description = dataset.get_saved_view_info("vog-label-errors")["description"]
    assert "mean loss of the used label > ln 2" in description and "even-odds" in description
    with pytest.raises(fov.VoGError, match="label_error_rule must be one of even-odds, percentile"):
        fov.save_vog_views(dataset, label_error_rule="half")


def test_another_field_gets_the_percentile_rule_and_a_missing_loss_is_skipped(dataset):
    dataset.set_values("vog", VOG)
    views = fov.save_vog_views(dataset)
    assert "vog-label-errors" not in views and "wrote no 'vog_loss'" in views.skipped["vog-label-errors"]
    dataset.set_values("my_loss", LOSS)
    views = fov.save_vog_views(dataset, label_error_field="my_loss", percentile=10)
    ids = dataset.values("id")
    assert dataset.load_saved_view("vog-label-errors").values("id") == [ids[i] for i in np.argsort(-np.array(LOSS))[:4]]
    assert views.sorted_by["vog-label-errors"] == "my_loss"
    # ln 2 is a threshold on the run's cross-entropy, not on a score of yours
    with pytest.raises(fov.VoGError, match="label_error_rule='percentile'"):
        fov.save_vog_views(dataset, label_error_field="my_loss", label_error_rule="even-odds")
    dataset.set_values("my_text", [str(v) for v in LOSS])
    with pytest.raises(fov.VoGError, match="label_error_field='my_text' is a StringField"):
        fov.save_vog_views(dataset, label_error_field="my_text")
    # a call ranking by another field that is absent leaves this call's view alone
    views = fov.save_vog_views(dataset)
    assert "kept the saved view" in views.skipped["vog-label-errors"]
    assert dataset.has_saved_view("vog-label-errors")


def test_label_errors_view_after_compute(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    views = fov.save_vog_views(dataset, percentile=10)
    loss = np.array(dataset.values("vog_loss"))
    ids = dataset.values("id")
    assert views["vog-label-errors"].values("id") == _top(ids, loss, loss > math.log(2))
    views = fov.save_vog_views(dataset, percentile=10, label_error_rule="percentile")
    assert views["vog-label-errors"].values("id") == [ids[i] for i in np.argsort(-loss)[:4]]


@pytest.mark.parametrize("ftype", [fo.FloatField, fo.StringField])
def test_a_run_without_companions_gets_no_label_errors_view(dataset, checkpoint_dir, ftype):
    """The view uses the field the run recorded: a user's own ``vog_loss`` (a number or text)
    beside a run with ``companions=False`` is not the run's loss — skipped with the reason."""
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, companions=False)
    dataset.add_sample_field("vog_loss", ftype)
    dataset.set_values("vog_loss", [float(i) if ftype is fo.FloatField else str(i) for i in range(len(dataset))])
    before = dataset.values("vog_loss")
    views = fov.save_vog_views(dataset)
    assert "vog-label-errors" not in views and not dataset.has_saved_view("vog-label-errors")
    reason = views.skipped["vog-label-errors"]
    if ftype is fo.FloatField:
        assert "'vog_loss' was not written by the run 'vog'" in reason
    else:
        assert "'vog_loss' is a StringField, not a score of the run 'vog'" in reason
    assert "companions=True" in reason
    assert "vog_loss" not in views.sorted_by.values()
    assert dataset.values("vog_loss") == before  # the user's field is untouched
