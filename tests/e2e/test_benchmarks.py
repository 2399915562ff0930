"""The benchmark scripts run where only torch, torchvision and numpy exist (the lent GPU machines
have no FiftyOne), and what they report is computed, not made up."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT  # noqa: E402

# run a script with ``import fiftyone`` made impossible, as on a machine without it
NO_FIFTYONE = (
    "import runpy, sys; sys.modules['fiftyone'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def _run(script, *args, tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    r = subprocess.run(
        [sys.executable, "-c", NO_FIFTYONE, os.path.join(ROOT, "benchmarks", script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_bench_vog_engine_level_without_fiftyone(tmp_path):
    out = tmp_path / "bench.json"
    r = _run(
        "bench_vog.py",
        "--model",
        "smallcnn",
        "--size",
        "12",
        "--n",
        "40",
        "80",
        "--k",
        "3",
        "--batch-size",
        "16",
        "--rounds",
        "2",
        "--threads",
        "1",
        "--variants",
        "default,bf16,bf16-all",
        "--out",
        str(out),
        tmp_path=tmp_path,
    )
    res = json.loads(out.read_text())
    assert res["device"].startswith("cpu")
    rows = {(row["method"], row["n"]): row for row in res["rows"]}
    assert set(rows) == {
        (m, n) for m in ("floor", "ours[default]", "ours[bf16]", "ours[bf16-all]", "naive") for n in (40, 80)
    }
    for (_method, n), row in rows.items():
        assert row["throughput"] == pytest.approx(n * 3 / row["seconds"], rel=1e-6)
        assert len(row["rounds"]) == 2 and row["peak_rss_mib"] is not None
        assert row["peak_heap_mib"] is not None and row["peak_heap_mib"] >= 0  # glibc's mallinfo2 here
    for n in (40, 80):
        # ratios are medians of per-round ratios to the floor's rounds, as the docs describe them
        floor = rows[("floor", n)]["rounds"]
        for m in ("ours[default]", "ours[bf16]", "naive"):
            want = sorted(f / s for f, s in zip(floor, rows[(m, n)]["rounds"]))
            assert rows[(m, n)]["vs_floor"] == pytest.approx(sum(want) / 2)  # median of 2 rounds
        # ours[default] is the reference of the diff columns; the naive way computes the same VoG
        assert rows[("naive", n)]["max_rel_diff"] < 1e-5 and rows[("naive", n)]["spearman"] > 0.999
        assert 0 < rows[("ours[bf16]", n)]["max_rel_diff"] < 0.5  # low precision: close, not equal
    assert "ours[bf16-all]" in r.stdout and "÷floor" in r.stdout


def test_precision_vog_trains_and_compares(tmp_path):
    out = tmp_path / "precision.json"
    r = _run(
        "precision_vog.py",
        "--data",
        "shapes",
        "--size",
        "12",
        "--epochs",
        "3",
        "--k",
        "3",
        "--n",
        "200",
        "--autocast",
        "bf16",
        "--shuffle",
        "0.2",
        "--on",
        "train",
        "--out",
        str(out),
        tmp_path=tmp_path,
    )
    res = json.loads(out.read_text())
    assert (
        res["data"] == "shapes" and res["k"] == 3 and res["n"] == 200 and res["shuffle"] == 0.2 and res["on"] == "train"
    )
    rows = {(row["target"], row["fp32_input_layer"]): row for row in res["rows"]}
    assert set(rows) == {(t, layer) for t in ("probability", "logit") for layer in ("features.0", None)}
    for row in rows.values():
        assert 0.9 < row["spearman"] <= 1 and 0 < row["median_rel_diff"] < 0.1
    assert "features.0" in r.stdout and "20% of training labels shuffled" in r.stdout
    assert "200 training images scored" in r.stdout


def test_bench_vog_end_to_end_in_the_test_database(tmp_path):
    """--e2e: compute_vog on generated PNGs and the bulk writers over a dataset of --write-n samples
    (the script itself asserts that every writer stored the values)."""
    out = tmp_path / "e2e.json"
    r = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "bench_vog.py"),
            "--e2e",
            "--n",
            "24",
            "--k",
            "2",
            "--write-n",
            "300",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {row["method"]: row for row in json.loads(out.read_text())["rows"]}
    assert {"set_values by id", "set_values in order", "bulk_set, 2 fields", "write_run overwriting 2 fields"} <= set(
        rows
    )
    writes = [m for m in rows if m.startswith(("set_", "bulk", "write"))]
    for m in writes:
        assert rows[m]["n"] == 300 and rows[m]["throughput"] == pytest.approx(
            300 * rows[m]["fields"] / rows[m]["seconds"]
        )
    assert [rows[m]["fields"] for m in writes] == [1, 1, 2, 2]
    assert "compute_vog: 24 samples × 2 checkpoints" in r.stdout
