"""Training-dynamics companions (loss, margin, maxprob, energy) against naive per-sample float64 references."""

import copy
import math

import numpy as np
import pytest
import torch

from fiftyone_vog.engine import COMPANIONS, VoGEngine, VoGError, VoGOptions, score_batches
from fiftyone_vog.models import SmallCNN

K, N, C, H, W, NCLS = 4, 9, 3, 7, 5, 4
WINDOWS = {"all": [0, 1, 2, 3], "late": [2, 3], "odd": [1, 3]}


def _models(seed=0):
    torch.manual_seed(seed)
    out = []
    for _ in range(K):
        m = SmallCNN(num_classes=NCLS, in_channels=C, width=4)
        m.features[1].running_mean.uniform_(-0.5, 0.5)
        m.features[1].running_var.uniform_(0.5, 2.0)
        out.append(m)
    return out


@pytest.fixture(scope="module")
def models():
    return _models()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, C, H, W, generator=g) * 3  # large inputs: confident, spread-out logits
    y = torch.randint(0, NCLS, (N,), generator=g)
    y[0] = -1  # unlabeled: "auto" scores it on the last checkpoint's prediction
    return x, y


def _naive_logits(models, x):
    """[checkpoint][sample] → list of float logits, one float64 sample at a time."""
    ms = [copy.deepcopy(m).double().eval() for m in models]
    with torch.no_grad():
        return [[ms[k](x[i : i + 1].double())[0].tolist() for i in range(len(x))] for k in range(len(ms))]


def _lse(z):
    m = max(z)
    return m + math.log(sum(math.exp(v - m) for v in z))


def _used(logits, y, i):
    return int(y[i]) if y[i] >= 0 else int(np.argmax(logits[-1][i]))


def naive_loss(logits, y, window):
    out = []
    for i in range(len(y)):
        p = _used(logits, y, i)
        out.append(sum(_lse(logits[k][i]) - logits[k][i][p] for k in window) / len(window))
    return np.array(out)


def naive_margin(logits, y, window):
    out = []
    for i in range(len(y)):
        p = _used(logits, y, i)
        out.append(
            sum(logits[k][i][p] - max(v for j, v in enumerate(logits[k][i]) if j != p) for k in window) / len(window)
        )
    return np.array(out)


def naive_maxprob(logits, y, window):
    last = max(window)
    return np.array([max(math.exp(v - _lse(logits[last][i])) for v in logits[last][i]) for i in range(len(y))])


def naive_energy(logits, y, window):
    last = max(window)
    return np.array([-_lse(logits[last][i]) for i in range(len(y))])


NAIVE = {"loss": naive_loss, "margin": naive_margin, "maxprob": naive_maxprob, "energy": naive_energy}


def _score(models, x, y, strategy, target="logit", dtype=torch.float32):
    eng = VoGEngine(
        models,
        WINDOWS,
        VoGOptions(label_mode="auto", target=target),
        device="cpu",
        strategy=strategy,
        companions=True,
        dtype=dtype,
    )
    ids = [str(i) for i in range(len(y))]
    batches = [(x[:5], y[:5], ids[:5]), (x[5:], y[5:], ids[5:])]
    return eng, score_batches(eng, batches, ids)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
@pytest.mark.parametrize("name", COMPANIONS)
def test_companion_equals_naive_reference(models, batch, strategy, name):
    x, y = batch
    logits = _naive_logits(models, x)
    _, res = _score(models, x, y, strategy, dtype=torch.float64)
    for w, idx in WINDOWS.items():
        np.testing.assert_allclose(res.raw[f"{w}:{name}"], NAIVE[name](logits, y, idx), rtol=1e-9, atol=1e-12)
    # float32 models: the same to float32 rounding
    _, res32 = _score(models, x, y, strategy, target="probability")
    np.testing.assert_allclose(res32.raw[f"all:{name}"], NAIVE[name](logits, y, WINDOWS["all"]), rtol=1e-4, atol=1e-5)


def test_companions_leave_vog_unchanged(models, batch):
    x, y = batch
    ids = [str(i) for i in range(N)]
    plain = score_batches(VoGEngine(models, WINDOWS, VoGOptions(label_mode="auto"), device="cpu"), [(x, y, ids)], ids)
    eng, withc = _score(models, x, y, "loop")
    assert eng.outputs[:3] == list(WINDOWS) and len(eng.outputs) == 3 + 3 * len(COMPANIONS)
    for w in WINDOWS:
        np.testing.assert_array_equal(plain.raw[w], withc.raw[w])
    assert set(plain.raw) == set(WINDOWS)  # off by default in the engine


# -- compute_vog: fields, config, windows ------------------------------------------------------------
def _factory():
    return SmallCNN(num_classes=4, in_channels=3, width=8)


def test_compute_vog_writes_companion_fields(dataset, checkpoint_dir):
    import fiftyone_vog as fov

    res = fov.compute_vog(dataset, checkpoint_dir, model=_factory, windows={"late": "-2:"})
    for c in COMPANIONS:
        for f in (f"vog_{c}", f"vog_late_{c}"):
            assert f in res.scores and f in res.config["fields"]
            vals = np.array(dataset.values(f))
            assert np.isfinite(vals).all()
            # never class-normalized: stored as the engine computed them
            np.testing.assert_allclose(vals, res.scores[f])
    info = fov.get_vog_run(dataset, "vog")
    assert list(info.config.companions) == list(COMPANIONS)
    # mean loss ≥ 0; maxprob in (0, 1]; energy = −logsumexp ≤ −log-of-max-prob relation: maxprob = exp(max z + energy)
    assert (np.array(dataset.values("vog_loss")) >= 0).all()
    mp = np.array(dataset.values("vog_maxprob"))
    assert ((mp > 0) & (mp <= 1)).all()
    # deleting the run deletes the companion fields too
    fov.delete_vog_run(dataset, "vog")
    assert "vog_loss" not in dataset.get_field_schema()


def test_companions_can_be_turned_off(dataset, checkpoint_dir):
    import fiftyone_vog as fov

    res = fov.compute_vog(dataset, checkpoint_dir, model=_factory, companions=False)
    assert set(res.scores) == {"vog", "vog_raw"}
    assert "vog_loss" not in dataset.get_field_schema()
    assert list(fov.get_vog_run(dataset, "vog").config.companions) == []


@pytest.mark.parametrize("name", ["loss", "late_margin", "energy"])
def test_window_names_colliding_with_companions_are_refused(name, checkpoint_dir):
    from fiftyone_vog.core.compute import resolve_windows

    with pytest.raises(VoGError, match="collide"):
        resolve_windows({name: "0:2"}, ["a", "b", "c", "d", "e"])
