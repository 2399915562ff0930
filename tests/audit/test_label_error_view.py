"""The saved view vog-label-errors: the top percentile by the mean-loss companion, highest first."""

import numpy as np

import fiftyone_vog as fov

RNG = np.random.default_rng(3)
LOSS = [float(v) for v in RNG.permutation(40) * 0.25]  # distinct values
VOG = [float(v) for v in RNG.normal(size=40)]


def test_label_errors_view_contents_and_order(dataset):
    dataset.set_values("vog", VOG)
    dataset.set_values("vog_loss", LOSS)
    views = fov.save_vog_views(dataset, percentile=20)
    assert "vog-label-errors" in views and "vog-label-errors" in fov.vog_view_names()
    ids = dataset.values("id")
    expected = [ids[i] for i in np.argsort(-np.array(LOSS))[:8]]  # ceil(20% × 40) = 8, highest loss first
    assert dataset.load_saved_view("vog-label-errors").values("id") == expected
    assert views.thresholds["label-errors"] == sorted(LOSS)[-8]
    assert "likely label errors" in dataset.get_saved_view_info("vog-label-errors")["description"]
    # an expression, not a list of ids: a sample whose loss rises enters the view
    low = ids[int(np.argmin(LOSS))]
    dataset.set_values("vog_loss", {low: 1e6}, key_field="id")
    assert dataset.load_saved_view("vog-label-errors").first().id == low


def test_label_errors_view_from_another_field_and_skipped_without_loss(dataset):
    dataset.set_values("vog", VOG)
    views = fov.save_vog_views(dataset)
    assert "vog-label-errors" not in views and "vog_loss" in views.skipped["vog-label-errors"]
    dataset.set_values("my_loss", LOSS)
    views = fov.save_vog_views(dataset, label_error_field="my_loss", percentile=10)
    ids = dataset.values("id")
    assert dataset.load_saved_view("vog-label-errors").values("id") == [ids[i] for i in np.argsort(-np.array(LOSS))[:4]]
    # a call ranking by another field that is absent leaves this call's view alone
    views = fov.save_vog_views(dataset)
    assert "kept the saved view" in views.skipped["vog-label-errors"]
    assert dataset.has_saved_view("vog-label-errors")


def test_label_errors_view_after_compute(dataset, checkpoint_dir):
    from conftest import small_model

    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    views = fov.save_vog_views(dataset, percentile=10)
    loss = np.array(dataset.values("vog_loss"))
    ids = dataset.values("id")
    assert views["vog-label-errors"].values("id") == [ids[i] for i in np.argsort(-loss)[:4]]
