"""Managing VoG runs from the App, through FiftyOne's executor: the run's info, rename (its fields
follow; a taken name is refused in the form's words), delete (the form lists exactly what goes and
runs only once its confirmation is ticked)."""

import fiftyone.operators as foo
import pytest
from fiftyone import ViewField as F
from fiftyone.operators.executor import ExecutionContext, ExecutionError, Executor

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin

from conftest import resolve_form

PLUGIN = "@fiftyone-vog/vog"
INFO, RENAME, DELETE = (f"{PLUGIN}/{n}" for n in ("get_vog_run_info", "rename_vog_run", "delete_vog_run"))


@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


@pytest.fixture
def two_runs(scored_run, checkpoint_dir):
    """``vog`` (with its saved views) and a later ``vog_api``."""
    from conftest import small_model

    ds, _ = scored_run
    fov.compute_vog(ds, checkpoint_dir, model=small_model, vog_field="vog_api", companions=False, progress=False)
    fov.save_vog_views(ds)
    return ds


def _execute(uri, ds, params):
    return foo.execute_operator(uri, ctx={"dataset": ds, "params": params})


def _as_the_app(uri, ds, params):
    """Execute past the form, as the App sends it (the state may have changed since it validated):
    the messages the App shows."""
    op = foo.get_operator(uri)
    ctx = ExecutionContext(
        request_params={"dataset_name": ds.name, "params": dict(params), "operator_uri": uri},
        executor=Executor(),
        operator_uri=uri,
        required_secrets=op._plugin_secrets,
    )
    op.execute(ctx)
    return [r.params["message"] for r in ctx.executor._requests if r.operator_uri == "notify"]


def test_the_operators_are_registered_under_the_options_tables_names():
    from fiftyone_vog import options

    for name in options.RUN_OPERATORS:
        assert foo.get_operator(f"{PLUGIN}/{name}").config.name == name


def test_info_shows_the_config_timings_and_what_the_run_owns(two_runs):
    props, val = resolve_form(INFO, two_runs, {})
    assert props["key"].default == "vog"  # the default run first, though vog_api is newer
    assert not val.invalid
    assert props["config_num_threads"].default == str(fov.get_vog_run(two_runs, "vog").config.num_threads)
    assert props["config_label_mode"].default == "true"
    assert len(props["config_checkpoints"].default.split(", ")) == 5
    assert props["owns_fields"].default.startswith("vog, vog_raw")
    assert props["owns_views"].default.startswith("vog-high, vog-label-errors")
    assert {"timings_total", "timings_load", "run_created"} <= set(props)
    result = _execute(INFO, two_runs, {"key": "vog_api"})
    assert result.error is None and result.result["fields"] == ["vog_api", "vog_api_raw"]
    assert result.result["config"]["vog_field"] == "vog_api" and result.result["views"] == []


def test_rename_from_the_app_moves_the_fields_and_refuses_a_taken_name(two_runs):
    ds = two_runs
    props, val = resolve_form(RENAME, ds, {"key": "vog", "new_key": "vog_api"}, as_app=True)
    assert props["new_key"].invalid and val.invalid
    assert props["new_key"].error_message.startswith("'New name' set to vog_api")  # the form's words
    assert "new_key=" not in props["new_key"].error_message
    with pytest.raises(ExecutionError, match="vog_api"):
        _execute(RENAME, ds, {"key": "vog", "new_key": "vog_api"})
    assert fov.list_vog_runs(ds) == ["vog", "vog_api"]

    props, val = resolve_form(RENAME, ds, {"key": "vog", "new_key": "vog2"})
    assert not val.invalid and "vog_raw → vog2_raw" in props["renamed"].view.label
    values = ds.values("vog")
    result = _execute(RENAME, ds, {"key": "vog", "new_key": "vog2"})
    assert result.error is None and {"field": "vog", "renamed_to": "vog2"} in result.result["renamed"]
    assert sorted(fov.list_vog_runs(ds)) == ["vog2", "vog_api"] and ds.values("vog2") == values
    assert "vog" not in ds.get_field_schema()
    assert len(ds.load_saved_view("vog-high")) > 0  # its views follow


def test_delete_lists_what_goes_and_needs_the_confirmation(two_runs):
    ds = two_runs
    ds.delete_saved_view("vog-low")
    ds.save_view("vog-low", ds.sort_by("vog"))  # a user's view of a name we use
    ds.save_view("mine", ds.match(F("vog") > 0).sort_by("vog"))
    props, val = resolve_form(DELETE, ds, {})
    assert props["key"].default is None and val.invalid  # no run chosen for the user

    props, val = resolve_form(DELETE, ds, {"key": "vog"})
    listed = props["deleted"].view.description
    assert listed == "  \n".join(fov.delete_vog_run(ds, "vog", dry_run=True).lines())
    assert "vog-high" in listed and "vog-low" not in listed and "mine" not in listed
    assert "vog_raw" in listed and "indexes: vog" in listed
    assert val.invalid  # Execute stays disabled until the confirmation is ticked
    with pytest.raises(ExecutionError, match="confirm=True"):
        _execute(DELETE, ds, {"key": "vog"})
    # past the form (the App's request without the box ticked): refused, in the form's words
    assert _as_the_app(DELETE, ds, {"key": "vog"}) == ["not deleted: tick 'Delete what is listed' to confirm"]
    assert "vog" in fov.list_vog_runs(ds) and "vog" in ds.get_field_schema()

    props, val = resolve_form(DELETE, ds, {"key": "vog", "confirm": True})
    assert not val.invalid
    result = _execute(DELETE, ds, {"key": "vog", "confirm": True})
    assert result.error is None and result.result["deleted"][0].startswith("fields: vog, vog_raw")
    assert fov.list_vog_runs(ds) == ["vog_api"] and "vog" not in ds.get_field_schema()
    assert sorted(ds.list_saved_views()) == ["mine", "vog-low"]  # the user's views stay


def test_delete_keeping_the_fields_lists_nothing_but_the_record(two_runs):
    props, _ = resolve_form(DELETE, two_runs, {"key": "vog_api", "delete_fields": False})
    assert props["deleted"].view.description.startswith("fields: (none)")
    _execute(DELETE, two_runs, {"key": "vog_api", "delete_fields": False, "confirm": True})
    assert "vog_api" in two_runs.get_field_schema() and fov.list_vog_runs(two_runs) == ["vog"]
