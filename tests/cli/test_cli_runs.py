"""``fiftyone-vog runs list|info|rename|delete`` as real subprocesses: the API's run management
(fov.describe_vog_run, rename_vog_run, delete_vog_run), one line and exit 2 on a refusal."""

import json
import os
import subprocess
import sys

import pytest

import fiftyone_vog as fov

from conftest import TESTS_DIR, build_dataset, small_model

CLI = [sys.executable, "-m", "fiftyone_vog.cli", "runs"]
NAME = "cli-runs"


def _runs(*args):
    env = os.environ.copy()  # conftest's FIFTYONE_* settings: the same throw-away database
    env["PYTHONPATH"] = os.pathsep.join([TESTS_DIR, env.get("PYTHONPATH", "")])
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)


@pytest.fixture
def named(image_dir, checkpoint_dir):
    ds = build_dataset(*image_dir, name=NAME)
    ds.persistent = True  # visible to the subprocesses
    fov.compute_vog(ds, checkpoint_dir, model=small_model, progress=False)
    fov.compute_vog(ds, checkpoint_dir, model=small_model, vog_field="vog_api", companions=False, progress=False)
    fov.save_vog_views(ds)
    yield ds
    ds.delete()


def test_help_of_every_action():
    for action in ("list", "info", "rename", "delete"):
        out = _runs(action, "--help")
        assert out.returncode == 0 and "dataset" in out.stdout, out.stderr


def test_list_and_info(named):
    out = _runs("list", NAME)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["vog", "vog_api"]
    assert "40 samples\t5 checkpoints\tfields: vog_api, vog_api_raw" in lines[1]

    out = _runs("info", NAME)  # the default run: vog
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"VoG run 'vog' of '{NAME}'")
    assert (
        "  views: vog-high, vog-label-errors, vog-likely-ood, vog-low" in out.stdout and "  num_threads: " in out.stdout
    )
    info = json.loads(_runs("info", NAME, "vog_api", "--json").stdout)
    assert info["fields"] == ["vog_api", "vog_api_raw"] and len(info["config"]["checkpoints"]) == 5


def test_rename_refused_in_one_line_then_done(named):
    out = _runs("rename", NAME, "vog", "vog_api")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "'vog_api'" in out.stderr and "Traceback" not in out.stderr
    out = _runs("rename", NAME, "vog", "vog2", "--dry-run")
    assert out.returncode == 0 and "would rename VoG run 'vog' to 'vog2': vog → vog2, vog_raw → vog2_raw" in out.stdout
    named.reload()
    assert "vog" in named.get_field_schema()
    out = _runs("rename", NAME, "vog", "vog2")
    assert out.returncode == 0 and out.stdout.startswith("renamed VoG run 'vog' to 'vog2'"), out.stderr
    named.reload()
    assert sorted(fov.list_vog_runs(named)) == ["vog2", "vog_api"] and "vog2_raw" in named.get_field_schema()


def test_delete_lists_then_needs_yes(named):
    out = _runs("delete", NAME, "vog")
    assert out.returncode == 2 and "pass --yes" in out.stderr, out.stderr
    assert (
        "  saved views: vog-high, vog-label-errors, vog-likely-ood, vog-low" in out.stdout
        and "  fields: vog, vog_raw" in out.stdout
    )
    named.reload()
    assert "vog" in fov.list_vog_runs(named) and len(named.list_saved_views()) == 4  # nothing deleted
    out = _runs("delete", NAME, "vog", "--yes")
    assert out.returncode == 0 and "deleted VoG run 'vog'" in out.stdout, out.stderr
    named.reload()
    assert fov.list_vog_runs(named) == ["vog_api"] and named.list_saved_views() == []
    assert "vog" not in named.get_field_schema()
