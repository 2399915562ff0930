"""NHWC memory layout on the CPU by default: switched on the first batch only when the model's class
scores are the same in NHWC, kept NCHW (and said why) when the model's forward fails or changes in
NHWC, and the scores equal the naive float64 reference either way."""

import numpy as np
import pytest
import torch
from torch import nn

import fiftyone_vog as fov
from fiftyone_vog.engine import VoGEngine, VoGOptions
from fiftyone_vog.engine.layout import channels_last_checked

from conftest import small_model
from naive import ALL_OPTIONS, K, make_models, naive_vog, option_id

WINDOWS = {"all": list(range(K)), "late": [2, 3]}


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(5)
    return torch.randn(12, 3, 9, 7, generator=g), torch.randint(0, 4, (12,), generator=g)


def _nhwc(m: nn.Module) -> bool:
    return all(p.is_contiguous(memory_format=torch.channels_last) for p in m.parameters() if p.ndim == 4)


@pytest.mark.parametrize("options", ALL_OPTIONS[::3], ids=option_id)
@pytest.mark.parametrize("strategy", ["loop", "split", "vmap"])
def test_the_cpu_default_is_nhwc_and_equals_the_reference(batch, options, strategy):
    x, y = batch
    eng = VoGEngine(make_models(), WINDOWS, options, device="cpu", strategy=strategy)
    assert eng.channels_last is False  # decided on the first batch
    got = eng.score_batch(x, y)
    check = eng.settings["channels_last_check"]
    assert eng.settings["channels_last"] is True and check["channels_last"] is True and check["max_diff"] < 1e-5
    assert all(_nhwc(m) for m in eng.models)
    for w, idx in WINDOWS.items():
        ref = naive_vog(make_models(), x, y, options, idx)
        rel = np.abs(got.raw[w].numpy() - ref) / np.abs(ref)
        assert rel.max() < 1e-6, (w, rel.max())


class _ConvHead(nn.Module):
    """A convolution and a linear head; the subclasses differ in how the head reads the features."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.LazyLinear(4)


class ViewsTheFeatures(_ConvHead):
    """``.view(len(x), -1)`` after the convolutions: raises on NHWC strides."""

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).view(len(x), -1))


class ReadsTheMemory(_ConvHead):
    """Reads the activations in their memory order: another function of the input in NHWC."""

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.head(torch.as_strided(h, (len(h), h[0].numel()), (h.stride(0), 1)))


def _pair(cls, x):
    torch.manual_seed(0)
    models = [cls().eval() for _ in range(2)]
    for m in models:
        m(x[:1])  # materialize the lazy head
    return models


@pytest.mark.parametrize(
    ("cls", "why"),
    [(ViewsTheFeatures, "fails on NHWC inputs (RuntimeError"), (ReadsTheMemory, "class scores changed")],
)
def test_a_forward_that_depends_on_the_layout_keeps_nchw(batch, cls, why):
    x, y = batch
    report = channels_last_checked(_pair(cls, x), x)
    assert report["channels_last"] is False and why in report["why"], report
    eng = VoGEngine(_pair(cls, x), {"all": [0, 1]}, device="cpu")
    got = eng.score_batch(x, y).raw["all"]
    assert eng.settings["channels_last"] is False and why in eng.settings["channels_last_check"]["why"]
    assert not any(_nhwc(m) for m in eng.models)  # put back
    plain = VoGEngine(_pair(cls, x), {"all": [0, 1]}, device="cpu", channels_last=False).score_batch(x, y).raw["all"]
    assert torch.equal(got, plain)  # the very same computation
    ref = naive_vog(_pair(cls, x), x, y, VoGOptions(), [0, 1])
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-6)


def test_what_is_not_checked():
    mlp = [nn.Sequential(nn.Flatten(), nn.Linear(12, 4)) for _ in range(2)]
    assert channels_last_checked(mlp, torch.zeros(2, 3, 2, 2)) == {
        "channels_last": False,
        "why": "the model has no 2-d convolution",
    }
    assert "not images" in channels_last_checked(mlp, torch.zeros(2, 12))["why"]
    off = VoGEngine(make_models(), WINDOWS, device="cpu", channels_last=False)  # asked: never checked
    f64 = VoGEngine(make_models(), WINDOWS, device="cpu", dtype=torch.float64)  # float64: not the measured case
    x, y = torch.randn(4, 3, 9, 7), torch.zeros(4, dtype=torch.long)
    for eng in (off, f64):
        eng.score_batch(x, y)
        assert eng.settings["channels_last"] is False and "channels_last_check" not in eng.settings
        assert not any(_nhwc(m) for m in eng.models)


def test_compute_vog_records_the_layout_and_the_cli_can_turn_it_off(dataset, checkpoint_dir):
    from fiftyone_vog import cli

    res = fov.compute_vog(dataset, checkpoint_dir, model=small_model, vog_field="nhwc")
    engine = dataset.get_run_info("nhwc").config.engine  # the run's stored record
    assert engine["channels_last"] is True and engine["channels_last_check"]["channels_last"] is True
    nchw = fov.compute_vog(dataset, checkpoint_dir, model=small_model, vog_field="nchw", channels_last=False)
    assert nchw.config["engine"]["channels_last"] is False and res.ids == nchw.ids
    # float32 rounding moves (one sample of these sits within rounding of a kink: test_folding.py)
    a, b = np.array(dataset.values("nhwc_raw")), np.array(dataset.values("nchw_raw"))
    rel = np.abs(a - b) / np.abs(b)
    assert (rel < 1e-5).sum() >= len(rel) - 1 and rel.max() < 1e-2, np.sort(rel)[-3:]
    parser = cli.build_parser()
    base = ["compute", "ds", "--checkpoints", "x"]
    assert parser.parse_args(base).channels_last is None
    assert parser.parse_args([*base, "--no-channels-last"]).channels_last is False
    assert parser.parse_args([*base, "--channels-last"]).channels_last is True
