"""The engine's speed options (vmap, channels_last, bf16 autocast) against the plain loop and the
naive float64 reference; the options' errors; CUDA paths where a GPU exists."""

import threading

import numpy as np
import pytest
import torch

from fiftyone_vog.core.threads import torch_threads
from fiftyone_vog.engine import VoGEngine, VoGError, VoGOptions, gradients, score_batches
from fiftyone_vog.inputs.checkpoints import load_models, resolve_checkpoints

from conftest import make_images, small_model, to_tensor
from naive import ALL_OPTIONS, K, make_models, naive_vog, option_id

WINDOWS = {"all": list(range(K)), "odd": [1, 3], "late": [2, 3]}  # "odd" is not contiguous
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(scope="module")
def models():
    return make_models()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(9, 3, 7, 5, generator=g)
    y = torch.randint(0, 4, (9,), generator=g)
    y[::4] = -1  # unlabeled samples for label_mode="auto"
    return x, y


def _labels(options, y):
    return y if options.label_mode == "auto" else y.clamp_min(0)


@pytest.mark.parametrize("options", ALL_OPTIONS, ids=option_id)
def test_vmap_equals_loop_and_reference(models, batch, options):
    x, y = batch
    y = _labels(options, y)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        loop = VoGEngine(models, WINDOWS, options, device="cpu", dtype=dtype, strategy="loop").score_batch(x, y)
        vmap = VoGEngine(models, WINDOWS, options, device="cpu", dtype=dtype, strategy="vmap").score_batch(x, y)
        assert torch.equal(loop.used_labels, vmap.used_labels)
        for w, idx in WINDOWS.items():
            ref = naive_vog(models, x, y, options, idx)
            for got in (loop.raw[w], vmap.raw[w]):
                rel = np.abs(got.numpy() - ref) / np.abs(ref)
                assert rel.max() < tol, (w, dtype, rel.max())
            np.testing.assert_allclose(vmap.raw[w].numpy(), loop.raw[w].numpy(), rtol=tol, atol=0)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_channels_last_changes_nothing(models, batch, strategy):
    x, y = batch
    y = y.clamp_min(0)
    plain = VoGEngine(models, WINDOWS, device="cpu", strategy=strategy, dtype=torch.float64).score_batch(x, y)
    nhwc = VoGEngine(
        models, WINDOWS, device="cpu", strategy=strategy, dtype=torch.float64, channels_last=True
    ).score_batch(x, y)
    for w in WINDOWS:
        np.testing.assert_allclose(nhwc.raw[w].numpy(), plain.raw[w].numpy(), rtol=1e-12, atol=0)


def test_reused_buffers_do_not_leak_between_batches(models):
    """The engine reuses its scratch buffers: each batch's scores must be its own."""
    g = torch.Generator().manual_seed(11)
    xs = [torch.randn(n, 3, 7, 5, generator=g) for n in (6, 6, 3)]  # last batch smaller
    ys = [torch.randint(0, 4, (len(x),), generator=g) for x in xs]
    ids = [f"s{i}" for i in range(15)]
    batches = [(xs[0], ys[0], ids[:6]), (xs[1], ys[1], ids[6:12]), (xs[2], ys[2], ids[12:])]
    for strategy in ("loop", "vmap"):
        eng = VoGEngine(models, WINDOWS, device="cpu", strategy=strategy)
        together = score_batches(eng, batches, ids).raw
        for (x, y, bid), lo in zip(batches, (0, 6, 12)):
            alone = VoGEngine(models, WINDOWS, device="cpu", strategy=strategy).score_batch(x, y).raw
            for w in WINDOWS:
                np.testing.assert_array_equal(together[w][lo : lo + len(bid)], alone[w].numpy())


def test_prediction_comes_from_last_checkpoint_even_outside_the_windows(models, batch):
    x, y = batch
    expected = models[-1](x).argmax(1)
    for strategy in ("loop", "vmap"):
        eng = VoGEngine(models, {"early": [0, 1]}, VoGOptions(label_mode="predicted"), device="cpu", strategy=strategy)
        out = eng.score_batch(x, y)
        assert torch.equal(out.predicted, expected) and torch.equal(out.used_labels, expected)


@pytest.fixture(scope="module")
def trained(checkpoint_dir):
    ms = load_models(resolve_checkpoints(checkpoint_dir), small_model)
    imgs, labels = make_images(200, seed=9)
    return ms, to_tensor(imgs), torch.from_numpy(labels)


def _rho(a, b):
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    return np.corrcoef(rank(a), rank(b))[0, 1]


@pytest.mark.parametrize("target", ["logit", "probability"])
@pytest.mark.parametrize("autocast, min_rho", [("bf16", 0.999), ("fp16", 0.9999)])
def test_autocast_keeps_the_ranking(trained, target, autocast, min_rho):
    """Mixed precision changes values a little, not the order (trained checkpoints, real images).

    Measured here (200 images): Spearman with float32 0.9996–0.9998 (bf16) and 0.99996–0.99999
    (fp16) with the input layer in float32; 0.9981–0.9991 and 0.9999 with everything in half
    precision.
    """
    ms, x, y = trained
    opts = VoGOptions(target=target)
    windows = {"all": list(range(len(ms)))}
    fp32 = VoGEngine(ms, windows, opts, device="cpu").score_batch(x, y).raw["all"].numpy()
    eng = VoGEngine(ms, windows, opts, device="cpu", autocast=autocast)
    assert eng.strategy == "loop"  # the CPU's default
    low = eng.score_batch(x, y).raw["all"].numpy()
    assert eng.settings["autocast"] == autocast and eng.settings["fp32_input_layer"] == "features.0"
    assert not np.array_equal(low, fp32)  # it really ran in low precision
    assert _rho(low, fp32) >= min_rho
    assert np.median(np.abs(low - fp32) / fp32) < 0.01
    # everything in half precision is a different computation, and no closer to float32
    plain = VoGEngine(ms, windows, opts, device="cpu", autocast=autocast, fp32_input_layer=False)
    half = plain.score_batch(x, y).raw["all"].numpy()
    assert plain.settings["fp32_input_layer"] is None and not np.array_equal(half, low)
    assert _rho(half, fp32) <= _rho(low, fp32)
    # the hooks live only during a pass: the caller's models come back untouched
    assert all(not mod._forward_pre_hooks and not mod._forward_hooks for m in ms for mod in m.modules())


def test_fp16_keeps_confident_samples_from_underflowing():
    """Softmax-probability gradients of confident samples are below fp16's range; the engine
    scales each sample's target by a power of two and back (without it: 128 of 300 maps were 0
    here, Spearman 0.93)."""
    torch.manual_seed(0)
    ms = []
    for k in range(4):
        m = small_model(num_classes=4)
        with torch.no_grad():
            m.head.weight.mul_(3000 * (1 + 0.1 * k))
        ms.append(m)
    x = torch.rand(300, 3, 16, 16)
    y = ms[-1](x).argmax(1)
    prob = torch.softmax(ms[-1](x).double(), 1).max(1).values
    assert ((prob * (1 - prob)) < 6e-8).float().mean() > 0.5  # unscaled, these would underflow in fp16
    opts, windows = VoGOptions(target="probability"), {"all": [0, 1, 2, 3]}
    fp32 = VoGEngine(ms, windows, opts, device="cpu").score_batch(x, y).raw["all"].numpy()
    fp16 = VoGEngine(ms, windows, opts, device="cpu", autocast="fp16").score_batch(x, y).raw["all"].numpy()
    assert (fp32 > 0).all() and (fp16 > 0).all()
    assert _rho(fp16, fp32) >= 0.999


def test_fp16_scale_is_a_power_of_two_that_keeps_logit_gradients_at_most_one():
    from fiftyone_vog.engine.precision import fp16_scaled_probability

    out = torch.tensor([[0.0, 0.0], [20.0, 0.0], [60.0, 0.0], [0.0, 5.0]], requires_grad=True)
    p = torch.tensor([0, 0, 0, 0])
    score, scale = fp16_scaled_probability(out, p)
    q = torch.softmax(out.detach().double(), 1)
    spread = (q[:, 0] * q[:, 1]).numpy()  # p(1 − p), with 1 − p from the other class (exact near p = 1)
    s = scale.double().numpy()
    assert np.array_equal(np.log2(s), np.round(np.log2(s)))  # powers of two: dividing back is exact
    assert (s * spread <= 1).all() and (s * spread > 0.5).all()  # gradient at the logits in (½, 1]
    assert s[0] == 4  # p = ½: p(1 − p) = ¼
    (g,) = torch.autograd.grad(score, out)  # scaled back, it is the float32 engine's gradient
    (ref,) = torch.autograd.grad(torch.softmax(out, 1)[:, 0].sum(), out)
    np.testing.assert_allclose((g / scale[:, None]).numpy(), ref.numpy(), rtol=1e-5, atol=1e-30)


def test_autocast_all_means_every_layer_in_half_precision(trained):
    ms, x, y = trained
    windows = {"all": list(range(len(ms)))}
    short = VoGEngine(ms, windows, device="cpu", autocast="bf16-all")
    spelled = VoGEngine(ms, windows, device="cpu", autocast="bf16", fp32_input_layer=False)
    np.testing.assert_array_equal(
        short.score_batch(x, y).raw["all"].numpy(), spelled.score_batch(x, y).raw["all"].numpy()
    )
    assert short.settings == spelled.settings and short.settings["autocast"] == "bf16"
    assert short.settings["fp32_input_layer"] is None


def test_input_layer_is_the_first_layer_that_runs():
    import torchvision

    from fiftyone_vog.engine.precision import find_input_layer

    x = torch.randn(2, 3, 32, 32)
    assert find_input_layer(torchvision.models.resnet18(num_classes=3), x) == "conv1"
    assert find_input_layer(small_model(), x) == "features.0"

    class HeadFirst(torch.nn.Module):  # registered in one order, run in another
        def __init__(self):
            super().__init__()
            self.head = torch.nn.Linear(8, 2)
            self.stem = torch.nn.Conv2d(3, 8, 3)

        def forward(self, x):
            return self.head(self.stem(x).mean((2, 3)))

    assert find_input_layer(HeadFirst(), x) == "stem"
    assert find_input_layer(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Softmax(1)), x) is None
    assert find_input_layer(torch.jit.script(HeadFirst()), x) is None
    m = HeadFirst()
    find_input_layer(m, x)
    assert not m.stem._forward_pre_hooks  # the search leaves no hook behind


def test_autocast_without_an_input_layer_module_still_runs(batch):
    """TorchScript checkpoints: no module to keep in float32, plain autocast."""
    x, y = batch
    y = y.clamp_min(0)
    scripted = [torch.jit.script(m) for m in make_models()[:2]]
    eng = VoGEngine(scripted, {"all": [0, 1]}, device="cpu", autocast="bf16")
    out = eng.score_batch(x, y).raw["all"]
    assert torch.isfinite(out).all() and eng.settings["fp32_input_layer"] is None


def test_option_errors(models):
    with pytest.raises(VoGError, match="strategy='gpu' is not supported"):
        VoGEngine(models, {"all": [0, 1]}, device="cpu", strategy="gpu")
    with pytest.raises(VoGError, match="autocast='fp8' is not supported"):
        VoGEngine(models, {"all": [0, 1]}, device="cpu", autocast="fp8")
    with pytest.raises(VoGError, match="float32"):
        VoGEngine(models, {"all": [0, 1]}, device="cpu", autocast="bf16", dtype=torch.float64)
    with pytest.raises(VoGError, match="strategy='loop'"):
        VoGEngine(models, {"all": [0, 1]}, device="cpu", autocast="bf16", strategy="vmap")
    other = make_models(1, num_classes=5)[0]
    with pytest.raises(VoGError, match="checkpoint #2 has a different architecture"):
        VoGEngine([models[0], models[1], other], {"all": [0, 1, 2]}, device="cpu", strategy="vmap")


@pytest.mark.usefixtures("small_parts")
def test_torchscript_checkpoints_score_without_vmap(models, batch):
    x, y = batch
    y = y.clamp_min(0)
    scripted = [torch.jit.script(m) for m in models[:2]]
    with pytest.raises(VoGError, match="TorchScript"):
        VoGEngine(scripted, {"all": [0, 1]}, device="cpu", strategy="vmap")
    eng = VoGEngine(scripted, {"all": [0, 1]}, device="cpu", strategy="auto")
    assert eng.strategy == "loop"
    ref = naive_vog(models, x, y, VoGOptions(), [0, 1])
    np.testing.assert_allclose(eng.score_batch(x, y).raw["all"].numpy(), ref, rtol=1e-6)
    split = VoGEngine(scripted, {"all": [0, 1]}, device="cpu", strategy="split")
    with torch_threads(3):  # TorchScript modules called from three threads at once
        np.testing.assert_allclose(split.score_batch(x, y).raw["all"].numpy(), ref, rtol=1e-6)


@cuda
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_cuda_equals_reference(models, batch, strategy):
    """On a GPU, float32 stays IEEE (no TF32), so the 1e-6 contract holds there too."""
    x, y = batch
    y = y.clamp_min(0)
    eng = VoGEngine(models, WINDOWS, device="cuda", strategy=strategy)
    got = eng.score_batch(x, y)
    for w, idx in WINDOWS.items():
        ref = naive_vog(models, x, y, VoGOptions(), idx)
        rel = np.abs(got.raw[w].cpu().numpy() - ref) / np.abs(ref)
        assert rel.max() < 1e-6, (w, rel.max())
    assert torch.backends.cudnn.allow_tf32  # the user's setting is restored afterwards


@cuda
def test_cuda_bf16_channels_last(models, batch):
    x, y = batch
    y = y.clamp_min(0)
    eng = VoGEngine(models, WINDOWS, device="cuda", autocast="bf16")
    assert eng.channels_last  # the CUDA default with autocast
    out = eng.score_batch(x, y)
    assert all(torch.isfinite(v).all() for v in out.raw.values())


@pytest.fixture
def small_parts(monkeypatch):
    """Parts of any size, so that the 9-sample batch is cut (by default no part is under 16)."""
    monkeypatch.setattr(gradients, "SPLIT_MIN_PART", 1)


@pytest.mark.usefixtures("small_parts")
@pytest.mark.parametrize("options", ALL_OPTIONS, ids=option_id)
def test_split_equals_loop_and_reference(models, batch, options):
    """The batch cut into one part per thread: parts of 3 (3 threads, 9 samples), uneven parts
    (4 threads: 2, 2, 3, 2) and one sample per part (more threads than samples) give the loop's
    scores, labels, predictions and companions, in the samples' order."""
    x, y = batch
    y = _labels(options, y)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        loop = VoGEngine(models, WINDOWS, options, device="cpu", dtype=dtype, strategy="loop", companions=True)
        want = loop.score_batch(x, y)
        for n in (3, 4, 16):
            eng = VoGEngine(models, WINDOWS, options, device="cpu", dtype=dtype, strategy="split", companions=True)
            with torch_threads(n):
                got = eng.score_batch(x, y)
                assert torch.get_num_threads() == n  # given back after the batch
            assert torch.equal(got.used_labels, want.used_labels)
            if options.label_mode != "true":
                assert torch.equal(got.predicted, want.predicted)
            for w, idx in WINDOWS.items():
                ref = naive_vog(models, x, y, options, idx)
                assert (np.abs(got.raw[w].numpy() - ref) / np.abs(ref)).max() < tol, (w, n, dtype)
            for key in want.raw:  # the windows and every companion
                np.testing.assert_allclose(got.raw[key].numpy(), want.raw[key].numpy(), rtol=tol, atol=1e-12)


@pytest.mark.usefixtures("small_parts")
def test_split_is_opt_in_and_repeats_exactly(models, batch):
    x, y = batch
    y = y.clamp_min(0)
    assert VoGEngine(models, WINDOWS, device="cpu").strategy == "loop"
    eng = VoGEngine(models, WINDOWS, device="cpu", strategy="split")
    assert eng.settings["strategy"] == "split"  # in the run's record
    with torch_threads(2):
        first = eng.score_batch(x, y).raw["all"].clone()
        again = VoGEngine(models, WINDOWS, device="cpu", strategy="split").score_batch(x, y).raw["all"]
    assert torch.equal(first, again)  # identical inputs, identical scores


@pytest.mark.usefixtures("small_parts")
def test_split_with_one_thread_is_the_loop(models, batch):
    x, y = batch
    y = y.clamp_min(0)
    with torch_threads(1):
        split = VoGEngine(models, WINDOWS, device="cpu", strategy="split").score_batch(x, y)
        loop = VoGEngine(models, WINDOWS, device="cpu", strategy="loop").score_batch(x, y)
    for w in WINDOWS:
        assert torch.equal(split.raw[w], loop.raw[w])


class _Records(torch.nn.Module):
    """Records, per forward pass, the thread, its torch thread count and the part's size."""

    def __init__(self, model, calls):
        super().__init__()
        self.model, self.calls = model, calls

    def forward(self, x):
        self.calls.append((threading.get_ident(), torch.get_num_threads(), x.shape[0]))
        return self.model(x)


@pytest.mark.parametrize(
    ("n_threads", "n", "want"),
    [
        (2, 40, [(20, 1), (20, 1)]),  # one part per thread, one intra-op thread each
        (3, 40, [(20, 2), (20, 1)]),  # parts of ≥ 16 samples: 2 parts, the threads shared 2 + 1
        (4, 40, [(20, 2), (20, 2)]),
        (16, 64, [(16, 4)] * 4),  # a 16-core box, batch 64: 4 parts × 4 threads
        (4, 31, [(31, 4)]),  # no two parts of 16: the loop, on every thread
    ],
)
def test_split_shares_the_threads_among_parts_of_at_least_16(models, n_threads, n, want):
    calls = []
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g)
    # channels_last=False: the layout check's two forward passes would be recorded too
    eng = VoGEngine([_Records(m, calls) for m in models], WINDOWS, device="cpu", strategy="split", channels_last=False)
    with torch_threads(n_threads):
        eng.score_batch(x, y)
        assert torch.get_num_threads() == n_threads
    per_part = {}
    for ident, count, size in calls:
        per_part.setdefault(ident, set()).add((size, count))
    assert all(len(v) == 1 for v in per_part.values())  # each thread: one part, one count
    assert sorted(v.pop() for v in per_part.values()) == sorted(want)
    assert threading.get_ident() in per_part  # the caller's thread takes a part
    assert len(calls) == len(want) * len(models)  # every part runs every checkpoint once


def test_split_bf16_keeps_each_threads_input_layer_in_float32(trained):
    """Each part's pass keeps the input layer in float32 through hooks that act only in their own
    thread: the scores are those of each part scored alone, and no hook or autocast state is left."""
    ms, x, y = trained
    x, y = x[:40], y[:40]
    windows = {"all": list(range(len(ms)))}
    with torch_threads(2):
        got = VoGEngine(ms, windows, device="cpu", autocast="bf16", strategy="split").score_batch(x, y).raw["all"]
    with torch_threads(1):
        alone = VoGEngine(ms, windows, device="cpu", autocast="bf16", strategy="loop")
        parts = torch.cat([alone.score_batch(x[:20], y[:20]).raw["all"], alone.score_batch(x[20:], y[20:]).raw["all"]])
    np.testing.assert_allclose(got.numpy(), parts.numpy(), rtol=1e-6)
    assert not torch.is_autocast_enabled("cpu")
    assert all(not mod._forward_pre_hooks and not mod._forward_hooks for m in ms for mod in m.modules())


class _FailsOnSecondHalf(torch.nn.Module):
    """A model whose forward raises when it gets the batch's later samples (a part on a worker thread)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        if bool((x[:, 0, 0, 0] > 100).any()):
            raise RuntimeError("bad part")
        return self.model(x)


@pytest.mark.usefixtures("small_parts")
def test_an_error_in_a_worker_part_reaches_the_caller(models, batch):
    x, y = batch
    x, y = x.clone(), y.clamp_min(0)
    x[6:, 0, 0, 0] = 1000.0  # in the second of two parts (samples 4 to 8)
    eng = VoGEngine([_FailsOnSecondHalf(m) for m in models], WINDOWS, device="cpu", strategy="split")
    with torch_threads(2):
        with pytest.raises(RuntimeError, match="bad part"):
            eng.score_batch(x, y)
        assert torch.get_num_threads() == 2
        x[6:, 0, 0, 0] = 0.0
        assert torch.isfinite(eng.score_batch(x, y).raw["all"]).all()  # the engine is still usable


class _NaNOnMarked(torch.nn.Module):
    """A diverged checkpoint, for the marked samples only: their scores are NaN."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        marked = x[:, 0, 0, 0:1] > 100
        return self.model(x) * torch.where(marked, float("nan"), 1.0)


@pytest.mark.usefixtures("small_parts")
def test_nan_in_a_worker_part_is_named(models, batch):
    x, y = batch
    x, y = x.clone(), y.clamp_min(0)
    x[7, 0, 0, 0] = 1000.0  # in the second of two parts
    ms = list(models[:2]) + [_NaNOnMarked(models[2])] + list(models[3:])
    with torch_threads(2), pytest.raises(VoGError, match="checkpoint #2 produced NaN/inf"):
        VoGEngine(ms, WINDOWS, device="cpu", strategy="split").score_batch(x, y)
