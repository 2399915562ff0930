"""``overwrite=True`` replaces only what a VoG run wrote: a user's float field, or a run of another
kind under the same key, is refused — and stays exactly as it was."""

import pytest

import fiftyone_vog as fov

from conftest import small_model


def test_overwrite_refuses_a_users_float_field(dataset, checkpoint_dir):
    import fiftyone as fo

    dataset.add_sample_field("vog_raw", fo.FloatField)
    dataset.set_values("vog_raw", [float(i) for i in range(len(dataset))])
    with pytest.raises(fov.VoGError, match=r"field 'vog_raw' exists and no VoG run wrote it"):
        fov.compute_vog(dataset, checkpoint_dir, model=small_model, overwrite=True)
    assert dataset.values("vog_raw") == [float(i) for i in range(len(dataset))]
    assert "vog" not in dataset.get_field_schema() and not dataset.has_run("vog")


def test_without_overwrite_the_message_does_not_suggest_overwriting_a_users_field(dataset, checkpoint_dir):
    import fiftyone as fo

    dataset.add_sample_field("vog_loss", fo.FloatField)
    with pytest.raises(fov.VoGError, match=r"'vog_loss' exists and no VoG run wrote it") as e:
        fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    assert "overwrite=True" not in str(e.value)


def test_a_new_window_field_that_the_user_owns_is_refused_on_rerun(scored_run, checkpoint_dir):
    import fiftyone as fo

    ds, _ = scored_run
    ds.add_sample_field("vog_late", fo.FloatField)
    ds.set_values("vog_late", [1.5] * len(ds))
    with pytest.raises(fov.VoGError, match=r"'vog_late' exists and no VoG run wrote it"):
        fov.compute_vog(ds, checkpoint_dir, model=small_model, overwrite=True, windows={"late": "3:5"})
    assert ds.values("vog_late") == [1.5] * len(ds)
    fov.compute_vog(ds, checkpoint_dir, model=small_model, overwrite=True)  # its own fields: replaced


def test_overwrite_refuses_a_run_of_another_kind_under_the_key(dataset, checkpoint_dir):
    import fiftyone.core.runs as fors

    config = fors.RunConfig(method="someone.else")
    dataset.register_run("vog", config)
    with pytest.raises(fov.VoGError, match=r"has a run 'vog' that is not a VoG run"):
        fov.compute_vog(dataset, checkpoint_dir, model=small_model, overwrite=True)
    assert dataset.get_run_info("vog").config.method == "someone.else"
