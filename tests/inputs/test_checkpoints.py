"""Every supported checkpoint format and architecture spec loads to the same weights."""

import pytest
import torch
import torchvision
from torch import nn

from fiftyone_vog.engine import VoGError
from fiftyone_vog.inputs.checkpoints import (
    load_checkpoint,
    load_models,
    model_factory,
    natural_key,
    resolve_checkpoints,
)
from fiftyone_vog.models import SmallCNN


def _model(seed=0):
    torch.manual_seed(seed)
    return SmallCNN(num_classes=3, in_channels=3, width=4)


def _same(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.fixture
def ref():
    return _model(seed=7)


def _save_all_formats(tmp_path, m):
    sd = m.state_dict()
    paths = {}
    paths["plain"] = tmp_path / "plain.pt"
    torch.save(sd, paths["plain"])
    paths["wrapped_state_dict"] = tmp_path / "wrapped.pth"
    torch.save({"epoch": 3, "state_dict": sd, "optimizer": {"lr": 0.1}}, paths["wrapped_state_dict"])
    paths["wrapped_model"] = tmp_path / "wrapped_model.pt"
    torch.save({"model": sd, "step": 10}, paths["wrapped_model"])
    paths["lightning"] = tmp_path / "lightning.ckpt"
    torch.save(
        {
            "epoch": 1,
            "global_step": 5,
            "pytorch-lightning_version": "2.4.0",
            "state_dict": {f"model.{k}": v for k, v in sd.items()},
            "loops": {},
        },
        paths["lightning"],
    )
    paths["ddp"] = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in sd.items()}, paths["ddp"])
    from safetensors.torch import save_file

    paths["safetensors"] = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(paths["safetensors"]))
    return paths


def test_weight_formats_load_identically(tmp_path, ref):
    for _name, path in _save_all_formats(tmp_path, ref).items():
        (m,) = load_models([path], model=lambda: _model(seed=1))
        _same(m, ref)


def test_torchscript_needs_no_architecture(tmp_path, ref):
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(ref.eval()), str(path))
    (m,) = load_models([path], model=None, allow_torchscript=True)  # TorchScript is code: opt in
    x = torch.randn(2, 3, 8, 6)
    torch.testing.assert_close(m(x), ref(x))


def test_pickled_module_needs_opt_in(tmp_path, ref):
    path = tmp_path / "whole.pt"
    torch.save(ref, path)
    with pytest.raises(VoGError, match="allow_pickle=True"):
        load_models([path], model=None)
    (m,) = load_models([path], model=None, allow_pickle=True)
    _same(m, ref)


def test_architecture_specs(tmp_path, ref):
    torch.save(ref.state_dict(), tmp_path / "a.pt")
    # nn.Module instance (deep-copied, never mutated), factory, and "package.module:callable"
    template = _model(seed=3)
    before = {k: v.clone() for k, v in template.state_dict().items()}
    (m,) = load_models([tmp_path / "a.pt"], model=template)
    _same(m, ref)
    assert all(torch.equal(before[k], v) for k, v in template.state_dict().items())
    default_width = SmallCNN(num_classes=3)
    torch.save(default_width.state_dict(), tmp_path / "b.pt")
    (m,) = load_models([tmp_path / "b.pt"], model="fiftyone_vog.models:SmallCNN", num_classes=3)
    assert isinstance(m, SmallCNN)
    _same(m, default_width)


def test_import_spec_checks_fit_and_can_be_disabled(tmp_path, ref):
    torch.save(ref.state_dict(), tmp_path / "a.pt")
    with pytest.raises(VoGError, match="does not fit the architecture"):
        load_models([tmp_path / "a.pt"], model="fiftyone_vog.models:SmallCNN", num_classes=3)  # width 16 ≠ 4
    with pytest.raises(VoGError, match="FIFTYONE_VOG_ALLOW_IMPORTS"):
        model_factory("os:system", allow_import=False)
    assert model_factory("fiftyone_vog.models:SmallCNN", allow_import=False) is not None  # ships with the package
    with pytest.raises(VoGError, match="cannot import"):
        model_factory("fiftyone_vog.nope:Thing")


def test_torchvision_name_with_num_classes(tmp_path):
    m = torchvision.models.resnet18(weights=None, num_classes=5)
    torch.save(m.state_dict(), tmp_path / "r.pt")
    (loaded,) = load_models([tmp_path / "r.pt"], model="resnet18", num_classes=5)
    _same(loaded, m)
    with pytest.raises(VoGError, match="did you mean resnet18"):
        model_factory("resnet81")


def test_corrupt_and_mismatched_files(tmp_path, ref):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(VoGError, match="cannot read checkpoint .*corrupt.pt"):
        load_models([bad], model=lambda: _model())
    other = tmp_path / "other.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), other)
    with pytest.raises(VoGError, match="other.pt does not fit the architecture"):
        load_models([other], model=lambda: _model())
    notdict = tmp_path / "list.pt"
    torch.save([1, 2, 3], notdict)
    with pytest.raises(VoGError, match="does not contain a state_dict"):
        load_models([notdict], model=lambda: _model())
    with pytest.raises(VoGError, match="pass model="):
        torch.save(ref.state_dict(), tmp_path / "w.pt")
        load_models([tmp_path / "w.pt"], model=None)


def test_resolve_checkpoints_order_and_errors(tmp_path, ref):
    for e in [1, 2, 10, 3]:
        torch.save(ref.state_dict(), tmp_path / f"epoch_{e}.pt")
    got = resolve_checkpoints(str(tmp_path / "epoch_*.pt"))
    assert [p.name for p in got] == ["epoch_1.pt", "epoch_2.pt", "epoch_3.pt", "epoch_10.pt"]
    assert [p.name for p in resolve_checkpoints(tmp_path)] == ["epoch_1.pt", "epoch_2.pt", "epoch_3.pt", "epoch_10.pt"]
    given = [tmp_path / "epoch_10.pt", tmp_path / "epoch_1.pt"]  # a list keeps the caller's order
    assert resolve_checkpoints(given) == given
    with pytest.raises(VoGError, match="no checkpoint file matches"):
        resolve_checkpoints(str(tmp_path / "nope_*.pt"))
    with pytest.raises(VoGError, match="not found"):
        resolve_checkpoints([tmp_path / "epoch_1.pt", tmp_path / "missing.pt"])
    with pytest.raises(VoGError, match="at least 2 checkpoints"):
        resolve_checkpoints(str(tmp_path / "epoch_1*.pt").replace("1*", "2"))
    assert sorted(["b10", "b9", "a"], key=natural_key) == ["a", "b9", "b10"]


def test_weights_only_by_default(tmp_path, ref, monkeypatch):
    """A state_dict is read with weights_only=True unless the caller opts in."""
    seen = []
    real = torch.load

    def spy(*a, **k):
        seen.append(k.get("weights_only"))
        return real(*a, **k)

    monkeypatch.setattr(torch, "load", spy)
    torch.save(ref.state_dict(), tmp_path / "w.pt")
    load_checkpoint(tmp_path / "w.pt")
    assert seen == [True]
