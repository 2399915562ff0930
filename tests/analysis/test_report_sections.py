"""The report as a list of sections: each built on its own from a context, each skippable, with
its skip reason in the page."""

import os

import fiftyone as fo
import pytest

import fiftyone_vog as fov
from fiftyone_vog.report.html import SECTION_KEYS, SECTIONS, Block, Skip, render_section, report_context

from conftest import CLASSES


def test_each_section_builds_on_its_own(scored_run, tmp_path):
    ds, _ = scored_run
    built = {sec.key: sec.build(report_context(ds, str(tmp_path / sec.key), grid_size=2)) for sec in SECTIONS}
    assert (
        list(built)
        == list(SECTION_KEYS)
        == [
            "distribution",
            "error",
            "windows",
            "memorization",
            "ood",
            "per_class",
            "detectors",
            "grids",
        ]
    )
    assert isinstance(built["distribution"], Block) and built["distribution"].result["n"] == len(ds)
    assert isinstance(built["grids"], Block) and set(built["grids"].result) == {"all", *CLASSES}
    reasons = {k: b.reason for k, b in built.items() if isinstance(b, Skip)}
    assert reasons == {
        "error": "no predictions: pass pred_field (CLI: --pred-field)",
        "windows": "no window fields: compute_vog(..., windows='thirds') writes vog_early/_late",
        "memorization": "no field 'label_shuffled': fov.shuffle_labels(...) marks shuffled samples",
        "ood": "no scored sample is flagged by tag 'ood'",
        "per_class": "needs labels and predictions (pred_field)",
        "detectors": "no flag to compare against: shuffled labels, an OOD marking, or predictions (pred_field)",
    }
    # the context takes vog_report's arguments with vog_report's defaults (written once)
    ctx = report_context(ds, str(tmp_path / "defaults"))
    assert (ctx.vog_field, ctx.label_field, ctx.bins, ctx.grid_size, ctx.per_class) == (
        "vog",
        "ground_truth",
        10,
        5,
        True,
    )
    with pytest.raises(TypeError):
        report_context(ds, str(tmp_path), bin=5)
    # a section writes only its own PNGs
    assert sorted(os.listdir(tmp_path / "distribution")) == ["vog_histogram.png"]
    assert sorted(os.listdir(tmp_path / "error")) == []
    # a skipped section's reason is shown in its block of the page
    sec = SECTIONS[SECTION_KEYS.index("error")]
    page = render_section(sec, built["error"])
    assert page.startswith('<section id="error"><h2>Error rate by VoG decile (Fig. 4)</h2>')
    assert "no predictions: pass pred_field" in page

    ds.set_values("predictions", [fo.Classification(label=lab) for lab in ds.values("ground_truth.label")])
    ctx = report_context(ds, str(tmp_path / "pred"), pred_field="predictions")
    error = sec.build(ctx)
    assert isinstance(error, Block) and error.result["by_bin"]["overall_error"] == 0.0
    assert list(ctx.pngs) == ["error"] and os.path.exists(ctx.pngs["error"])
    assert 'id="error"' in render_section(sec, error) and "plotly" in error.body


def test_sections_choice(scored_run, tmp_path):
    ds, _ = scored_run
    out = fov.vog_report(ds, str(tmp_path), sections=["distribution"], print_summary=False)
    assert out["sections"]["distribution"]["status"] == "ok"
    left_out = {k: v for k, v in out["sections"].items() if k != "distribution"}
    assert {v["status"] for v in left_out.values()} == {"skipped"}
    assert all(v["note"].startswith("left out") for v in left_out.values())
    assert sorted(os.listdir(tmp_path)) == ["report.html", "vog_histogram.png"]
    page = open(out["html"], encoding="utf-8").read()
    assert all(f'<section id="{k}">' in page for k in SECTION_KEYS)  # every id, as before
    assert set(out["analysis"]) == {"distribution"} and fov.load_vog_results(ds).analysis == out["analysis"]
    with pytest.raises(fov.VoGError, match="'nope' is not a section of the report"):
        fov.vog_report(ds, str(tmp_path / "x"), sections=["nope"])
    assert not os.path.exists(tmp_path / "x")
