"""vog_report on a small real FiftyOne dataset: every section, skipped sections, stored results, CLI."""

import os
import re

import fiftyone as fo
import numpy as np
import pytest
from PIL import Image

import fiftyone_vog as fov
from fiftyone_vog import analysis as A
from fiftyone_vog.cli import main
from fiftyone_vog.report.html import PNG_NAMES

from conftest import CLASSES, small_model

SECTIONS = ["distribution", "error", "windows", "memorization", "ood", "per_class", "detectors", "grids"]


@pytest.fixture
def audited(dataset, checkpoint_dir):
    """The 40-sample dataset with a registered VoG run (early/late windows), predictions,
    a shuffled-label flag (None on the last two samples) and 6 samples tagged 'ood'."""
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, windows={"early": "0:2", "late": "-2:"})
    rng = np.random.default_rng(1)
    labels = dataset.values("ground_truth.label")
    preds = [l if rng.uniform() < 0.6 else CLASSES[(CLASSES.index(l) + 1) % 4] for l in labels]
    dataset.set_values("predictions", [fo.Classification(label=p) for p in preds])
    flags = [bool(i % 5 == 0) for i in range(len(dataset) - 2)] + [None, None]
    dataset.set_values("label_shuffled", flags)
    dataset.select(dataset.values("id")[::7]).tag_samples("ood")
    return dataset


def _valid_png(path):
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width > 100 and im.height > 100
        return im.size


def test_report_renders_every_section(audited, tmp_path, capsys):
    out_dir = str(tmp_path / "report")
    out = fov.vog_report(audited, out_dir, pred_field="predictions")
    assert {k: v["status"] for k, v in out["sections"].items()} == dict.fromkeys(SECTIONS, "ok")

    page = open(out["html"], encoding="utf-8").read()
    for key in SECTIONS:
        assert f'<section id="{key}">' in page
    for title in [
        "Error rate by VoG decile (Fig. 4)",
        "Early vs late checkpoint window (Fig. 7)",
        "Shuffled labels: memorization (Fig. 8)",
        "Fig. 6 right",
        "Fig. 10",
        "Figs. 2, 3, 5",
    ]:
        assert title in page
    # self-contained: plotly.js inlined once, no CDN, grids as data URIs
    assert set(re.findall(r"<script[^>]*>", page)) == {"<script>"}  # no external src
    assert "plotly.js v" in page or "plotly.js" in page
    assert page.count('class="plotly-graph-div"') == 6 and len(page) > 3_000_000
    assert page.count('src="data:image/png;base64,') == 2 + 2 * len(CLASSES)

    for key, name in PNG_NAMES.items():
        assert out["pngs"][key] == os.path.join(out_dir, name)
        _valid_png(out["pngs"][key])
    for c in ["", *(f"_{c}" for c in CLASSES)]:
        for kind in ("lowest", "highest"):
            size = _valid_png(os.path.join(out_dir, f"grid_{kind}{c}.png"))
    # a class has 10 samples → 2 rows of 5; cells are 96 px + 4 px padding
    assert size[0] == 5 * 100 + 4
    assert _valid_png(os.path.join(out_dir, "grid_highest.png"))[1] > size[1]

    # the numbers are the analysis functions' numbers
    a = out["analysis"]
    assert a["error"]["by_bin"] == A.error_by_bin_from_view(audited, pred_field="predictions").to_dict()
    assert a["memorization"]["ttest"] == A.welch_ttest_from_view(audited).to_dict()
    assert a["memorization"]["ttest"]["n_flagged"] + a["memorization"]["ttest"]["n_other"] == 38
    # the OOD section ranks by the raw score (class z-scores hide OOD samples) and says so
    assert a["ood"]["score_field"] == "vog_raw"
    assert a["ood"]["share"] == A.share_by_percentile_from_view(audited, vog_field="vog_raw", tag="ood").to_dict()
    assert a["ood"]["share"]["n_flagged"] == 6
    assert a["per_class"]["field"] == "vog_raw" and a["per_class"]["classes"] == CLASSES
    assert a["windows"]["early"]["n"] == 40

    # stored on the run for the panel and later sessions
    stored = fov.load_vog_results(audited)
    assert out["stored_in_run"] and stored.analysis == a
    assert stored.report["html"] == os.path.abspath(out["html"])
    assert stored.class_stats["all"]["circle"]["count"] == 10  # compute_vog's results kept
    audited.clear_cache()
    assert audited.load_run_results("vog", cache=False).analysis["error"]["by_bin"]["n"] == 40

    printed = capsys.readouterr().out
    assert "VoG report for" in printed and "highest decile" in printed and "Welch p" in printed
    assert out["html"] in printed


def test_missing_inputs_skip_sections_with_notes(dataset, checkpoint_dir, tmp_path):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    out = fov.vog_report(dataset, str(tmp_path), per_class=False, print_summary=False, grid_size=3)
    status = {k: v["status"] for k, v in out["sections"].items()}
    assert status == {
        "distribution": "ok",
        "error": "skipped",
        "windows": "skipped",
        "memorization": "skipped",
        "ood": "skipped",
        "per_class": "skipped",
        "detectors": "skipped",
        "grids": "ok",
    }
    page = open(out["html"], encoding="utf-8").read()
    for note in [
        "pass pred_field",
        "windows=",
        "shuffle_labels",
        "no scored sample is flagged by tag",
        "per_class=False",
    ]:
        assert note in page
    assert sorted(os.listdir(tmp_path)) == ["grid_highest.png", "grid_lowest.png", "report.html", "vog_histogram.png"]
    assert _valid_png(tmp_path / "grid_lowest.png")[0] == 3 * 100 + 4
    assert set(out["analysis"]) == {"distribution", "grids"}
    assert "skipped: error" in out["summary"]


def test_report_on_a_view_without_run_and_unscored_samples(dataset, tmp_path):
    # scores written by hand: no registered run, so nothing is stored, and None scores are left out
    vals = [float(i) for i in range(len(dataset))]
    vals[5] = None  # a square
    dataset.set_values("vog", vals)
    dataset.set_values("label_shuffled", [True] * 5 + [False] * (len(dataset) - 5))
    view = dataset.match(fo.ViewField("ground_truth.label") != "dots")
    out = fov.vog_report(view, str(tmp_path), print_summary=False)
    assert out["stored_in_run"] is False
    assert out["analysis"]["distribution"]["n"] == 29
    assert out["sections"]["memorization"]["status"] == "ok"
    t = out["analysis"]["memorization"]["ttest"]
    assert (t["n_flagged"], t["n_other"]) == (4, 25)  # flagged 0..4, but 3 is dots (outside the view)
    assert "grid_lowest_dots.png" not in os.listdir(tmp_path) and "grid_lowest_circle.png" in os.listdir(tmp_path)


def test_bad_input_is_a_vog_error(dataset, checkpoint_dir, tmp_path):
    with pytest.raises(fov.VoGError, match="run compute_vog"):
        fov.vog_report(dataset, str(tmp_path))
    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    with pytest.raises(fov.VoGError, match="pred_field='preds' is not a field"):
        fov.vog_report(dataset, str(tmp_path / "x"), pred_field="preds")
    assert not os.path.exists(tmp_path / "x")  # checked before anything is written
    dataset.set_values("vog", [None] * len(dataset))
    with pytest.raises(fov.VoGError, match="no sample has a value"):
        fov.vog_report(dataset, str(tmp_path))


def test_cli_report(audited, tmp_path, capsys):
    out_dir = str(tmp_path / "cli")
    assert (
        main(
            [
                "report",
                audited.name,
                "--out-dir",
                out_dir,
                "--pred-field",
                "predictions",
                "--bins",
                "5",
                "--no-per-class",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "open " + os.path.join(out_dir, "report.html") in printed
    assert os.path.exists(os.path.join(out_dir, "error_by_decile.png"))
    assert not os.path.exists(os.path.join(out_dir, "grid_lowest_circle.png"))
    assert len(fov.load_vog_results(audited).analysis["error"]["by_bin"]["counts"]) == 5
    assert main(["report", audited.name, "--out-dir", out_dir, "--pred-field", "nope"]) == 2
    assert "pred_field='nope' is not a field" in capsys.readouterr().err
    assert main(["report", "no-such-dataset", "--out-dir", out_dir]) == 2
