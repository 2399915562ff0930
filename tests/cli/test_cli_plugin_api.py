"""The fiftyone-vog CLI: compute, views, shuffle-labels and export give the API's values; one-line
errors; --help everywhere."""

import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fiftyone_vog as fov
from fiftyone_vog.cli import build_parser, main

from conftest import TESTS_DIR, build_dataset, small_model

DATASET_NAME = "cli-test"  # the conftest fixture named_dataset
CLI = [sys.executable, "-m", "fiftyone_vog.cli"]
SCORES = [float((7 * i) % 40) for i in range(40)]


@pytest.fixture
def named(image_dir):
    ds = build_dataset(*image_dir, name="cli-plugin-api")
    ds.persistent = True  # visible to the subprocess
    ds.set_values("vog", SCORES)
    yield ds
    ds.delete()


def _main(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_views_shuffle_export_in_process(named, capsys, tmp_path):
    before = named.values("ground_truth.label")
    rc, out, err = _main(capsys, "shuffle-labels", named.name, "--fraction", "0.25", "--seed", "3")
    assert rc == 0, err
    assert "shuffled 10 of 40 labeled samples (10 drawn, seed 3)" in out
    ref = build_dataset(named.values("filepath"), before)
    try:
        fov.shuffle_labels(ref, fraction=0.25, seed=3)
        assert named.values("ground_truth.label") == ref.values("ground_truth.label")
    finally:
        ref.delete()

    rc, out, err = _main(capsys, "shuffle-labels", named.name)
    assert rc == 2 and "already shuffled" in err and err.count("\n") == 1

    rc, out, err = _main(capsys, "views", named.name, "--percentile", "5")
    assert rc == 0, err
    lines = dict(line.split("\t")[:2] for line in out.splitlines() if "\t" in line)
    assert lines["vog-high"] == "2 samples" and lines["vog-low"] == "2 samples"
    assert lines["vog-shuffled-labels"] == "10 samples"
    assert lines["vog-ood"].startswith("skipped: no sample is tagged 'ood'")
    assert named.load_saved_view("vog-high").values("vog") == [39.0, 38.0]
    assert "load_saved_view('vog-high')" in out

    # another set of views beside the first: --name-prefix
    rc, out, err = _main(capsys, "views", named.name, "--percentile", "10", "--name-prefix", "vog-10")
    assert rc == 0, err
    lines = dict(line.split("\t")[:2] for line in out.splitlines() if "\t" in line)
    assert lines["vog-10-high"] == "4 samples" and lines["vog-10-shuffled-labels"] == "10 samples"
    assert lines["vog-10-ood"].startswith("skipped:") and "load_saved_view('vog-10-high')" in out
    assert named.load_saved_view("vog-high").values("vog") == [39.0, 38.0]  # the first set is untouched
    assert named.load_saved_view("vog-10-high").values("vog") == [39.0, 38.0, 37.0, 36.0]

    d = tmp_path / "csv"
    rc, out, err = _main(
        capsys, "export", named.name, "--view", "vog-shuffled-labels", "--export-dir", str(d), "--dataset-type", "csv"
    )
    assert rc == 0, err
    with open(d / "manifest.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1:]] == named.load_saved_view("vog-shuffled-labels").values("id")
    rc, out, err = _main(capsys, "export", named.name, "--view", "vog-high", "--export-dir", str(d))
    assert rc == 2 and "already holds files" in err and "--overwrite" in err
    rc, out, err = _main(
        capsys, "export", named.name, "--view", "vog-high", "--export-dir", str(d), "--overwrite", "--quiet"
    )
    assert rc == 0 and sorted(set(os.listdir(d)) - {".fiftyone-vog-export.json"}) == sorted(
        set(named.load_saved_view("vog-high").values("ground_truth.label"))
    )

    rc, out, err = _main(capsys, "shuffle-labels", named.name, "--restore")
    assert rc == 0 and "restored 10 labels" in out
    assert named.values("ground_truth.label") == before


def test_errors_are_one_line(named, capsys, tmp_path):
    for args, msg in [
        (["views", "no-such"], "dataset 'no-such' not found"),
        (["views", named.name, "--vog-field", "score"], "fov.compute_vog"),
        (["views", named.name, "--percentile", "0"], "percentile"),
        (["views", named.name, "--name-prefix", " "], "name_prefix"),
        (["export", named.name, "--view", "nope", "--export-dir", str(tmp_path / "x")], "saved view 'nope' not found"),
        (["shuffle-labels", named.name, "--restore"], "nothing to restore"),
        (["shuffle-labels", named.name, "--fraction", "2"], "fraction"),
    ]:
        rc, out, err = _main(capsys, *args)
        assert rc == 2 and msg in err and err.count("\n") == 1, (args, err)
    assert not os.path.exists(tmp_path / "x")


def test_subprocess_views_and_help(named):
    env = os.environ.copy()  # conftest's FIFTYONE_* settings: the same isolated database
    r = subprocess.run([*CLI, "views", named.name], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    assert "vog-high\t4 samples" in r.stdout and "vog-low\t4 samples" in r.stdout
    named.reload()
    assert named.load_saved_view("vog-low").values("vog") == [0.0, 1.0, 2.0, 3.0]
    r = subprocess.run([*CLI, "export", "--help"], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0 and "--export-dir" in r.stdout and "example" in r.stdout


def test_help_for_each_subcommand():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, flags in {
        "views": ["--vog-field", "--percentile", "--shuffled-field", "--ood-field", "--ood-tag", "--name-prefix"],
        "shuffle-labels": ["--fraction", "--label-field", "--seed", "--flag-field", "--overwrite", "--restore"],
        "export": ["--view", "--export-dir", "--dataset-type", "--label-field", "--vog-field", "--overwrite"],
    }.items():
        text = sub.choices[name].format_help()
        assert f"usage: fiftyone-vog {name}" in text and "examples:" in text, name
        for flag in flags:
            assert flag in text, (name, flag)


# -- compute (was tests/cli/test_cli.py) --------------------------------------------
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
