"""The paper-reproduction examples run in their reduced (``--quick``) size and print their tables.

Each example's ``main(argv)`` is imported from ``examples/`` and called in-process (one is also run
as a script); the helpers they share are checked against hand computations.
"""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT  # noqa: E402

EXAMPLES = os.path.join(ROOT, "examples")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load_example(name):
    if EXAMPLES not in sys.path:
        sys.path.insert(0, EXAMPLES)
    spec = importlib.util.spec_from_file_location(f"example_{name}", os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """The examples set torch's thread count; give the rest of the test session its own back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == PNG_MAGIC


# -- shared helpers ------------------------------------------------------------------
def test_shuffle_labels_array_changes_exactly_the_flagged_labels():
    C = load_example("_common")
    labels = np.arange(100) % 10
    new, flag = C.shuffle_labels_array(labels, 0.2, 10, seed=3)
    assert flag.sum() == 20
    assert (new[flag] != labels[flag]).all()  # a shuffled label is always a wrong one
    assert (new[~flag] == labels[~flag]).all()
    assert new.min() >= 0 and new.max() <= 9
    again, flag2 = C.shuffle_labels_array(labels, 0.2, 10, seed=3)
    assert (again == new).all() and (flag2 == flag).all()


def test_digits_images_shapes_and_range():
    C = load_example("_common")
    raw, y = C.digits_images(8)
    big, _ = C.digits_images(16)
    assert raw.shape == (1797, 8, 8) and big.shape == (1797, 16, 16)
    assert raw.dtype == np.uint8 and raw.max() == 255 and raw.min() == 0  # 0..16 scaled to 0..255
    assert sorted(set(y.tolist())) == list(range(10))
    x = C.to_tensor(raw[:4], channels=3)
    assert x.shape == (4, 3, 8, 8) and float(x.max()) <= 1.0


def test_vog_on_tensors_matches_a_naive_computation():
    C = load_example("_common")
    from fiftyone_vog.models import MLP

    torch.manual_seed(0)
    models = [MLP(in_features=4, hidden=5, num_classes=3).double().eval() for _ in range(3)]
    x = torch.randn(6, 1, 2, 2, dtype=torch.float64)
    y = np.array([0, 1, 2, 0, 1, 2])
    out = C.vog_on_tensors([m.float() for m in models], x.float(), y, {"all": [0, 1, 2]}, normalization="none")
    grads = []
    for m in models:
        xi = x.clone().requires_grad_(True)
        m.double()(xi).gather(1, torch.as_tensor(y)[:, None]).sum().backward()
        grads.append(xi.grad.sum(1))  # channel sum: (6, 2, 2)
    naive = torch.stack(grads).var(0, unbiased=False).mean((1, 2)).numpy()
    np.testing.assert_allclose(out["raw"]["all"], naive, rtol=1e-4)
    np.testing.assert_allclose(out["score"]["all"], naive, rtol=1e-4)


def test_format_table_exact_text():
    C = load_example("_common")
    text = C.format_table(["a", "value"], [["x", 0.5], ["long", 1e-5]], title="T")
    assert text.splitlines() == ["T", "   a     value", "-" * 14, "   x     0.500", "long  1.00e-05"]


# -- the toy Gaussians (Fig. 1) -------------------------------------------------------------
def test_boundary_distance_of_a_linear_model_is_the_perpendicular_distance():
    toy = load_example("toy_gaussians")

    class Linear(torch.nn.Module):  # logit_1 - logit_0 = 3x - 4y + 2: boundary 3x - 4y + 2 = 0
        def forward(self, x):
            p = x.flatten(1)
            return torch.stack([torch.zeros(len(p)), 3 * p[:, 0] - 4 * p[:, 1] + 2], 1)

    pts = np.array([[0.0, 0.0], [1.0, 1.0], [-2.0, 1.0], [2.0, -1.0]], dtype=np.float32)
    dist, _ = toy.boundary_distance(Linear(), pts, resolution=800)
    exact = np.abs(3 * pts[:, 0] - 4 * pts[:, 1] + 2) / 5
    np.testing.assert_allclose(dist, exact, atol=5e-3)


def test_toy_gaussians_quick(tmp_path, capsys):
    res = load_example("toy_gaussians").main(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "Spearman(VoG, distance to final boundary)" in out
    for target in ("logit", "probability"):
        for stage in ("early", "middle", "late"):
            s = res["summary"][target, stage]
            assert -1 <= s["mean"] <= 1
            assert f"{target}" in out and stage in out
    # the paper's claim holds on the toy data: closer to the boundary, higher VoG
    assert res["summary"]["logit", "early"]["mean"] < -0.3
    assert res["summary"]["probability", "late"]["mean"] < -0.3
    assert res["test_accuracy"] > 0.7
    assert is_png(res["plot"])


def test_toy_gaussians_runs_as_a_script(tmp_path):
    env = dict(os.environ)
    r = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, "toy_gaussians.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "spearman_test" in r.stdout and os.path.isfile(tmp_path / "toy_gaussians.png")


# -- digits experiments -------------------------------------------------------------------------
def test_digits_memorization_quick(tmp_path, capsys):
    res = load_example("digits_memorization").main(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert res["n_shuffled"] == 60  # 20% of 300 training samples
    assert len(res["summary"]) == 2 * 2 * 6 + 2 * 2  # lengths × targets × windows + lengths × (loss, margin)
    for (epochs, target, _window), s in res["summary"].items():
        assert epochs in (6, 12) and target in ("logit", "probability", "companion")
        assert 0 <= s["auroc"] <= 1 and 0 <= s["p"] <= 1
    assert set(res["fit_shuffled"]) == {6, 12} and all(0 <= v <= 1 for v in res["fit_shuffled"].values())
    assert "welch_t" in out and "auroc" in out and "shuffled samples fitting their (wrong) label" in out
    assert is_png(res["plot"])


def test_digits_memorization_resnet_recipe_quick(tmp_path, capsys):
    """The paper-recipe variant: ¼-width ResNet-18 at 32×32, thirds + late half, one JSON per seed."""
    res = load_example("digits_memorization").main(["--recipe", "resnet", "--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert res["n_shuffled"] == 20  # 20% of 100 training samples
    windows = ("early", "middle", "late", "late_half", "all")
    assert set(res["summary"]) == {(6, t, w) for t in ("logit", "probability") for w in windows} | {
        (6, "companion", c) for c in ("loss", "margin")
    }
    assert "[training:" in out and "[VoG, probability target:" in out and "late_half" in out
    saved = json.load(open(tmp_path / "digits_memorization_resnet_seed0.json"))
    assert saved["n_train"] == 100 and len(saved["rows"]) == 2 * 5 + 2 and saved["seconds"] > 0
    for row in saved["rows"]:
        assert 0 <= row["auroc"] <= 1 and 0 <= row["auroc_raw"] <= 1 and 0 <= row["prec_k"] <= 1
    assert is_png(res["plot"]) and res["plot"].endswith("digits_memorization_resnet.png")
    table = load_example("digits_memorization").main(["--summarize", str(tmp_path)])["table"]
    assert "over seeds [0]" in table and len(table.splitlines()) == 3 + 2 * 5 + 2  # title, header, rule, rows
    late_half = next(r for r in saved["rows"] if (r["target"], r["window"]) == ("probability", "late_half"))
    assert f"{late_half['auroc']:.3f}" in next(line for line in table.splitlines() if "probability  late_half" in line)


def test_resnet_recipe_schedule_and_crops():
    mem = load_example("digits_memorization")
    assert [mem.step_lr(e, 100) for e in (1, 50, 51, 75, 76, 100)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3])
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 3, 3] = 1.0  # one lit pixel: a crop of the 4-padded image moves it by at most 4 in each direction
    moved = mem.random_crop(x, 4, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and float(moved.sum()) <= 64
    pos = [divmod(int(m.flatten().argmax()), 8) for m in moved if m.sum() > 0]
    assert all(abs(r - 3) <= 4 and abs(c - 3) <= 4 for r, c in pos) and len(set(pos)) > 5  # not one fixed shift


def test_cifar_resnet18_runs_from_saved_state_dicts(tmp_path):
    from fiftyone_vog.inputs.checkpoints import import_callable, load_models
    from fiftyone_vog.inputs.training import CheckpointSaver
    from fiftyone_vog.models import CifarResNet18

    assert import_callable("fiftyone_vog.models:CifarResNet18") is CifarResNet18  # nameable as model=
    torch.manual_seed(0)
    m = CifarResNet18(num_classes=10, in_channels=1, width=4)
    assert sum(isinstance(b, torch.nn.BatchNorm2d) for b in m.modules()) == 1 + 8 * 2 + 3  # stem, blocks, projections
    m.train()(torch.rand(8, 1, 32, 32))  # move the BatchNorm running statistics off their initial values
    path = CheckpointSaver(tmp_path).save(m.eval(), 1)
    (loaded,) = load_models([path], model=lambda: CifarResNet18(num_classes=10, in_channels=1, width=4))
    x = torch.rand(3, 1, 32, 32)
    out = loaded.eval()(x)  # eval first: a train-mode call would move the loaded running statistics
    assert out.shape == (3, 10)
    torch.testing.assert_close(out, m(x))


def test_the_memorizing_recipes_network_is_nameable():
    """``MEMORIZING_RECIPE["name"]`` builds the recipe's network from no arguments (what the App,
    the CLI and ``compute_vog(model=)`` do) and takes a ``CifarResNet18(width=16)``'s weights."""
    from fiftyone_vog.inputs.checkpoints import import_callable, known_architectures
    from fiftyone_vog.models import CifarResNet18W16
    from fiftyone_vog.options import MEMORIZING_RECIPE

    assert import_callable(MEMORIZING_RECIPE["name"]) is CifarResNet18W16
    assert {"CifarResNet18W16", MEMORIZING_RECIPE["name"]} <= set(known_architectures())
    torch.manual_seed(0)
    recipe = import_callable(MEMORIZING_RECIPE["model"])(num_classes=8, width=MEMORIZING_RECIPE["width"]).eval()
    named = CifarResNet18W16(num_classes=8)
    named.load_state_dict(recipe.state_dict())  # strict: the same parameters, the same shapes
    x = torch.rand(2, 3, 28, 28)
    torch.testing.assert_close(named.eval()(x), recipe(x))


def test_digits_ood_quick(tmp_path, capsys):
    res = load_example("digits_ood").main(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "1 - max softmax" in out and "OOD share per VoG decile" in out
    assert len(res["shares"]) == 10 and all(0 <= s <= 1 for s in res["shares"])
    for key, s in res["summary"].items():
        assert 0 <= s["auroc"] <= 1, key
    assert res["summary"]["msp"]["auroc"] > 0.6  # the trained model does tell 8/9 from 0-7
    # the companions of the same pass: maxprob is the 1 − max-softmax baseline, computed by the engine
    assert res["summary"]["companion", "auto", "maxprob"]["auroc"] == pytest.approx(
        res["summary"]["msp"]["auroc"], abs=1e-3
    )
    assert res["test_accuracy"] > 0.8
    assert is_png(res["plot"])


def test_decile_error_and_dynamics_quick(tmp_path, capsys):
    res = load_example("decile_error_and_dynamics").main(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "Test error by logit VoG decile" in out and "Stability across 2 seeds" in out
    for w in ("early", "late", "all"):
        assert len(res["curves"][w]) == 10 and all(0 <= e <= 1 for e in res["curves"][w])
        assert -1 <= res["stability"][w]["spearman"] <= 1
        assert 0 <= res["stability"][w]["top10_overlap"] <= 1
    assert is_png(res["plot"])


def test_decile_error_rejects_too_few_epochs(tmp_path):
    with pytest.raises(SystemExit):
        load_example("decile_error_and_dynamics").main(["--epochs", "4", "--out", str(tmp_path)])


# -- the image-folder recipe ------------------------------------------------------------------
def test_paper_lr_schedule():
    recipe = load_example("cifar_imagenet_recipe")
    assert recipe.paper_lr(1, 350) == pytest.approx(0.1)
    assert recipe.paper_lr(150, 350) == pytest.approx(0.1)
    assert recipe.paper_lr(151, 350) == pytest.approx(0.01)
    assert recipe.paper_lr(250, 350) == pytest.approx(0.01)
    assert recipe.paper_lr(251, 350) == pytest.approx(0.001)


def test_recipe_split_layouts(tmp_path):
    recipe = load_example("cifar_imagenet_recipe")
    (tmp_path / "flat" / "cat").mkdir(parents=True)
    assert recipe.splits(str(tmp_path / "flat")) == {"train": str(tmp_path / "flat")}
    for d in ("train/cat", "val/cat"):
        (tmp_path / "tv" / d).mkdir(parents=True)
    assert recipe.splits(str(tmp_path / "tv")) == {
        "train": str(tmp_path / "tv" / "train"),
        "test": str(tmp_path / "tv" / "val"),
    }


def test_recipe_quick_on_a_generated_folder(tmp_path, capsys):
    import fiftyone as fo

    res = load_example("cifar_imagenet_recipe").main(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    try:
        ds = fo.load_dataset(res["dataset"])
        assert ds.count_sample_tags() == {"train": 36, "test": 12}
        assert sorted(ds.distinct("ground_truth.label")) == ["bar", "cross", "disc"]
        schema = ds.get_field_schema()
        for f in ("vog", "vog_raw", "vog_early", "vog_late", "vog_test", "predictions"):
            assert f in schema, f
        assert ds.match_tags("train").count("vog") == 36 and ds.match_tags("test").count("vog_test") == 12
        assert ds.count("predictions") == 48
        assert [os.path.basename(p) for p in res["checkpoints"]] == [f"epoch_{i}.pt" for i in range(1, 7)]
        assert res["views"]["vog-high"] >= 4  # top 10% of 36, ties included
        for html in res["reports"].values():
            assert os.path.getsize(html) > 1000
        assert "error_lowest_bin" in out and "vog_test" in out
    finally:
        if fo.dataset_exists(res["dataset"]):
            fo.delete_dataset(res["dataset"])


def test_recipe_without_data_root_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit):
        load_example("cifar_imagenet_recipe").main(["--out", str(tmp_path)])


def test_audit_workflow_quick(tmp_path, capsys):
    """shuffle → train → VoG → views → export → restore, on the digits through the public API."""
    import csv

    import fiftyone as fo

    res = load_example("audit_workflow").main(["--out", str(tmp_path), "--epochs", "3", "--size", "8"])
    out = capsys.readouterr().out
    assert res["samples"] == 1797 and res["shuffled"] == round(0.2 * 1797)
    assert f"shuffled {res['shuffled']} of 1797 labels" in out and "AUROC" in out
    assert res["views"]["vog-shuffled-labels"] == res["shuffled"]
    assert abs(res["views"]["vog-high"] - 0.1 * 1797) <= 1  # the top 10 %
    assert 0 <= res["vog_high_share_shuffled"] <= 1 and 0 <= res["auroc"] <= 1
    with open(res["csv"]) as f:
        assert sum(1 for _ in csv.DictReader(f)) == res["shuffled"]  # the flagged samples, exported
    assert not fo.dataset_exists("vog-audit-workflow")  # the example cleans up after itself
    assert json.load(open(tmp_path / "audit_workflow.json"))["shuffled"] == res["shuffled"]


def test_memorization_fit_quick(capsys):
    """Every recipe trains through train_classifier with its optimizer and reports its fit."""
    res = load_example("memorization_fit").main(["--quick"])
    assert res["n_shuffled"] == 20 and set(res["runs"]) == {"demo", "smallcnn-adamw", "resnet-sgd", "memorizing"}
    for run in res["runs"].values():
        assert set(run["curve"]) == {2} and all(0 <= v <= 1 for v in run["curve"][2])
    assert "fits_shuffled" in capsys.readouterr().out
