"""The engine against a naive float64 reference (one sample, one checkpoint at a time)."""

import numpy as np
import pytest
import torch

from fiftyone_vog.engine import (
    VoGEngine,
    VoGError,
    VoGOptions,
    class_normalize,
    class_statistics,
    normalize_windows,
    score_batches,
)

from naive import ALL_OPTIONS, NCLS, C, H, K, N, W, make_models, naive_vog, option_id  # noqa: F401


@pytest.fixture(scope="module")
def models():
    return make_models()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, C, H, W, generator=g)
    y = torch.randint(0, NCLS, (N,), generator=g)
    return x, y


@pytest.mark.parametrize("options", ALL_OPTIONS, ids=option_id)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_engine_equals_naive_reference(models, batch, options, dtype):
    x, y = batch
    y = y.clone()
    if options.label_mode == "auto":
        y[::3] = -1  # some unlabeled samples take the prediction
    windows = {"all": list(range(K)), "early": [0, 1], "late": [2, 3]}
    engine = VoGEngine(models, windows, options, device="cpu", dtype=dtype)
    got = engine.score_batch(x, y)
    for name, idx in windows.items():
        ref = naive_vog(models, x, y, options, idx)
        assert ref.min() > 0  # the test would be vacuous on all-zero scores
        rel = np.abs(got.raw[name].numpy() - ref) / np.abs(ref)
        assert rel.max() < (1e-10 if dtype == torch.float64 else 1e-6), (name, rel.max())


def test_window_equals_separate_run_on_its_checkpoints(models, batch):
    x, y = batch
    full = VoGEngine(models, {"late": [1, 3]}, device="cpu").score_batch(x, y).raw["late"]
    alone = VoGEngine([models[1], models[3]], {"all": [0, 1]}, device="cpu").score_batch(x, y).raw["all"]
    torch.testing.assert_close(full, alone, rtol=0, atol=0)


def test_windowed_mean_is_the_windows_own_mean(models, batch):
    """The authors' windowed code divides the all-checkpoint sum by the window length; we don't."""
    x, y = batch
    opts = VoGOptions()
    eng = VoGEngine(models, {"w": [0, 1]}, opts, device="cpu", dtype=torch.float64)
    s = torch.stack([eng.saliency(k, x.double(), y) for k in range(K)])  # (K, B, H, W)
    wrong_mu = s.sum(0) / 2
    wrong = ((s[:2] - wrong_mu) ** 2).mean(0).mean((1, 2))
    right = eng.score_batch(x, y).raw["w"]
    assert not torch.allclose(right, wrong)


def test_predicted_label_comes_from_last_checkpoint(models, batch):
    x, y = batch
    eng = VoGEngine(models, {"all": [0, 1]}, VoGOptions(label_mode="predicted"), device="cpu")
    out = eng.score_batch(x, y)
    expected = models[-1](x).argmax(1)
    assert torch.equal(out.used_labels, expected)
    assert torch.equal(out.predicted, expected)


def test_batching_and_order_do_not_change_scores(models, batch):
    x, y = batch
    ids = [f"s{i}" for i in range(N)]
    eng = VoGEngine(models, {"all": list(range(K))}, device="cpu")
    seq = score_batches(eng, [(x, y, ids)], ids).raw["all"]
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(3))
    chunks = [perm[i : i + 2] for i in range(0, N, 2)]
    shuffled = [(x[c], y[c], [ids[j] for j in c.tolist()]) for c in chunks]
    got = score_batches(eng, shuffled, ids).raw["all"]
    np.testing.assert_allclose(got, seq, rtol=1e-5)
    again = score_batches(eng, shuffled, ids).raw["all"]
    np.testing.assert_array_equal(again, got)  # deterministic on CPU


def test_loader_that_skips_or_repeats_samples_is_an_error(models, batch):
    x, y = batch
    ids = [f"s{i}" for i in range(N)]
    eng = VoGEngine(models, {"all": [0, 1]}, device="cpu")
    with pytest.raises(VoGError, match="skipped"):
        score_batches(eng, [(x[:3], y[:3], ids[:3])], ids)
    with pytest.raises(VoGError, match="twice"):
        score_batches(eng, [(x[:3], y[:3], ids[:3])] * 2, ids)
    with pytest.raises(VoGError, match="not in the view"):
        score_batches(eng, [(x[:1], y[:1], ["zzz"])], ids)


def test_in_order_batches_then_out_of_order_ones(models, batch):
    """In-order batches are placed by position, later out-of-order ones by id: same scores."""
    x, y = batch
    y = y.clamp_min(0)
    ids = [f"s{i}" for i in range(N)]
    eng = VoGEngine(models, {"all": list(range(K))}, device="cpu")
    seq = score_batches(eng, [(x, y, ids)], ids).raw["all"]
    mixed = [(x[:3], y[:3], ids[:3]), (x[5:], y[5:], ids[5:]), (x[3:5], y[3:5], ids[3:5])]
    np.testing.assert_allclose(score_batches(eng, mixed, ids).raw["all"], seq, rtol=1e-5)
    with pytest.raises(VoGError, match="twice"):  # a repeat of an in-order batch, found by id
        score_batches(eng, [(x[:3], y[:3], ids[:3]), (x[1:2], y[1:2], ids[1:2])], ids)
    with pytest.raises(VoGError, match="not unique"):
        score_batches(eng, [(x[1:2], y[1:2], ids[1:2])], [*ids[:-1], ids[0]])
    # a last batch longer than what is left is not taken for an in-order one
    with pytest.raises(VoGError, match="not in the view"):
        score_batches(eng, [(x[:3], y[:3], ids[:3])], ids[:2])


def test_nan_gradients_are_an_error(models, batch):
    x, y = batch
    bad = make_models(2)
    with torch.no_grad():
        bad[1].head.weight.fill_(float("nan"))
    with pytest.raises(VoGError, match="NaN/inf"):
        VoGEngine(bad, {"all": [0, 1]}, device="cpu").score_batch(x, y)


def test_true_mode_requires_labels(models, batch):
    x, y = batch
    y = y.clone()
    y[0] = -1
    with pytest.raises(VoGError, match="label_mode='auto'"):
        VoGEngine(models, {"all": [0, 1]}, device="cpu").score_batch(x, y)


def test_bad_options_and_windows():
    with pytest.raises(VoGError, match="target"):
        VoGOptions(target="loss")
    with pytest.raises(VoGError, match="only 3 checkpoints"):
        normalize_windows({"w": [0, 5]}, 3)
    with pytest.raises(VoGError, match="twice"):
        normalize_windows({"w": [0, -3]}, 3)
    with pytest.raises(VoGError, match="at least 2"):
        VoGEngine(make_models(1), {"all": [0]}, device="cpu")
    assert normalize_windows({"w": [-1, 0]}, 3) == {"w": [0, 2]}


def test_class_normalize_by_hand():
    v = np.array([1.0, 3.0, 5.0, 2.0, 7.0, 7.0])
    c = np.array([0, 0, 0, 1, 2, 2])  # class 1 has one sample, class 2 zero spread
    sd = np.sqrt(8 / 3)
    np.testing.assert_allclose(class_normalize(v, c), [-2 / sd, 0, 2 / sd, 0, 0, 0])
    np.testing.assert_allclose(class_normalize(v, c, "abs"), [2 / sd, 0, 2 / sd, 0, 0, 0])
    np.testing.assert_array_equal(class_normalize(v, c, "none"), v)
    with pytest.raises(VoGError, match="normalization"):
        class_normalize(v, c, "minmax")
    assert class_statistics(v, c)[0] == {"mean": 3.0, "std": pytest.approx(sd), "count": 3}


def test_score_batches_times_waiting_for_the_loader_apart_from_scoring():
    import time

    models = make_models()
    g = torch.Generator().manual_seed(3)
    xs = [torch.randn(5, 3, 7, 5, generator=g) for _ in range(4)]

    def slow_loader():
        for i, x in enumerate(xs):
            time.sleep(0.05)  # the loader is the bottleneck
            yield x, torch.zeros(5, dtype=torch.long), [f"s{i}_{j}" for j in range(5)]

    ids = [f"s{i}_{j}" for i in range(4) for j in range(5)]
    eng = VoGEngine(models, {"all": list(range(K))}, device="cpu")
    t0 = time.perf_counter()
    raw = score_batches(eng, slow_loader(), ids)
    total = time.perf_counter() - t0
    assert raw.stats["data_wait"] >= 4 * 0.05 and raw.stats["compute"] > 0
    assert raw.stats["data_wait"] + raw.stats["compute"] <= total
