"""NHWC ("channels_last") memory layout for convolutional models on the CPU, checked on a real batch.

On the CPU, oneDNN's convolutions and ATen's max-pooling run faster on NHWC tensors than on
NCHW ones (NCHW convolutions are reordered on every call, and NCHW max-pooling with indices is
not vectorized): 1.2–1.4× the engine's rate for the models measured in docs/performance.md
("Memory layout on the CPU"). The function is the same, so the scores are the same up to float
rounding. But a model's ``forward`` may depend on the layout: ``x.view(len(x), -1)`` after the
convolutions raises on NHWC strides, and a custom op may assume contiguous NCHW. So the layout
is switched only after the model's class scores on the first batch, in NHWC, equal those in
NCHW (:func:`channels_last_checked`); otherwise the models stay as they are and the run records
why.
"""

from __future__ import annotations

import torch
from torch import nn

from .folding import FOLD_TOLERANCE, score_difference


def _has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _to(model: nn.Module, fmt: torch.memory_format) -> None:
    model.to(memory_format=fmt)  # in place: the 4-d parameters and buffers of every submodule


def channels_last_checked(models: list[nn.Module], x: torch.Tensor) -> dict:
    """Switch every model to NHWC in place when the last one's class scores on ``x`` (a real
    batch, NCHW, in the engine's device and dtype) stay the same (:data:`FOLD_TOLERANCE` of the
    largest score); else leave them as they are. The checkpoints share one architecture, so one
    check covers them. Returns ``{"channels_last": True, "max_diff": relative difference}`` or
    ``{"channels_last": False, "why": ...}``."""
    if x.ndim != 4:
        return {
            "channels_last": False,
            "why": f"the inputs are {x.ndim}-d, not images (batch, channels, height, width)",
        }
    last = models[-1]
    if not _has_conv2d(last):
        return {"channels_last": False, "why": "the model has no 2-d convolution"}
    x = x[: min(len(x), 8)]
    with torch.no_grad():
        ref = last(x.contiguous())
        _to(last, torch.channels_last)
        try:
            got = last(x.contiguous(memory_format=torch.channels_last))
        except Exception as e:  # the NCHW pass just ran: the layout is what failed (e.g. .view on NHWC strides)
            _to(last, torch.contiguous_format)
            first = (str(e).splitlines() or [type(e).__name__])[0][:200]
            return {
                "channels_last": False,
                "why": f"the model's forward fails on NHWC inputs ({type(e).__name__}: {first})",
            }
    diff = score_difference(ref, got)
    if diff is None or not diff <= FOLD_TOLERANCE:  # NaN too
        _to(last, torch.contiguous_format)
        what = "the model's output is not one tensor" if diff is None else f"the class scores changed by {diff:.2g}"
        return {"channels_last": False, "why": f"in NHWC {what}: kept NCHW"}
    for m in models[:-1]:
        _to(m, torch.channels_last)
    return {"channels_last": True, "max_diff": diff}
