"""The report's printed summary: the detector tables best first, each score under its own name,
and the one-line verdict (which field to open for label errors and for OOD) that the panel shows too."""

import re

import fiftyone.operators as foo
import pytest

import fiftyone_vog as fov
from fiftyone_vog.analysis import detector_table_from_view
from fiftyone_vog.app import panel as panels
from fiftyone_vog.app.install import install_plugin

from conftest import small_model


@pytest.fixture
def audited(dataset, checkpoint_dir):
    """A scored dataset with both flags: every 5th label "shuffled", every 4th sample tagged ood."""
    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    dataset.set_values("label_shuffled", [i % 5 == 0 for i in range(len(dataset))])
    dataset.select(dataset.values("id")[::4]).tag_samples("ood")
    return dataset


def _report(ds, tmp_path, capsys, **kw):
    out = fov.vog_report(ds, str(tmp_path), per_class=False, grid_size=2, **kw)
    printed = capsys.readouterr().out
    assert out["summary"] in printed
    return out, printed.splitlines()


def _table_rows(lines, heading):
    """The score names of the printed table under ``heading``, in printed order."""
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(heading + ":"))
    assert lines[start + 1].split()[:2] == ["score", "flags"]
    rows = []
    for line in lines[start + 2 :]:
        parts = line.split()
        if len(parts) != 5 or parts[1] not in ("high", "low"):
            break
        rows.append(parts)
    return rows


def test_summary_prints_the_detector_tables_best_first_with_correct_names(audited, tmp_path, capsys):
    out, lines = _report(audited, tmp_path, capsys)
    for heading, kw in (
        ("shuffled labels", dict(flag_field="label_shuffled")),
        ("out-of-distribution (tag 'ood')", dict(tag="ood")),
    ):
        ref = detector_table_from_view(audited, "vog", **kw)
        rows = _table_rows(lines, heading)
        assert [r[0] for r in rows] == [r["score"] for r in ref.rows]  # best first, every score
        assert [float(r[2]) for r in rows] == [round(r["auroc"], 3) for r in ref.rows]
        assert {r[0] for r in rows} == {"vog", "vog_raw", "vog_loss", "vog_margin", "vog_maxprob", "vog_energy"}
    # each line's AUROC belongs to the score it names: vog for memorization, vog_raw for OOD
    mem = out["analysis"]["memorization"]["detection"]["auroc"]
    ood = out["analysis"]["ood"]["detection"]["auroc"]
    assert out["analysis"]["ood"]["score_field"] == "vog_raw"
    assert any(re.search(rf"shuffled vs clean by vog: .*AUROC of vog {mem:.4g}$", line) for line in lines)
    assert any(re.search(rf"OOD by vog_raw: .*AUROC of vog_raw {ood:.4g}$", line) for line in lines)
    assert not any(re.search(r"\bAUROC [0-9]", line) for line in lines if "OOD by" in line or "shuffled vs" in line)


def test_summary_verdict_names_the_best_field_per_question(audited, tmp_path, capsys):
    _, lines = _report(audited, tmp_path, capsys)
    # the best of each question's candidates; OOD's are the scores that do not read the label
    mem_rows = detector_table_from_view(audited, "vog", flag_field="label_shuffled").rows
    best_mem = next(r for r in mem_rows if r["score"] in {"vog_loss", "vog_margin", "vog", "vog_raw"})
    ood_rows = detector_table_from_view(audited, "vog", tag="ood").rows
    best_ood = next(r for r in ood_rows if r["score"] in {"vog_energy", "vog_maxprob", "vog_raw", "vog"})
    verdict = [line.strip() for line in lines if line.strip().startswith("Which score:")]
    assert verdict == [
        f"Which score: for label errors open {best_mem['score']} (AUROC {best_mem['auroc']:.3f} on the shuffled "
        f"labels here); for out-of-distribution open {best_ood['score']} (AUROC {best_ood['auroc']:.3f} on the "
        "OOD-marked samples here)"
    ]
    page = open(tmp_path / "report.html", encoding="utf-8").read()
    assert 'id="verdict"' in page and verdict[0].split(";")[0] in page


def test_verdict_without_flags_names_the_measured_choice(dataset, checkpoint_dir, tmp_path, capsys):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    _, lines = _report(dataset, tmp_path, capsys)
    assert (
        "  Which score: for label errors open vog_loss (not measured on this data: the best in "
        "docs/results.md); for out-of-distribution open vog_energy (not measured on this data: the best in "
        "docs/results.md)"
    ) in lines
    assert not any("detectors side by side" in line for line in lines)


def test_without_companions_the_verdict_falls_back_to_vog(dataset, checkpoint_dir, tmp_path, capsys):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, companions=False)
    _, lines = _report(dataset, tmp_path, capsys)
    line = next(x for x in lines if "Which score:" in x)
    assert "for label errors open vog (" in line and "for out-of-distribution open vog_raw (" in line


def test_the_panel_shows_the_same_verdict(audited, tmp_path, capsys):
    _, lines = _report(audited, tmp_path, capsys)
    verdict = next(x.strip() for x in lines if x.strip().startswith("Which score:"))
    stats = panels.view_stats(audited, "vog", "ground_truth")
    assert stats["verdict"] == verdict
    assert [t["kind"] for t in stats["detectors"]] == ["label-errors", "ood"]
    # through FiftyOne's executor: the rendered panel carries it as its own element, "verdict"
    install_plugin()
    result = foo.execute_operator(
        "@fiftyone-vog/vog/vog_panel",
        ctx={"dataset": audited, "params": {"__method__": "on_load", "panel_id": "p1", "panel_state": {}}},
    )
    shown = [r.params["output"] for r in result.executor._requests if r.operator_uri == "show_panel_output"]
    element = shown[-1]["type"]["properties"]["verdict"]
    assert element["view"]["name"] == "MarkdownView" and element["default"] == verdict


def test_verdict_for_ood_leaves_out_the_scores_that_read_the_label():
    """With label_mode="auto" a labeled sample's loss is of its label, an OOD sample's of its
    prediction: the best OOD AUROC of loss measures "has a label", so OOD's answer is the best
    of energy / max-softmax / raw VoG / VoG; a score's AUROC of None (undefined) is skipped."""
    from fiftyone_vog.analysis import score_verdict
    from fiftyone_vog.core.naming import ScoreFields

    beside = ScoreFields("vog", ["vog", "vog_raw", "vog_loss", "vog_margin", "vog_maxprob", "vog_energy"])
    rows = [{"score": "vog_loss", "auroc": 0.9}, {"score": "vog_raw", "auroc": 0.8}, {"score": "vog", "auroc": 0.7}]
    verdict = score_verdict(
        {"ood": {"rows": rows}, "label-errors": {"rows": [{"score": "vog", "auroc": None}]}}, beside
    )
    assert verdict == (
        "Which score: for label errors open vog_loss (not measured on this data: the best in docs/results.md); "
        "for out-of-distribution open vog_raw (AUROC 0.800 on the OOD-marked samples here)"
    )
