"""CLI subcommands views, shuffle-labels and export: same results as the API, one-line errors."""

import csv
import os
import subprocess
import sys

import pytest

import fiftyone_vog as fov
from fiftyone_vog.cli import build_parser, main

from conftest import build_dataset

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
    lines = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
    assert lines["vog-high"] == "2 samples" and lines["vog-low"] == "2 samples"
    assert lines["vog-shuffled-labels"] == "10 samples"
    assert lines["vog-ood"].startswith("skipped: no sample is tagged 'ood'")
    assert named.load_saved_view("vog-high").values("vog") == [39.0, 38.0]
    assert "load_saved_view('vog-high')" in out

    # another set of views beside the first: --name-prefix
    rc, out, err = _main(capsys, "views", named.name, "--percentile", "10", "--name-prefix", "vog-10")
    assert rc == 0, err
    lines = dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)
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
