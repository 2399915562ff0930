"""The fiftyone-vog CLI: same values as the API, one-line errors, --help everywhere."""

import os
import re
import subprocess
import sys

import numpy as np

import fiftyone_vog as fov
from fiftyone_vog.cli import build_parser

from conftest import TESTS_DIR, small_model

DATASET_NAME = "cli-test"  # the conftest fixture named_dataset

CLI = [sys.executable, "-m", "fiftyone_vog.cli"]


def _run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=600, env=os.environ.copy())


def test_cli_compute_matches_api(named_dataset, checkpoint_dir, tmp_path):
    env_path = os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")])
    os.environ["PYTHONPATH"] = env_path  # so "conftest:small_model" imports in the subprocess
    try:
        r = _run(
            "compute",
            DATASET_NAME,
            "--checkpoints",
            os.path.join(checkpoint_dir, "epoch_*.pt"),
            "--model",
            "conftest:small_model",
            "--windows",
            "early=0:2,late=-2:",
            "--batch-size",
            "8",
        )
    finally:
        os.environ["PYTHONPATH"] = env_path.split(os.pathsep, 1)[1]
    assert r.returncode == 0, r.stderr
    assert "scored 40 samples against 5 checkpoints" in r.stdout
    assert re.search(r"of which scoring \d+\.\ds and waiting for images \d+\.\ds", r.stdout), r.stdout
    named_dataset.reload()
    cli_values = named_dataset.values("vog_raw")
    cli_late = named_dataset.values("vog_late")
    fov.compute_vog(
        named_dataset, checkpoint_dir, model=small_model, vog_field="api", windows={"early": "0:2", "late": "-2:"}
    )
    np.testing.assert_allclose(cli_values, named_dataset.values("api_raw"), rtol=1e-6)
    np.testing.assert_allclose(cli_late, named_dataset.values("api_late"), rtol=1e-6, atol=1e-9)


def test_cli_autocast_choices():
    parse = build_parser().parse_args
    for value in ("bf16", "fp16", "bf16-all", "fp16-all"):
        assert parse(["compute", "ds", "--checkpoints", "c", "--autocast", value]).autocast == value


def test_cli_errors_are_one_line_and_nonzero(named_dataset, checkpoint_dir, tmp_path):
    r = _run("compute", "no-such-dataset", "--checkpoints", checkpoint_dir, "--model", "resnet18")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "dataset 'no-such-dataset' not found" in r.stderr
    r = _run("compute", DATASET_NAME, "--checkpoints", str(tmp_path / "x_*.pt"), "--model", "resnet18")
    assert r.returncode == 2 and "no checkpoint file matches" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert "vog" not in named_dataset.get_field_schema()


def test_help_everywhere():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert "compute" in sub.choices
    for name, p in sub.choices.items():
        text = p.format_help()
        assert "usage: fiftyone-vog " + name in text and len(text) > 200, name
    r = _run("compute", "--help")
    assert r.returncode == 0 and "--checkpoints" in r.stdout and "--label-mode" in r.stdout
