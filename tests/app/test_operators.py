"""Every operator run through FiftyOne's own executor on real datasets: immediate, delegated,
from Python, and with the form's inline errors."""

import csv
import glob
import os
import re

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest
from fiftyone.operators.delegated import DelegatedOperationService
from fiftyone.operators.executor import ExecutionError

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin
from fiftyone_vog.app.operators import parse_windows

from conftest import CLASSES, build_dataset, resolve_form

PLUGIN = "@fiftyone-vog/vog"
COMPUTE = f"{PLUGIN}/compute_vog"
MODEL = "conftest:small_model"  # from the App a model is a spec string


@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


@pytest.fixture
def allow_imports(monkeypatch):
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")


@pytest.fixture(scope="module")
def operator_scored(image_dir, checkpoint_dir):
    """A dataset scored once through the operator (module-scoped: several tests read it)."""
    os.environ["FIFTYONE_VOG_ALLOW_IMPORTS"] = "1"
    try:
        ds = build_dataset(*image_dir)
        foo.execute_operator(
            COMPUTE,
            ctx={
                "dataset": ds,
                "params": {"checkpoints": os.path.join(checkpoint_dir, "epoch_*.pt"), "model": MODEL, "batch_size": 16},
            },
        )
    finally:
        del os.environ["FIFTYONE_VOG_ALLOW_IMPORTS"]
    yield ds
    ds.delete()


def _requests(result, name):
    return [r for r in result.executor._requests if r.operator_uri == name]


# -- compute_vog ---------------------------------------------------------------------
def test_compute_vog_operator_equals_the_api(operator_scored, checkpoint_dir, allow_imports):
    """The operator passes every parameter through: same numbers as the direct call."""
    from conftest import small_model

    windows = {"early": "0:2", "late": "-2:"}
    foo.execute_operator(
        COMPUTE,
        ctx={
            "dataset": operator_scored,
            "params": {
                "checkpoints": os.path.join(checkpoint_dir, "epoch_*.pt"),
                "model": MODEL,
                "vog_field": "op",
                "statistic": "std",
                "normalization": "abs",
                "channel_reduction": "mean",
                "target": "logit",
                "windows": "early=0:2,late=-2:",
                "batch_size": 7,
            },
        },
    )
    fov.compute_vog(
        operator_scored,
        os.path.join(checkpoint_dir, "epoch_*.pt"),
        model=small_model,
        vog_field="ref",
        statistic="std",
        normalization="abs",
        channel_reduction="mean",
        target="logit",  # not the default
        windows=windows,
        batch_size=7,
        progress=False,
    )
    for suffix in ("", "_raw", "_early", "_early_raw", "_late", "_late_raw", "_loss", "_late_margin", "_energy"):
        got = np.array(operator_scored.values("op" + suffix))
        want = np.array(operator_scored.values("ref" + suffix))
        assert got.shape == (40,) and np.isfinite(got).all()
        np.testing.assert_array_equal(got, want)
    cfg = fov.get_vog_run(operator_scored, "op").config
    assert (cfg.statistic, cfg.normalization, cfg.channel_reduction, cfg.target) == ("std", "abs", "mean", "logit")
    assert cfg.windows == {"early": [0, 1], "late": [3, 4]} and cfg.batch_size == 7
    assert len(cfg.checkpoints) == 5


def test_compute_vog_reports_progress_and_reloads(dataset, checkpoint_dir, allow_imports, monkeypatch):
    import importlib

    operators = importlib.import_module(type(foo.get_operator(COMPUTE)).__module__)  # the plugin's copy
    monkeypatch.setattr(operators, "PROGRESS_EVERY_S", 0.0)  # every update (3 s apart in the App)
    result = foo.execute_operator(
        COMPUTE,
        ctx={
            "dataset": dataset,
            "params": {"checkpoints": os.path.join(checkpoint_dir, "epoch_*.pt"), "model": MODEL, "batch_size": 8},
        },
    )
    # progress as info notifications: FiftyOne's set_progress dialog has a Done button while the run goes on
    assert not _requests(result, "set_progress")
    progress = [r.params["message"] for r in _requests(result, "notify") if r.params["variant"] == "info"]
    assert progress, "no progress was sent to the App"
    assert all(re.fullmatch(r"Compute VoG: scored \d+ of 40 samples \(\d+%\)", m) for m in progress), progress
    done = [int(m.split()[3]) for m in progress]
    assert done == sorted(done) and done[-1] < 40  # the last word is the success message's
    assert _requests(result, "reload_dataset")
    notes = [r for r in _requests(result, "notify") if r.params["variant"] == "success"]
    assert notes and notes[0].params["message"].startswith("VoG: scored 40 samples")
    assert dataset.count("vog") == 40 and dataset.count("vog_raw") == 40
    # new fields: the App shows the VoG sidebar group only after a page reload, so the message says so
    # (a data-loading hint, which depends on timing, may follow as ". Note: ...")
    assert (
        notes[0]
        .params["message"]
        .split(". Note: ")[0]
        .endswith("(reload the page to see them in the sidebar's VoG group)")
    )
    result = foo.execute_operator(
        COMPUTE,
        ctx={
            "dataset": dataset,
            "params": {"checkpoints": os.path.join(checkpoint_dir, "epoch_*.pt"), "model": MODEL, "overwrite": True},
        },
    )
    assert "reload the page" not in _requests(result, "notify")[-1].params["message"]  # same fields: already placed


def test_compute_vog_on_selected_samples_only(dataset, checkpoint_dir, allow_imports):
    ids = dataset.values("id")[:6]
    foo.execute_operator(
        COMPUTE,
        ctx={
            "dataset": dataset,
            "selected": ids,
            "params": {
                "checkpoints": os.path.join(checkpoint_dir, "epoch_*.pt"),
                "model": MODEL,
                "view_target": "SELECTED_SAMPLES",
                "label_mode": "predicted",
            },
        },
    )
    assert sorted(dataset.exists("vog_raw").values("id")) == sorted(ids)
    assert fov.get_vog_run(dataset, "vog").config.num_samples == 6


def test_compute_vog_on_the_current_view_from_python(dataset, checkpoint_dir, allow_imports):
    """``get_operator(uri)(view, ...)`` reads like the API call; a view is the target."""
    view = dataset.skip(30)
    paths = sorted(glob.glob(os.path.join(checkpoint_dir, "epoch_*.pt")))[:3]
    op = foo.get_operator(COMPUTE)
    op(view, checkpoints=paths, model=MODEL, vog_field="tail", classes=CLASSES)
    assert sorted(dataset.exists("tail").values("id")) == sorted(view.values("id"))
    assert fov.get_vog_run(dataset, "tail").config.checkpoints == [os.path.abspath(p) for p in paths]


def test_delegated_compute_is_queued_then_executed(dataset, checkpoint_dir, allow_imports):
    svc = DelegatedOperationService()
    result = foo.execute_operator(
        COMPUTE,
        ctx={
            "dataset": dataset,
            "request_delegation": True,
            "params": {"checkpoints": checkpoint_dir, "model": MODEL, "vog_field": "later"},
        },
    )
    assert result.delegated
    assert "later" not in dataset.get_field_schema()  # queued, not run
    queued = svc.get_queued_operations(operator=COMPUTE, dataset_name=dataset.name)
    assert len(queued) == 1
    done = svc.execute_queued_operations(operator=COMPUTE, dataset_name=dataset.name)
    assert len(done) == 1 and done[0].error is None, done[0].error
    doc = svc.get(queued[0].id)
    assert doc.run_state == "completed"
    assert doc.status is not None and doc.status.progress == 1.0  # progress recorded on the operation
    dataset.reload()
    assert dataset.count("later") == 40


# -- compute_vog: the form's inline errors ----------------------------------------------
def test_glob_matching_nothing_is_an_inline_error(dataset, tmp_path):
    props, val = resolve_form(COMPUTE, dataset, {"checkpoints": str(tmp_path / "nothing_*.pt")})
    assert props["checkpoints"].invalid
    assert "no checkpoint file matches" in props["checkpoints"].error_message
    assert val.invalid and val.errors[0].path == ".checkpoints"


def test_relative_paths_say_where_the_server_looked(dataset):
    props, _ = resolve_form(COMPUTE, dataset, {"checkpoints": "runs/missing.pt,runs/other.pt"})
    msg = props["checkpoints"].error_message
    assert "checkpoint file not found: runs/missing.pt" in msg and os.getcwd() in msg


def test_found_checkpoints_are_reported(dataset, checkpoint_dir):
    props, val = resolve_form(COMPUTE, dataset, {"checkpoints": checkpoint_dir, "model": "resnet18"})
    assert not props["checkpoints"].invalid
    # CheckpointSaver keeps the folder's manifest: the form says the order is the recorded one
    assert (
        props["checkpoints_found"].view.label
        == "5 checkpoints (recorded in vog_checkpoints.json): epoch_1.pt … epoch_5.pt"
    )
    assert val.invalid and "does not fit the architecture" in props["model"].error_message  # SmallCNN weights


@pytest.mark.parametrize(
    "name, why",
    [
        ("1vog", "not a valid field name"),
        ("my vog", "not a valid field name"),
        ("_vog", "not a valid field name"),
        ("class", "is a Python keyword"),
        ("filepath", "reserved by FiftyOne"),
    ],
)
def test_bad_output_field_is_an_inline_error(dataset, checkpoint_dir, name, why):
    props, val = resolve_form(COMPUTE, dataset, {"checkpoints": checkpoint_dir, "vog_field": name})
    assert props["vog_field"].invalid and why in props["vog_field"].error_message
    assert val.invalid


def test_used_output_field_needs_overwrite(operator_scored, checkpoint_dir):
    props, _ = resolve_form(COMPUTE, operator_scored, {"checkpoints": checkpoint_dir, "vog_field": "vog"})
    assert props["vog_field"].invalid and "Overwrite" in props["vog_field"].error_message
    props, _ = resolve_form(
        COMPUTE, operator_scored, {"checkpoints": checkpoint_dir, "vog_field": "vog", "overwrite": True}
    )
    assert not props["vog_field"].invalid
    # a window's field that is taken counts too
    props, _ = resolve_form(
        COMPUTE, operator_scored, {"checkpoints": checkpoint_dir, "vog_field": "op", "windows": "late=-2:"}
    )
    assert props["vog_field"].invalid


def test_invalid_params_are_rejected_by_the_executor(dataset, tmp_path):
    with pytest.raises(ExecutionError, match="no checkpoint file matches"):
        foo.execute_operator(COMPUTE, ctx={"dataset": dataset, "params": {"checkpoints": str(tmp_path / "*.pt")}})
    assert "vog" not in dataset.get_field_schema()


def test_app_cannot_import_code_unless_the_owner_allows_it(dataset, checkpoint_dir, monkeypatch):
    monkeypatch.delenv("FIFTYONE_VOG_ALLOW_IMPORTS", raising=False)
    props, val = resolve_form(COMPUTE, dataset, {"checkpoints": checkpoint_dir, "model": MODEL, "allow_pickle": True})
    assert props["model"].invalid and "FIFTYONE_VOG_ALLOW_IMPORTS=1" in props["model"].error_message
    assert props["allow_pickle"].invalid and "FIFTYONE_VOG_ALLOW_IMPORTS=1" in props["allow_pickle"].error_message
    with pytest.raises(ExecutionError, match="FIFTYONE_VOG_ALLOW_IMPORTS"):
        foo.execute_operator(
            COMPUTE, ctx={"dataset": dataset, "params": {"checkpoints": checkpoint_dir, "model": MODEL}}
        )
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")
    props, _ = resolve_form(COMPUTE, dataset, {"checkpoints": checkpoint_dir, "model": MODEL, "allow_pickle": True})
    assert not props["model"].invalid and not props["allow_pickle"].invalid


def test_unknown_architecture_and_bad_windows_are_inline_errors(dataset, checkpoint_dir):
    props, _ = resolve_form(
        COMPUTE, dataset, {"checkpoints": checkpoint_dir, "model": "resnet181", "windows": "early=0:1"}
    )
    assert "did you mean resnet18" in props["model"].error_message
    assert props["windows"].invalid and "fewer than 2 checkpoints" in props["windows"].error_message
    props, _ = resolve_form(COMPUTE, dataset, {"checkpoints": checkpoint_dir, "windows": "early"})
    assert "not NAME=SPEC" in props["windows"].error_message


def test_parse_windows():
    assert parse_windows(None) is None and parse_windows(" ") is None
    assert parse_windows("thirds") == "thirds"
    assert parse_windows("early=0:3, late=-3:") == {"early": "0:3", "late": "-3:"}
    assert parse_windows("a=0+2") == {"a": [0, 2]}
    assert parse_windows('{"a": [0, 1]}') == {"a": [0, 1]}
    with pytest.raises(fov.VoGError):
        parse_windows("a=x+y")


def test_target_choice_appears_with_a_view_or_selection(dataset, checkpoint_dir):
    props, _ = resolve_form(COMPUTE, dataset, {"checkpoints": checkpoint_dir})
    assert props["view_target"].view.__class__.__name__ == "HiddenView"  # only the dataset: nothing to choose
    view = dataset.limit(5)._serialize()
    props, _ = resolve_form(COMPUTE, dataset, {"checkpoints": checkpoint_dir}, view=view, selected=[dataset.first().id])
    assert set(props["view_target"].type.values) == {"DATASET", "CURRENT_VIEW", "SELECTED_SAMPLES"}


# -- save_vog_views, shuffle_labels, export_vog_subset --------------------------------
def test_save_vog_views_operator(operator_scored):
    result = foo.execute_operator(
        f"{PLUGIN}/save_vog_views",
        ctx={"dataset": operator_scored, "params": {"vog_field": "vog", "percentile": 10, "load_view": "vog-high"}},
    )
    loss = np.array(operator_scored.values("vog_loss"))
    errors = int((loss > np.log(2)).sum())  # the even-odds rule, the default
    assert {r["view"]: r["samples"] for r in result.result["views"]} == {
        "vog-high": 4,
        "vog-low": 4,
        "vog-label-errors": errors,
        "vog-likely-ood": 40,
    }
    # the result table names the field each view sorts by (was vog for vog-label-errors)
    assert {r["view"]: r["sorted_by"] for r in result.result["views"]} == {
        "vog-high": "vog",
        "vog-low": "vog",
        "vog-label-errors": "vog_loss",
        "vog-likely-ood": "vog_energy",
    }
    assert {r["view"] for r in result.result["skipped"]} == {"vog-shuffled-labels", "vog-ood"}
    ids = operator_scored.values("id")
    assert operator_scored.load_saved_view("vog-label-errors").values("id") == [
        ids[i] for i in np.argsort(-loss, kind="stable")[:errors]
    ]
    energy = np.array(operator_scored.values("vog_energy"))
    assert operator_scored.load_saved_view("vog-likely-ood").values("id") == [ids[i] for i in np.argsort(-energy)]
    # the percentile rule, from the form's choice
    props, val = resolve_form(
        f"{PLUGIN}/save_vog_views", operator_scored, {"vog_field": "vog", "label_error_rule": "percentile"}
    )
    assert not val.invalid and [c.value for c in props["label_error_rule"].view.choices] == ["even-odds", "percentile"]
    result = foo.execute_operator(
        f"{PLUGIN}/save_vog_views",
        ctx={
            "dataset": operator_scored,
            "params": {"vog_field": "vog", "percentile": 10, "label_error_rule": "percentile"},
        },
    )
    assert {r["view"]: r["samples"] for r in result.result["views"]}["vog-label-errors"] == 4
    assert operator_scored.load_saved_view("vog-label-errors").values("id") == [ids[i] for i in np.argsort(-loss)[:4]]
    result = foo.execute_operator(
        f"{PLUGIN}/save_vog_views",
        ctx={"dataset": operator_scored, "params": {"vog_field": "vog", "percentile": 10, "load_view": "vog-high"}},
    )
    ids, vog = operator_scored.values("id"), np.array(operator_scored.values("vog"))
    order = np.argsort(-vog)
    assert operator_scored.load_saved_view("vog-high").values("id") == [ids[i] for i in order[:4]]
    assert operator_scored.load_saved_view("vog-low").values("id") == [ids[i] for i in np.argsort(vog)[:4]]
    sent = [{k: v for k, v in st.items() if k != "_uuid"} for st in _requests(result, "set_view")[0].params["view"]]
    assert sent == operator_scored.load_saved_view("vog-high")._serialize(include_uuids=False)


def test_save_vog_views_operator_name_prefix(operator_scored):
    params = {"vog_field": "vog", "percentile": 10, "name_prefix": " vog-b ", "load_view": "vog-b-low"}
    props, val = resolve_form(f"{PLUGIN}/save_vog_views", operator_scored, params)
    assert not val.invalid
    assert [c.value for c in props["load_view"].view.choices] == [
        "vog-b-high",
        "vog-b-low",
        "vog-b-shuffled-labels",
        "vog-b-ood",
        "vog-b-label-errors",
        "vog-b-likely-ood",
    ]
    result = foo.execute_operator(f"{PLUGIN}/save_vog_views", ctx={"dataset": operator_scored, "params": params})
    assert {r["view"]: r["samples"] for r in result.result["views"]} == {
        "vog-b-high": 4,
        "vog-b-low": 4,
        "vog-b-label-errors": int((np.array(operator_scored.values("vog_loss")) > np.log(2)).sum()),
        "vog-b-likely-ood": 40,
    }
    assert {r["view"] for r in result.result["skipped"]} == {"vog-b-shuffled-labels", "vog-b-ood"}
    ids, vog = operator_scored.values("id"), np.array(operator_scored.values("vog"))
    assert operator_scored.load_saved_view("vog-b-low").values("id") == [ids[i] for i in np.argsort(vog)[:4]]
    assert len(_requests(result, "set_view")[0].params["view"]) == 2  # vog-b-low's match and sort_by
    # blank: the default names
    props, _ = resolve_form(f"{PLUGIN}/save_vog_views", operator_scored, {"vog_field": "vog", "name_prefix": "  "})
    assert props["load_view"].view.choices[0].value == "vog-high"


def test_save_vog_views_form_needs_a_run(dataset):
    props, val = resolve_form(f"{PLUGIN}/save_vog_views", dataset, {})
    assert val.invalid and "no VoG run" in props["no_runs"].view.label


def test_shuffle_then_restore_labels_operator(dataset, image_dir):
    uri = f"{PLUGIN}/shuffle_labels"
    before = dataset.values("ground_truth.label")
    result = foo.execute_operator(uri, ctx={"dataset": dataset, "params": {"fraction": 0.25, "seed": 3}})
    assert result.result["shuffled"] == 10 and result.result["selected"] == 10
    flags = dataset.values("label_shuffled")
    after = dataset.values("ground_truth.label")
    assert sum(flags) == 10
    assert [a != b for a, b in zip(before, after)] == flags
    assert dataset.values("ground_truth_original.label") == before
    # same seed, same samples → the same shuffle as the API
    other = build_dataset(*image_dir)
    try:
        fov.shuffle_labels(other, fraction=0.25, seed=3)
        assert other.values("label_shuffled") == flags and other.values("ground_truth.label") == after
    finally:
        other.delete()
    with pytest.raises(ExecutionError, match="tick .Overwrite."):
        foo.execute_operator(uri, ctx={"dataset": dataset, "params": {"fraction": 0.25}})
    foo.execute_operator(uri, ctx={"dataset": dataset, "params": {"action": "restore"}})
    assert dataset.values("ground_truth.label") == before
    assert "label_shuffled" not in dataset.get_field_schema()


def test_export_vog_subset_operator(operator_scored, tmp_path):
    uri = f"{PLUGIN}/export_vog_subset"
    foo.execute_operator(f"{PLUGIN}/save_vog_views", ctx={"dataset": operator_scored, "params": {"vog_field": "vog"}})
    out = tmp_path / "hard"
    result = foo.execute_operator(
        uri,
        ctx={
            "dataset": operator_scored,
            "params": {"saved_view": "vog-high", "export_dir": str(out), "dataset_type": "csv"},
        },
    )
    with open(result.result["export_dir"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["id"] for r in rows] == operator_scored.load_saved_view("vog-high").values("id")
    assert [float(r["vog"]) for r in rows] == operator_scored.load_saved_view("vog-high").values("vog")
    # a directory with files is refused inline unless overwrite
    props, val = resolve_form(uri, operator_scored, {"saved_view": "vog-high", "export_dir": str(out)})
    assert props["export_dir"].invalid and "already holds files" in props["export_dir"].error_message
    # the current view as a class-folder tree
    tree = tmp_path / "tree"
    view = operator_scored.match(fo.ViewField("ground_truth.label") == "circle")
    foo.execute_operator(uri, ctx={"view": view, "params": {"export_dir": str(tree)}})
    assert sorted(os.listdir(tree)) == [".fiftyone-vog-export.json", "circle"] and len(
        os.listdir(tree / "circle")
    ) == len(view)


def test_compute_vog_operator_mixed_precision_and_resume(operator_scored, checkpoint_dir, allow_imports):
    foo.execute_operator(
        COMPUTE,
        ctx={
            "dataset": operator_scored,
            "params": {
                "checkpoints": os.path.join(checkpoint_dir, "epoch_*.pt"),
                "model": MODEL,
                "vog_field": "amp",
                "autocast": "bf16",
                "resume": True,
                "batch_size": 16,
            },
        },
    )
    cfg = fov.get_vog_run(operator_scored, "amp").config
    assert cfg.engine["autocast"] == "bf16" and cfg.resumed_samples == 0
    exact = np.array(operator_scored.values("vog_raw"))
    approx = np.array(operator_scored.values("amp_raw"))
    assert not np.array_equal(exact, approx)  # really computed in bf16
    from scipy.stats import spearmanr

    assert spearmanr(exact, approx).statistic > 0.9
    fov.delete_vog_run(operator_scored, "amp")


def test_restore_in_a_view_counts_the_view_before_the_restore(dataset):
    """A view matching the flag holds no sample once restored: the summary counts it before."""
    from fiftyone import ViewField as F

    uri = f"{PLUGIN}/shuffle_labels"
    foo.execute_operator(uri, ctx={"dataset": dataset, "params": {"fraction": 0.25, "seed": 3}})
    flagged = dataset.match(F("label_shuffled") == True)  # noqa: E712 (a MongoDB expression)
    result = foo.execute_operator(uri, ctx={"dataset": dataset, "view": flagged, "params": {"action": "restore"}})
    assert result.result["summary"].startswith("Restored 10 labels of 'ground_truth' in a view of 10 samples")
