"""BatchNorm folded into the convolution before it: the same scores as the unfolded model and the
naive float64 reference, only where the computation provably passes through the pair, checked on
the first batch, and never on modules the caller still holds (compute_vog)."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

import fiftyone_vog as fov
from fiftyone_vog.engine import VoGEngine
from fiftyone_vog.engine.folding import fold_batchnorm, fold_checked, foldable_pairs
from fiftyone_vog.inputs.models import SmallCNN

from conftest import small_model
from naive import ALL_OPTIONS, K, make_models, naive_vog, option_id

WINDOWS = {"all": list(range(K)), "late": [2, 3]}


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(3)
    return torch.randn(12, 3, 9, 7, generator=g), torch.randint(0, 4, (12,), generator=g)


def _bn_stats(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.running_mean is not None:
            mod.running_mean.copy_(torch.rand(mod.num_features, generator=g) - 0.5)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            if mod.weight is not None:
                mod.weight.data.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
                mod.bias.data.copy_(torch.rand(mod.num_features, generator=g) - 0.5)
    return m.eval()


def test_folding_is_the_same_function(batch):
    x, _ = batch
    m = _bn_stats(SmallCNN(num_classes=4, width=4).double())
    folded = copy.deepcopy(m)
    assert fold_batchnorm(folded) == ["features.1"]
    assert isinstance(folded.features[1], nn.Identity) and isinstance(m.features[1], nn.BatchNorm2d)
    assert folded.features[0].bias is not None  # the conv had none: the BatchNorm's shift is its bias now
    np.testing.assert_allclose(folded(x.double()).detach(), m(x.double()).detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("options", ALL_OPTIONS[::3], ids=option_id)
@pytest.mark.parametrize("strategy", ["loop", "split", "vmap"])
def test_folded_engine_equals_the_reference(batch, options, strategy):
    x, y = batch
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        models = make_models()
        eng = VoGEngine(models, WINDOWS, options, device="cpu", dtype=dtype, strategy=strategy, fold_batchnorm=True)
        got = eng.score_batch(x, y)
        assert eng.settings["batchnorm_folded"]["folded"] == 1
        assert all(isinstance(m.features[1], nn.Identity) for m in eng.models)  # in place, as documented
        for w, idx in WINDOWS.items():
            ref = naive_vog(make_models(), x, y, options, idx)
            rel = np.abs(got.raw[w].numpy() - ref) / np.abs(ref)
            assert rel.max() < tol, (w, dtype, rel.max())


def test_the_engine_leaves_modules_alone_unless_asked(batch):
    x, y = batch
    models = make_models()
    eng = VoGEngine(models, WINDOWS, device="cpu")
    eng.score_batch(x, y)
    assert "batchnorm_folded" not in eng.settings
    assert all(isinstance(m.features[1], nn.BatchNorm2d) for m in models)


class ConvOwnForward(nn.Conv2d):
    def forward(self, x):
        return super().forward(x) * 2


class BNOwnForward(nn.BatchNorm2d):  # timm's BatchNormAct2d is such a subclass
    def forward(self, x):
        return torch.relu(super().forward(x))


class SeqOwnForward(nn.Sequential):
    def forward(self, x):
        return self[1](self[0](x)) + self[0](x)


class ReadsTheConv(nn.Module):
    """A forward that takes the conv's output (before its BatchNorm) out of the Sequential."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        pre = self.features[0](x)
        post = self.features(x)
        return self.head(torch.cat([pre.mean((2, 3)), post.mean((2, 3))], 1))


def _seq(conv=None, bn=None):
    return nn.Sequential(conv or nn.Conv2d(3, 4, 3), bn or nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(4))


def _hooked_bn():
    bn = nn.BatchNorm2d(4)
    bn.register_forward_hook(lambda *a: None)
    return bn


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: _seq(conv=ConvOwnForward(3, 4, 3)), id="conv-subclass-forward"),
        pytest.param(lambda: _seq(bn=BNOwnForward(4)), id="batchnorm-subclass-forward"),
        pytest.param(lambda: _seq(bn=nn.BatchNorm2d(4, track_running_stats=False)), id="no-running-stats"),
        pytest.param(lambda: _seq(bn=_hooked_bn()), id="hooked"),
        pytest.param(lambda: _seq(bn=nn.BatchNorm1d(4)), id="dimension-mismatch"),
        pytest.param(lambda: SeqOwnForward(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)), id="sequential-own-forward"),
    ],
)
def test_pairs_that_are_not_provably_one_path_are_not_folded(build):
    m = build().eval()
    assert foldable_pairs(m) == []


def test_a_module_used_twice_is_not_folded():
    bn = nn.BatchNorm2d(4)
    m = nn.Module()
    m.a = nn.Sequential(nn.Conv2d(3, 4, 3), bn)
    m.b = nn.Sequential(nn.Conv2d(4, 4, 3), bn)
    assert foldable_pairs(m.eval()) == []


def test_a_forward_that_reads_the_folded_layer_keeps_the_model(batch):
    x, _ = batch
    models = [_bn_stats(ReadsTheConv(), seed=i) for i in range(2)]
    before = [copy.deepcopy(m.state_dict()) for m in models]
    assert foldable_pairs(models[0])  # it looks foldable …
    report = fold_checked(models, x)
    assert report["folded"] == 0 and "changed" in report["why"]  # … but the check on a batch says no
    for m, sd in zip(models, before):
        assert isinstance(m.features[1], nn.BatchNorm2d) and m.features[0].bias is None  # undone
        assert sorted(m.state_dict()) == sorted(sd)
        for k, v in m.state_dict().items():
            assert torch.equal(v, sd[k]), k


def test_nothing_to_fold_is_said():
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4)).eval()
    m(torch.zeros(1, 3, 5, 5))
    report = fold_checked([m, copy.deepcopy(m)], torch.zeros(2, 3, 5, 5))
    assert report == {"folded": 0, "why": "no Conv→BatchNorm pair in an nn.Sequential"}


def test_compute_vog_folds_its_own_modules_and_records_it(dataset, checkpoint_dir):
    user_model = small_model()  # an instance: compute_vog scores deep copies of it
    res = fov.compute_vog(dataset, checkpoint_dir, model=user_model, vog_field="folded")
    assert isinstance(user_model.features[1], nn.BatchNorm2d)  # the caller's module is untouched
    folded = dataset.get_run_info("folded").config.engine["batchnorm_folded"]  # the run's stored record
    assert folded == res.config["engine"]["batchnorm_folded"]
    assert folded["folded"] == 1 and folded["max_diff"] < 1e-5
    plain = fov.compute_vog(dataset, checkpoint_dir, model=small_model, vog_field="plain", fold_batchnorm=False)
    assert "batchnorm_folded" not in plain.config["engine"] and res.ids == plain.ids
    for name, fold in (("f64_folded", True), ("f64_plain", False)):  # the same function: exact in float64
        fov.compute_vog(
            dataset, checkpoint_dir, model=small_model, vog_field=name, precision="float64", fold_batchnorm=fold
        )
    np.testing.assert_allclose(dataset.values("f64_folded_raw"), dataset.values("f64_plain_raw"), rtol=1e-10)
    # float32: rounding moves; one of these 40 samples sits within rounding of a ReLU's or max-pool's
    # kink, where batch size 1 or channels_last move it as much as folding does (README, "Deterministic")
    a, b = np.array(dataset.values("folded_raw")), np.array(dataset.values("plain_raw"))
    rel = np.abs(a - b) / np.abs(b)
    assert (rel < 1e-5).sum() >= len(rel) - 1 and rel.max() < 1e-2, np.sort(rel)[-3:]


def test_cli_no_fold_batchnorm():
    from fiftyone_vog import cli

    parser = cli.build_parser()
    assert parser.parse_args(["compute", "ds", "--checkpoints", "x"]).fold_batchnorm is True
    assert parser.parse_args(["compute", "ds", "--checkpoints", "x", "--no-fold-batchnorm"]).fold_batchnorm is False
