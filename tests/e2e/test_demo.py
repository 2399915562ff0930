"""The demo (``make demo``) end to end in its reduced size: dataset, views, reports, export, re-run.

``examples/demo_digits.py --size small`` is imported and run in-process against the tests'
isolated FiftyOne database: 320 digits (32 per class), 6 epochs.
"""

import importlib.util
import json
import math
import os
import sys

import pytest
import torch

from conftest import ROOT  # noqa: E402

EXAMPLES = os.path.join(ROOT, "examples")
NAME = "vog-digits-test"


def load_demo():
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    spec = importlib.util.spec_from_file_location("example_demo_digits", os.path.join(EXAMPLES, "demo_digits.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    import contextlib
    import io

    import fiftyone as fo

    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("demo")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        res = load_demo().main(["--size", "small", "--out", str(out), "--dataset-name", NAME])
    res["printed"] = printed.getvalue()
    torch.set_num_threads(threads)
    yield res, out
    if fo.dataset_exists(NAME):
        fo.delete_dataset(NAME)


def test_dataset_is_built_as_described(demo_run):
    import fiftyone as fo

    res, out = demo_run
    ds = fo.load_dataset(NAME)
    assert ds.persistent
    assert len(ds) == 320
    assert ds.count_sample_tags() == {"train": 192, "test": 64, "ood": 64}
    ood = ds.match_tags("ood")
    assert ood.count("ground_truth") == 0  # held out: no label
    assert sorted(ood.distinct("digit")) == [8, 9]
    assert sorted(ds.match_tags(["train", "test"]).distinct("digit")) == list(range(8))
    assert ds.classes["ground_truth"] == [str(d) for d in range(8)]
    assert all(p.startswith(str(out)) and os.path.isfile(p) for p in ds.values("filepath"))


def test_labels_shuffled_on_the_training_split_only(demo_run):
    import fiftyone as fo
    from fiftyone import ViewField as F

    res, _ = demo_run
    ds = fo.load_dataset(NAME)
    train = ds.match_tags("train")
    assert res["shuffled"] == round(0.2 * 192) == train.count_values("label_shuffled")[True]
    flipped = train.match(F("label_shuffled") == True)  # noqa: E712
    assert all(a != b for a, b in zip(*flipped.values(["ground_truth.label", "ground_truth_original.label"])))
    assert ds.match_tags(["test", "ood"]).count("label_shuffled") == 0


def test_checkpoints_vog_fields_and_predictions(demo_run):
    import fiftyone as fo

    import fiftyone_vog as fov

    res, out = demo_run
    assert [os.path.basename(p) for p in res["checkpoints"]] == [f"epoch_{i}.pt" for i in range(1, 7)]
    ds = fo.load_dataset(NAME)
    assert set(fov.list_vog_runs(ds)) == {"vog", "vog_test"}
    assert ds.match_tags("train").count("vog") == 192 and ds.match_tags("train").count("vog_test") == 0
    assert ds.match_tags(["test", "ood"]).count("vog_test") == 128 and ds.match_tags(["test", "ood"]).count("vog") == 0
    for f in ("vog_raw", "vog_early", "vog_middle", "vog_late", "vog_test_early_raw"):
        assert f in ds.get_field_schema(), f
    cfg = fov.get_vog_run(ds, "vog_test").config
    assert cfg.label_mode == "auto" and cfg.target == "probability" and len(cfg.checkpoints) == 6
    assert fov.get_vog_run(ds, "vog").config.label_mode == "true"
    assert ds.count("predictions") == 320
    assert set(ds.distinct("predictions.label")) <= {str(d) for d in range(8)}


def test_views_are_saved_and_sorted(demo_run):
    import fiftyone as fo

    res, _ = demo_run
    ds = fo.load_dataset(NAME)
    names = {
        "vog-high",
        "vog-low",
        "vog-shuffled-labels",
        "vog-label-errors",
        "vog-test-high",
        "vog-test-low",
        "vog-ood",
        "vog-likely-ood",
    }
    assert set(ds.list_saved_views()) == names  # no vog-test-shuffled-labels / vog-test-ood: left out
    assert set(res["views"]) == names
    assert res["views"]["vog-shuffled-labels"] == res["shuffled"]
    assert res["views"]["vog-ood"] == 64
    high = ds.load_saved_view("vog-high")
    assert len(high) == res["views"]["vog-high"] >= 20  # 10% of 192, rounded up, ties included
    scores = high.values("vog")
    assert scores == sorted(scores, reverse=True)
    assert set(high.distinct("tags")) == {"train"}
    ood = ds.load_saved_view("vog-ood").values("vog_test_raw")  # raw: class z-scores hide OOD samples
    assert ood == sorted(ood, reverse=True)
    assert "by vog_test_raw" in ds.get_saved_view_info("vog-ood")["description"]
    test_low = ds.load_saved_view("vog-test-low").values("vog_test")
    assert test_low == sorted(test_low) and len(test_low) >= 13  # 10% of 128, rounded up
    # vog-likely-ood: all of test + OOD, by the run's energy, without reading the tags
    likely = ds.load_saved_view("vog-likely-ood")
    assert len(likely) == 128 and likely.values("vog_test_energy") == sorted(
        likely.values("vog_test_energy"), reverse=True
    )
    assert res["likely_ood_first"] == len(likely.limit(64).match_tags("ood"))
    # vog-label-errors: the training samples whose mean loss is above ln 2
    loss = ds.match_tags("train").values("vog_loss")
    errors = ds.load_saved_view("vog-label-errors").values("vog_loss")
    assert errors == sorted((v for v in loss if v > math.log(2)), reverse=True)
    test_high = ds.load_saved_view("vog-test-high")
    assert min(test_high.values("vog_test")) >= max(
        v for v in ds.match_tags(["test", "ood"]).values("vog_test") if v not in test_high.values("vog_test")
    )


def test_reports_and_export_exist(demo_run):
    res, out = demo_run
    for html in res["reports"]:
        assert os.path.isfile(html) and os.path.getsize(html) > 1000
    assert os.path.isfile(out / "report" / "train" / "shuffled_ttest.png")
    assert os.path.isfile(out / "report" / "test" / "ood_share.png")
    exported = [f for _, _, files in os.walk(res["export"]) for f in files if f.endswith(".png")]
    assert len(exported) == res["views"]["vog-high"]
    assert set(os.listdir(res["export"])) - {".fiftyone-vog-export.json"} <= {str(d) for d in range(8)}  # class folders


def test_printed_output_shows_the_detector_tables_and_which_score(demo_run):
    """What make demo prints: each report's detectors side by side, best first, and the verdict."""
    import fiftyone as fo

    from fiftyone_vog.analysis import detector_table_from_view

    res, _ = demo_run
    printed = res["printed"]
    ds = fo.load_dataset(NAME)
    train = detector_table_from_view(ds.match_tags("train"), "vog", flag_field="label_shuffled")
    ood = detector_table_from_view(ds.match_tags(["test", "ood"]), "vog_test", tag="ood")
    lines = printed.splitlines()
    for heading, table in (("shuffled labels:", train), ("out-of-distribution (tag 'ood'):", ood)):
        start = next(i for i, line in enumerate(lines) if line.strip().startswith(heading))
        assert [line.split()[0] for line in lines[start + 2 : start + 2 + len(table.rows)]] == [
            r["score"] for r in table.rows
        ]
    assert "OOD by vog_test_raw:" in printed and "AUROC of vog_test_raw" in printed
    assert len(res["verdicts"]) == 2 and all(
        v.startswith("Which score: for label errors open ") for v in res["verdicts"]
    )
    assert f"training split: {res['verdicts'][0]}" in printed and f"test + OOD:     {res['verdicts'][1]}" in printed
    assert "'vog-likely-ood' ranks all of test + OOD without looking at the tags, by vog_test_energy" in printed


def test_label_error_rules_measure_the_demos_split(demo_run, capsys):
    """examples/label_error_rules.py (the docs' precision/recall table) against a count by hand."""
    import fiftyone as fo
    import numpy as np

    spec = importlib.util.spec_from_file_location("label_error_rules", os.path.join(EXAMPLES, "label_error_rules.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    got = module.main(["--dataset", NAME])[NAME]
    train = fo.load_dataset(NAME).match_tags("train")
    loss, flag = (np.array(train.values(f)) for f in ("vog_loss", "label_shuffled"))
    sel = loss > math.log(2)
    assert got["even-odds"]["n"] == sel.sum() == len(fo.load_dataset(NAME).load_saved_view("vog-label-errors"))
    assert got["even-odds"]["recall"] == (sel & flag).sum() / flag.sum()
    assert got["percentile"]["n"] == math.ceil(0.1 * len(loss))
    assert "| vog-digits-test | even-odds |" in capsys.readouterr().out


def test_rerun_replaces_the_dataset_and_stale_checkpoints(demo_run, capsys):
    import fiftyone as fo

    res, out = demo_run
    threads = torch.get_num_threads()
    again = load_demo().main(["--size", "small", "--out", str(out), "--dataset-name", NAME, "--epochs", "7"])
    torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    ds = fo.load_dataset(NAME)
    assert len(ds) == 320 and ds.count_sample_tags()["train"] == 192
    # the stale epochs are gone; CheckpointSaver's manifest lists the new ones
    assert sorted(os.listdir(out / "checkpoints")) == sorted(
        [*(f"epoch_{i}.pt" for i in range(1, 8)), "vog_checkpoints.json"]
    )
    manifest = json.loads((out / "checkpoints" / "vog_checkpoints.json").read_text())
    assert [c["epoch"] for c in manifest["checkpoints"]] == list(range(1, 8))
    assert len(again["checkpoints"]) == 7
    assert "fiftyone app launch vog-digits-test" in printed and "[9/9] done" in printed


def test_rejects_a_single_epoch(tmp_path):
    with pytest.raises(SystemExit):
        load_demo().main(["--size", "small", "--out", str(tmp_path), "--epochs", "1", "--dataset-name", NAME + "-x"])


def test_recipe_follows_the_image_size(tmp_path, capsys):
    """At MNIST's 28×28 the demo trains the memorizing recipe (SmallCNN fits 7% of the shuffled
    labels there, docs/results.md), names it so the App and the CLI can score again, and says
    when the shuffled labels are not fitted (6 epochs of the small run do not fit them)."""
    import fiftyone as fo

    import fiftyone_vog as fov

    demo = load_demo()
    assert [demo.choose_recipe("auto", s) for s in (8, 16, 28)] == ["smallcnn", "memorizing", "memorizing"]
    assert demo.choose_recipe("smallcnn", 28) == "smallcnn"
    name = NAME + "-28"
    threads = torch.get_num_threads()
    try:
        demo.main(["--size", "small", "--image-size", "28", "--out", str(tmp_path), "--dataset-name", name])
        torch.set_num_threads(threads)
        printed = capsys.readouterr().out
        assert "training CifarResNet18W16 (adamw, lr 0.001) for 6 epochs" in printed
        assert "note: under 90% of the shuffled labels are fitted" in printed
        assert "Model         CifarResNet18W16" in printed
        ds = fo.load_dataset(name)
        assert fov.get_vog_run(ds, "vog").config.model == "fiftyone_vog.models:CifarResNet18W16"
        assert ds.match_tags("train").count("vog") == 192
    finally:
        torch.set_num_threads(threads)
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def test_the_default_run_names_its_recipe(demo_run):
    res, _ = demo_run
    assert "training SmallCNN (sgd, lr 0.05) for 6 epochs" in res["printed"]
    assert "Model         SmallCNN" in res["printed"]
