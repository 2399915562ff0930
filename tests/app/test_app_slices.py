"""The App's sort-and-slice path: score fields are indexed (the grid's Sort by in query
performance mode lists indexed fields only), Save VoG views opens the new view in place and sorts
each marker view by the field that scores it, and reports a table."""

import os

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest
from fiftyone.operators.executor import ExecutionContext

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin

from conftest import small_model

PLUGIN = "@fiftyone-vog/vog"


@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


def _requests(result, name):
    return [r for r in result.executor._requests if r.operator_uri == name]


def test_sorted_fields_are_indexed_and_the_index_goes_with_the_run(dataset, checkpoint_dir, monkeypatch):
    """The score, its raw score and its companions (what the grid and the saved views sort by); a
    window's fields on request (tests/core/test_index_budget.py)."""
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")
    before = set(dataset.list_indexes())
    foo.execute_operator(
        f"{PLUGIN}/compute_vog",
        ctx={
            "dataset": dataset,
            "params": {
                "checkpoints": os.path.join(checkpoint_dir, "epoch_*.pt"),
                "model": "conftest:small_model",
                "windows": "early=0:2,late=-2:",
            },
        },
    )
    fields = ["vog", "vog_raw", "vog_loss", "vog_margin", "vog_maxprob", "vog_energy"]
    assert set(fields) <= set(dataset.list_indexes())
    assert not {"vog_early", "vog_early_raw", "vog_late", "vog_late_raw"} & set(dataset.list_indexes())
    # the index serves the sort the grid asks for
    plan = dataset._sample_collection.find({}).sort("vog", -1).explain()
    assert "IXSCAN" in str(plan["queryPlanner"]["winningPlan"])
    fov.delete_vog_run(dataset, "vog")
    assert set(dataset.list_indexes()) == before


def test_kept_fields_keep_their_index(dataset, checkpoint_dir):
    fov.compute_vog(dataset, os.path.join(checkpoint_dir, "epoch_*.pt"), model=small_model, progress=False)
    fov.delete_vog_run(dataset, "vog", delete_fields=False)
    assert {"vog", "vog_raw"} <= set(dataset.list_indexes())


@pytest.fixture
def two_splits(dataset, checkpoint_dir):
    """The demo's shape: the OOD samples (tag ``ood``) are scored in ``vog_test`` only, the others
    in ``vog``."""
    ckpts = os.path.join(checkpoint_dir, "epoch_*.pt")
    ood_ids = dataset.values("id")[-6:]
    dataset.select(ood_ids).tag_samples("ood")
    fov.compute_vog(dataset.match_tags("ood", bool=False), ckpts, model=small_model, progress=False)
    fov.compute_vog(
        dataset.match_tags("ood"),
        ckpts,
        model=small_model,
        vog_field="vog_test",
        label_mode="predicted",
        progress=False,
    )
    return dataset


def test_ood_view_is_sorted_by_the_field_that_scores_it(two_splits):
    ds = two_splits
    result = foo.execute_operator(
        f"{PLUGIN}/save_vog_views", ctx={"dataset": ds, "params": {"vog_field": "vog", "load_view": "vog-ood"}}
    )
    rows = {r["view"]: r for r in result.result["views"]}
    # by the raw score of the run that scores the OOD samples (class z-scores hide them)
    assert rows["vog-ood"] == {"view": "vog-ood", "samples": 6, "sorted_by": "vog_test_raw"}
    assert rows["vog-high"]["sorted_by"] == "vog" and rows["vog-low"]["sorted_by"] == "vog"
    assert {r["view"] for r in result.result["skipped"]} == {"vog-shuffled-labels"}
    assert result.result["skipped"][0]["reason"].startswith("field 'label_shuffled' does not exist")
    ood = ds.load_saved_view("vog-ood")
    vals = ood.values("vog_test_raw")
    assert vals == sorted(vals, reverse=True) and None not in vals
    assert "by vog_test_raw, highest raw VoG first" in ds.get_saved_view_info("vog-ood")["description"]


def test_marker_view_without_any_score_is_skipped(dataset, checkpoint_dir):
    ckpts = os.path.join(checkpoint_dir, "epoch_*.pt")
    ood_ids = dataset.values("id")[-4:]
    dataset.select(ood_ids).tag_samples("ood")
    fov.compute_vog(dataset.match_tags("ood", bool=False), ckpts, model=small_model, progress=False)
    views = fov.save_vog_views(dataset)
    assert "vog-ood" not in views
    assert "none of the 4 samples with samples tagged 'ood' has a VoG score" in views.skipped["vog-ood"]


def test_open_afterwards_reloads_then_sets_the_view_by_its_stages(two_splits):
    """The App checks ``set_view(name=...)`` against its own list of saved views, fetched before the
    operator saved them: the dataset is reloaded (the selector then lists the new views) and the
    view is sent as stages, which need no lookup."""
    ds = two_splits
    result = foo.execute_operator(
        f"{PLUGIN}/save_vog_views",
        ctx={"dataset": ds, "params": {"vog_field": "vog", "name_prefix": "vog-ui", "load_view": "vog-ui-high"}},
    )
    uris = [r.operator_uri for r in result.executor._requests]
    assert uris.index("reload_dataset") < uris.index("set_view")
    (req,) = _requests(result, "set_view")
    assert "name" not in req.params
    view = fo.DatasetView._build(ds, req.params["view"])
    assert view.values("id") == ds.load_saved_view("vog-ui-high").values("id")
    assert len(view) == 4


def test_save_views_result_is_a_table(two_splits):
    ds = two_splits
    result = foo.execute_operator(f"{PLUGIN}/save_vog_views", ctx={"dataset": ds, "params": {"vog_field": "vog"}})
    op = foo.get_operator(f"{PLUGIN}/save_vog_views")
    ctx = ExecutionContext(
        request_params={"dataset_name": ds.name, "params": {}, "results": result.result}, operator_uri=op.uri
    )
    props = op.resolve_output(ctx).type.properties
    table = props["views"].view.to_json()
    assert table["name"] == "TableView"
    assert [c["key"] for c in table["columns"]] == ["view", "samples", "sorted_by"]
    assert props["skipped"].view.to_json()["name"] == "TableView"
    assert np.all([isinstance(r["samples"], int) for r in result.result["views"]])


# -- item 5: torch threads -----------------------------------------------------------------------
def test_auto_num_threads_leaves_busy_cores_alone():
    from fiftyone_vog.core.compute import auto_num_threads

    assert auto_num_threads(cores=2, load=9.8, current=2) == 1  # a loaded 2-core machine
    assert auto_num_threads(cores=2, load=0.3, current=2) == 1  # one core for the App server, decoding
    assert auto_num_threads(cores=16, load=0.2, current=16) == 15
    assert auto_num_threads(cores=16, load=0.0, current=8) == 8  # never above torch's own default


def test_thread_count_is_recorded_and_restored(dataset, checkpoint_dir, monkeypatch):
    import torch

    from fiftyone_vog.core import compute

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    seen = []
    real = compute.distributed.score_samples
    monkeypatch.setattr(
        compute.distributed, "score_samples", lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k)
    )
    ckpts = os.path.join(checkpoint_dir, "epoch_*.pt")
    res = fov.compute_vog(dataset, ckpts, model=small_model, device="cpu", num_threads=1, progress=False)
    assert seen == [1] and res.config["num_threads"] == 1
    assert fov.get_vog_run(dataset, "vog").config.num_threads == 1
    assert torch.get_num_threads() == before
    monkeypatch.setattr(compute, "auto_num_threads", lambda: 1)
    res = fov.compute_vog(dataset, ckpts, model=small_model, device="cpu", vog_field="auto", progress=False)
    assert res.config["num_threads"] == 1 == seen[-1]
    monkeypatch.setenv("OMP_NUM_THREADS", str(before))  # the user's choice is kept
    res = fov.compute_vog(dataset, ckpts, model=small_model, device="cpu", vog_field="env", progress=False)
    assert res.config["num_threads"] == before
    with pytest.raises(fov.VoGError, match="num_threads must be"):
        fov.compute_vog(dataset, ckpts, model=small_model, num_threads=0, vog_field="bad", progress=False)


# -- item 6: scheduling from the App needs FiftyOne's legacy orchestrator switch --------------------
DATASET_NAME = "vog-app-slices-delegated"


def test_schedule_needs_the_legacy_orchestrator_switch(dataset, monkeypatch):
    """What the App reads to offer "Schedule": with orchestrator registration on (FiftyOne 1.22's
    default) and no orchestrator registered it says NOT AVAILABLE; the switch turns it off."""
    op = foo.get_operator(f"{PLUGIN}/compute_vog")
    ctx = ExecutionContext(request_params={"dataset_name": dataset.name, "params": {}}, operator_uri=op.uri)
    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", False)
    opts = op.resolve_execution_options(ctx).to_dict()
    assert opts["allow_delegated_execution"] and opts["orchestrator_registration_enabled"]
    assert opts["available_orchestrators"] == []
    monkeypatch.setattr(fo.config, "allow_legacy_orchestrators", True)  # FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true
    assert not op.resolve_execution_options(ctx).to_dict()["orchestrator_registration_enabled"]


@pytest.mark.slow
def test_scheduled_run_is_listed_and_run_by_fiftyone_delegated_launch(named_dataset, checkpoint_dir, monkeypatch):
    import signal
    import subprocess
    import sys
    import time

    from fiftyone.operators.delegated import DelegatedOperationService

    ds = named_dataset
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")
    uri = f"{PLUGIN}/compute_vog"
    result = foo.execute_operator(
        uri,
        ctx={
            "dataset": ds,
            "request_delegation": True,
            "params": {"checkpoints": checkpoint_dir, "model": "conftest:small_model", "vog_field": "scheduled"},
        },
    )
    assert result.delegated
    env = dict(
        os.environ,
        FIFTYONE_VOG_ALLOW_IMPORTS="1",
        PYTHONPATH=os.pathsep.join(
            [os.path.dirname(__file__), os.path.dirname(os.path.dirname(__file__)), os.environ.get("PYTHONPATH", "")]
        ),
    )
    cli = os.path.join(os.path.dirname(sys.executable), "fiftyone")
    listed = subprocess.run(
        [cli, "delegated", "list", "--dataset", ds.name], env=env, capture_output=True, text=True, timeout=300
    )
    assert uri in listed.stdout and "queued" in listed.stdout.lower(), listed.stdout + listed.stderr
    svc = DelegatedOperationService()
    (op,) = svc.list_operations(dataset_name=ds.name)
    proc = subprocess.Popen(
        [cli, "delegated", "launch"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and svc.get(op.id).run_state not in ("completed", "failed"):
            time.sleep(1)
    finally:
        proc.send_signal(signal.SIGINT)  # the service's own way out (KeyboardInterrupt)
        try:
            out = proc.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
    doc = svc.get(op.id)
    assert doc.run_state == "completed", (doc.run_state, doc.run_error, out[-2000:])
    ds.reload()
    assert ds.count("scheduled") == len(ds)
