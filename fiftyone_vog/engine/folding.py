"""Fold eval-mode BatchNorm into the convolution before it.

In eval mode ``BatchNorm(conv(x))`` is one affine map per output channel, so it equals a
convolution with weights ``w·γ/√(var+ε)`` and bias ``(b − mean)·γ/√(var+ε) + β``: the same
function, so the same input gradient, at one operator forward and backward instead of two. On
a SmallCNN on the CPU that is most of a 1.4× speed-up (docs/performance.md, "BatchNorm folded
into the convolution before it").

Only pairs the computation provably passes through are folded: a ``Conv1d/2d/3d`` directly
followed by the ``BatchNorm`` of the same dimension inside an ``nn.Sequential`` that runs its
children in order (its own ``forward``), both with their class's own ``forward``, no hooks, no
parametrization, each used once in the model, the BatchNorm with running statistics. A model's
``forward`` may still read a folded pair's intermediate output (``self.features[0](x)``), so
:func:`fold_checked` compares the folded model's class scores with the original's on a real
batch and keeps the original when they differ. The folded weights are computed in float64 and
rounded once to the model's dtype.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils import parametrize

_PAIRS = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d), (nn.Conv3d, nn.BatchNorm3d))

#: The largest difference between the folded and the original model's class scores, relative to
#: the largest score, that still counts as the same function (float32 rounding is ~1e-6; a
#: forward that reads a folded intermediate differs by O(1)).
FOLD_TOLERANCE = 1e-4


def _hooked(m: nn.Module) -> bool:
    return bool(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or getattr(m, "_backward_pre_hooks", None)
    )


def _global_hooks() -> bool:
    mod = torch.nn.modules.module
    return any(
        getattr(mod, name, None)
        for name in (
            "_global_forward_hooks",
            "_global_forward_pre_hooks",
            "_global_backward_hooks",
            "_global_backward_pre_hooks",
        )
    )


def _foldable(conv: nn.Module, bn: nn.Module, uses: dict[int, int]) -> bool:
    bn_type = next((b for c, b in _PAIRS if isinstance(conv, c) and type(conv).forward is c.forward), None)
    if bn_type is None:
        return False
    if not (isinstance(bn, bn_type) and type(bn).forward is _BatchNorm.forward):
        return False
    if bn.training or not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        return False
    if conv.out_channels != bn.num_features or _hooked(conv) or _hooked(bn):
        return False
    if parametrize.is_parametrized(conv) or parametrize.is_parametrized(bn):
        return False
    params = [conv.weight, conv.bias, bn.weight, bn.bias]
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in params):
        return False
    return uses.get(id(conv), 0) == 1 and uses.get(id(bn), 0) == 1


def foldable_pairs(model: nn.Module) -> list[tuple[nn.Sequential, int, str]]:
    """``(sequential, index of the conv, qualified name of the BatchNorm)`` of every pair
    :func:`fold_batchnorm` would fold."""
    if _global_hooks():
        return []
    uses: dict[int, int] = {}
    for _, m in model.named_modules(remove_duplicate=False):
        uses[id(m)] = uses.get(id(m), 0) + 1
    pairs = []
    for name, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential) or type(seq).forward is not nn.Sequential.forward:
            continue
        children = list(seq.named_children())
        for i in range(len(children) - 1):
            (_, conv), (bn_name, bn) = children[i], children[i + 1]
            if _foldable(conv, bn, uses):
                pairs.append((seq, i, f"{name}.{bn_name}" if name else bn_name))
    return pairs


@torch.no_grad()
def _fold(conv: nn.Module, bn: _BatchNorm) -> None:
    """Give ``conv`` the weights and bias of ``bn(conv(x))`` (in place)."""
    w = conv.weight.detach().to(torch.float64)
    b = torch.zeros(w.shape[0], dtype=torch.float64, device=w.device)
    if conv.bias is not None:
        b = conv.bias.detach().to(torch.float64)
    scale = torch.rsqrt(bn.running_var.to(torch.float64) + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().to(torch.float64)
    shift = -bn.running_mean.to(torch.float64) * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().to(torch.float64)
    dtype, trainable = conv.weight.dtype, conv.weight.requires_grad
    conv.weight = nn.Parameter((w * scale.view(-1, *([1] * (w.ndim - 1)))).to(dtype), requires_grad=trainable)
    conv.bias = nn.Parameter((b * scale + shift).to(dtype), requires_grad=trainable)


def _fold_pairs(pairs: list[tuple[nn.Sequential, int, str]]) -> list[tuple]:
    """Fold the pairs :func:`foldable_pairs` found, in place; returns how to undo it (:func:`_undo`)."""
    done = []
    for seq, i, bn_name in pairs:
        conv, bn = seq[i], seq[i + 1]
        done.append((seq, i, conv.weight, conv.bias, bn, bn_name))
        _fold(conv, bn)
        seq[i + 1] = nn.Identity()
    return done


def _undo(done: list[tuple]) -> None:
    for seq, i, weight, bias, bn, _ in reversed(done):
        seq[i].weight, seq[i].bias = weight, bias
        seq[i + 1] = bn


def fold_batchnorm(model: nn.Module) -> list[str]:
    """Fold every foldable BatchNorm of ``model`` into its convolution, in place (the BatchNorm's
    slot in its ``nn.Sequential`` becomes ``nn.Identity``, so child indices and names stay).
    Returns the folded BatchNorms' names. The model must be in eval mode."""
    return [name for *_, name in _fold_pairs(foldable_pairs(model))]


def score_difference(ref, got) -> float | None:
    """The largest difference between two outputs of a model, relative to the largest of ``ref``
    (at least 1); None when they are not tensors of one shape."""
    if not (isinstance(ref, torch.Tensor) and isinstance(got, torch.Tensor) and ref.shape == got.shape):
        return None
    scale = ref.abs().max().clamp_min(1.0)
    return float(((got - ref).abs().max() / scale).item())


def fold_checked(models: list[nn.Module], x: torch.Tensor) -> dict:
    """Fold every model's BatchNorms in place when folding the last one leaves its class scores on
    ``x`` (a real batch, in the engine's device and dtype) the same (:data:`FOLD_TOLERANCE`), else
    leave every model as it was; the checkpoints share one architecture, so one check covers them.
    Returns what was done, for the run's record: ``{"folded": n per model, "max_diff": relative
    difference}`` or ``{"folded": 0, "why": ...}``."""
    pairs = [foldable_pairs(m) for m in models]
    names = [[bn for _, _, bn in p] for p in pairs]
    if not names[-1]:
        return {"folded": 0, "why": "no Conv→BatchNorm pair in an nn.Sequential"}
    if any(n != names[-1] for n in names):  # never expected of checkpoints of one architecture
        return {"folded": 0, "why": "the checkpoints' models differ in their foldable layers"}
    last, x = models[-1], x[: min(len(x), 8)]
    with torch.no_grad():
        ref = last(x)
        done = _fold_pairs(pairs[-1])  # in place, undone below if the scores change: no copy of the model
        got = last(x)
    diff = score_difference(ref, got)
    if diff is None:
        _undo(done)
        return {"folded": 0, "why": "the model's output is not one tensor"}
    if not diff <= FOLD_TOLERANCE:  # NaN too
        _undo(done)
        return {
            "folded": 0,
            "why": f"folded, the class scores changed by {diff:.2g} (the model's forward reads a folded "
            "layer's output): kept as it is",
        }
    for p in pairs[:-1]:
        _fold_pairs(p)
    return {"folded": len(names[-1]), "max_diff": diff}
