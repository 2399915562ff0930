"""Training-dynamics companions of VoG, from the class scores the engine's forward passes yield.

Every checkpoint's forward pass already gives the batch's class scores ``z_t`` (pre-softmax
logits, shape (B, classes)); from them, with no extra backward pass, for the used label ``p``
and a window's checkpoints ``t ∈ w`` (in training order)::

    loss    = 1/|w| Σ_t ( logsumexp(z_t) − z_t[p] )          # mean cross-entropy; high: likely mislabeled
    margin  = 1/|w| Σ_t ( z_t[p] − max_{j≠p} z_t[j] )        # AUM (Pleiss et al. 2020); low: likely mislabeled
    maxprob = max_j softmax(z_T)[j]   at the window's last checkpoint T   # low: likely out-of-distribution
    energy  = −logsumexp(z_T)         at the window's last checkpoint T   # high: likely out-of-distribution

(Energy follows Liu et al. 2020, ``E(x) = −logsumexp f(x)`` at temperature 1: its sign makes a
high value mean "OOD-ish", as a high VoG does.) Loss and margin are averages over the window,
like the training-dynamics scores they come from; maxprob and energy describe one model, so a
window's are those of its last (most trained) checkpoint. Everything is in float64.
"""

from __future__ import annotations

import torch

# the names, in the order their fields are written, and their signs: in the options table
from ..options import COMPANION_SIGNS, COMPANIONS  # noqa: F401  (COMPANIONS re-exported)

#: What a high value of each companion means (one line each, for docs and the App).
MEANINGS = {
    "loss": "mean cross-entropy of the used label over the checkpoints; high = likely mislabeled/memorized",
    "margin": "mean margin of the used label (its logit minus the largest other, AUM); low = likely mislabeled",
    "maxprob": "max softmax probability of the last checkpoint; low = likely out-of-distribution",
    "energy": "energy −logsumexp(logits) of the last checkpoint; high = likely out-of-distribution",
}

#: +1 when a high value flags a sample (like VoG), −1 when a low value does.
FLAG_SIGN = COMPANION_SIGNS


def companion_key(window: str, name: str) -> str:
    """The engine's output key of a window's companion (``"all:loss"``)."""
    return f"{window}:{name}"


def window_companions(logits: torch.Tensor, p: torch.Tensor) -> dict[str, torch.Tensor]:
    """The companions of one window.

    Args:
        logits: (Kw, B, classes) class scores of the window's checkpoints, in training order.
        p: (B,) used labels.
    Returns:
        ``{name: (B,) float64}`` for every name in :data:`COMPANIONS`.
    """
    z = logits.to(torch.float64)
    Kw, B, C = z.shape
    idx = p.to(z.device, torch.long).view(1, B, 1).expand(Kw, B, 1)
    zp = z.gather(2, idx).squeeze(2)  # (Kw, B)
    lse = torch.logsumexp(z, dim=2)  # (Kw, B)
    others = z.scatter(2, idx, float("-inf"))
    top_other = others.max(dim=2).values if C > 1 else torch.zeros_like(zp)
    last = z[-1]
    return {
        "loss": (lse - zp).mean(dim=0),
        "margin": (zp - top_other).mean(dim=0),
        "maxprob": torch.softmax(last, dim=1).max(dim=1).values,
        "energy": -lse[-1],
    }
