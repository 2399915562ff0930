"""Numeric precision of the engine's passes: exact float32, or mixed precision done carefully.

Exact (the default): float32 convolutions and matmuls stay IEEE on CUDA, where cuDNN would
otherwise use TF32 and break the engine's 1e-6 contract with the float64 reference.

Mixed precision (``autocast="bf16"`` or ``"fp16"``): the model runs under ``torch.autocast``
except its **input layer** — the first convolution or linear layer that the forward pass
executes — which stays in float32. Why: that layer's backward is the last operation of the
input gradient. Under plain autocast it runs in half precision, so every pixel of the gradient
map is finally rounded to 8 (bf16) or 11 (fp16) bits, and VoG, a variance across checkpoints of
nearly equal maps, is sensitive to exactly that rounding. Kept in float32, the layer sums many
half-precision terms in float32 and the result is not rounded again. The cost is one layer's
float32 time. The rank agreement with float32 that this buys is measured by
``benchmarks/precision_vog.py`` (figures in the README and docs/performance.md).

fp16 has 5 exponent bits: a confident sample's softmax probability has a gradient of about
p(1 − p) at the logits, which falls below fp16's smallest subnormal (6e-8) for p > 1 − 6e-8,
so its whole input gradient would be zero. With ``target="probability"`` each sample's target
is therefore multiplied by the power of two just below 1 / (p(1 − p)), which puts the
gradient at the logits between ½ and 1 (never above: |∂p/∂z_j| ≤ p(1 − p) for every j), and
the input gradient is divided by it again: exact, because powers of two only move the exponent.
"""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager

import torch
from torch import nn

from ..options import AUTOCASTS

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: ``autocast=`` values: a dtype, or a dtype with ``-all`` (the input layer in half precision too:
#: faster, less precise ranks)
AUTOCAST_CHOICES = AUTOCASTS

#: Layers whose backward can be the last operation of an input gradient.
INPUT_LAYER_TYPES = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)


class _Found(Exception):
    pass


def find_input_layer(model: nn.Module, x: torch.Tensor) -> str | None:
    """Qualified name of the first convolution or linear layer ``model(x)`` executes.

    Runs the forward pass on one sample and stops it at that layer. ``None`` when no such layer
    runs as a Python module (a TorchScript model, or a model of functional calls only).
    """
    names = {m: n for n, m in model.named_modules() if isinstance(m, INPUT_LAYER_TYPES)}
    if not names or isinstance(model, torch.jit.ScriptModule):
        return None
    found: list[str] = []

    def stop(module, args):
        found.append(names[module])
        raise _Found

    handles = [m.register_forward_pre_hook(stop) for m in names]
    try:
        with torch.no_grad():
            model(x[:1])
    except _Found:
        pass
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


@contextmanager
def exact_fp32(device: torch.device):
    """Keep float32 convolutions and matmuls IEEE on CUDA (no TF32), as exactness needs."""
    if device.type != "cuda":
        yield
        return
    saved = []
    for backend in (torch.backends.cudnn, torch.backends.cuda.matmul):
        try:
            saved.append((backend, backend.allow_tf32))
            backend.allow_tf32 = False
        except (AttributeError, RuntimeError):  # newer fp32_precision API set by the user: leave it
            pass
    try:
        yield
    finally:
        for backend, value in saved:
            backend.allow_tf32 = value


@contextmanager
def mixed_precision(device: torch.device, autocast: str, keep_fp32: nn.Module | None = None):
    """``torch.autocast`` to ``autocast``'s dtype, with module ``keep_fp32`` run in float32.

    The module keeps float32 through a pair of hooks that live only inside this block, so the
    caller's model is never modified. The hooks act only in the thread that entered the block
    (autocast's state is per thread): under ``strategy="split"`` several threads run the same
    module at once, each inside its own block.
    """
    handles = []
    if keep_fp32 is not None:
        entered = []
        owner = threading.get_ident()

        def enter(module, args):
            if threading.get_ident() != owner:  # another thread's pass: its own hooks handle it
                return None
            ctx = torch.autocast(device.type, enabled=False)
            ctx.__enter__()
            entered.append(ctx)
            return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)

        def leave(module, args, out):
            if threading.get_ident() == owner:
                entered.pop().__exit__(None, None, None)

        handles = [keep_fp32.register_forward_pre_hook(enter), keep_fp32.register_forward_hook(leave)]
    try:
        with torch.autocast(device.type, dtype=AUTOCAST_DTYPES[autocast]):
            yield
    finally:
        for h in handles:
            h.remove()


def fp16_scaled_probability(out: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Σ_i s_i · softmax(out_i)[p_i], s)`` with per-sample powers of two ``s`` (1 to 2¹⁰⁰)
    that lift each sample's gradient at the logits to between ½ and 1 (see the module's notes)."""
    logp = torch.log_softmax(out, dim=1, dtype=torch.float32)
    prob = logp.gather(1, p[:, None]).squeeze(1).exp()
    with torch.no_grad():
        # log2 of p(1 − p), with 1 − p summed from the other classes (no cancellation near p = 1)
        others = logp.scatter(1, p[:, None], float("-inf")).logsumexp(dim=1)
        log2_spread = (logp.gather(1, p[:, None]).squeeze(1) + others) / math.log(2)
        scale = torch.exp2(torch.floor(-log2_spread)).clamp(1, 2.0**100)
    return (prob * scale).sum(), scale
