"""The demo (``make demo``) end to end in its reduced size: dataset, views, reports, export, re-run.

``examples/demo_digits.py --size small`` is imported and run in-process against the tests'
isolated FiftyOne database: 320 digits (32 per class), 6 epochs.
"""

import importlib.util
import json
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
    import fiftyone as fo

    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("demo")
    res = load_demo().main(["--size", "small", "--out", str(out), "--dataset-name", NAME])
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
