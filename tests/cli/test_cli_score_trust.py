"""What the CLI now prints, as a real subprocess: the views' sizes and rules (vog-label-errors by
the even-odds rule, vog-likely-ood), the report's detector tables and verdict; and a user's text
field named like a companion is a skipped view, never a traceback (CLI and operator)."""

import math

import fiftyone as fo
import fiftyone.operators as foo
import numpy as np
import pytest

import fiftyone_vog as fov
from fiftyone_vog.analysis import detector_table_from_view
from fiftyone_vog.app.install import install_plugin

from conftest import run_cli, small_model

DATASET_NAME = "cli-score-trust"  # the conftest fixture named_dataset


def _columns(stdout):
    return {line.split("\t")[0]: line.split("\t")[1:] for line in stdout.splitlines() if "\t" in line}


def test_views_print_each_views_size_and_rule(named_dataset, checkpoint_dir):
    fov.compute_vog(named_dataset, checkpoint_dir, model=small_model)
    loss = np.array(named_dataset.values("vog_loss"))
    r = run_cli("views", DATASET_NAME)
    assert r.returncode == 0, r.stderr
    rows = _columns(r.stdout)
    errors = int((loss > math.log(2)).sum())
    assert rows["vog-label-errors"][0] == f"{errors} samples"
    assert "mean loss of the used label > ln 2" in rows["vog-label-errors"][1]
    assert rows["vog-likely-ood"][0] == "40 samples"
    assert "vog_energy, highest first" in rows["vog-likely-ood"][1] and "no tag needed" in rows["vog-likely-ood"][1]
    assert rows["vog-ood"][0].startswith("skipped: no sample is tagged 'ood'")
    r = run_cli("views", DATASET_NAME, "--label-error-rule", "percentile", "--percentile", "10")
    assert r.returncode == 0, r.stderr
    rows = _columns(r.stdout)
    assert rows["vog-label-errors"][0] == "4 samples" and "top 10% by vog_loss" in rows["vog-label-errors"][1]
    r = run_cli("views", DATASET_NAME, "--label-error-rule", "half")
    assert r.returncode == 2 and "invalid choice: 'half'" in r.stderr and r.stderr.count("\n") == 1


def test_a_text_field_named_like_a_companion_is_skipped_not_a_traceback(named_dataset, checkpoint_dir):
    fov.compute_vog(named_dataset, checkpoint_dir, model=small_model, companions=False)
    named_dataset.add_sample_field("vog_loss", fo.StringField)
    named_dataset.set_values("vog_loss", ["wrong?"] * len(named_dataset))
    r = run_cli("views", DATASET_NAME)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    rows = _columns(r.stdout)
    assert rows["vog-label-errors"][0].startswith("skipped: field 'vog_loss' is a StringField, not a score of the run")
    assert "vog_raw, highest first" in rows["vog-likely-ood"][1]  # no companions: the raw VoG
    # the operator, through FiftyOne's executor: the same skip, with its reason, no exception
    install_plugin()
    result = foo.execute_operator(
        "@fiftyone-vog/vog/save_vog_views", ctx={"dataset": named_dataset, "params": {"vog_field": "vog"}}
    )
    skipped = {s["view"]: s["reason"] for s in result.result["skipped"]}
    assert "is a StringField" in skipped["vog-label-errors"]
    assert {v["view"]: v["sorted_by"] for v in result.result["views"]}["vog-likely-ood"] == "vog_raw"
    assert named_dataset.values("vog_loss") == ["wrong?"] * len(named_dataset)


@pytest.mark.parametrize("with_flags", [True, False])
def test_report_prints_the_detector_tables_and_the_verdict(named_dataset, checkpoint_dir, tmp_path, with_flags):
    fov.compute_vog(named_dataset, checkpoint_dir, model=small_model)
    if with_flags:
        named_dataset.set_values("label_shuffled", [i % 5 == 0 for i in range(len(named_dataset))])
        named_dataset.select(named_dataset.values("id")[::4]).tag_samples("ood")
    r = run_cli("report", DATASET_NAME, "--out-dir", str(tmp_path), "--no-per-class", "--grid-size", "2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    verdict = [line.strip() for line in lines if line.strip().startswith("Which score:")]
    assert len(verdict) == 1
    if not with_flags:
        assert "open vog_loss (not measured on this data" in verdict[0]
        assert "open vog_energy (not measured on this data" in verdict[0]
        return
    ref = detector_table_from_view(named_dataset, "vog", flag_field="label_shuffled")
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("shuffled labels:"))
    printed = [line.split()[0] for line in lines[start + 2 : start + 2 + len(ref.rows)]]
    assert printed == [row["score"] for row in ref.rows]  # best first
    assert any(line.strip().startswith("OOD by vog_raw:") and "AUROC of vog_raw" in line for line in lines)
    assert any(line.strip().startswith("shuffled vs clean by vog:") and "AUROC of vog " in line for line in lines)
    assert "on the shuffled labels here" in verdict[0] and "on the OOD-marked samples here" in verdict[0]
