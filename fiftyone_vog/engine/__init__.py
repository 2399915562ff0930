"""Streaming Variance-of-Gradients engine (pure PyTorch; imports no FiftyOne).

For every checkpoint ``t = 1..K`` and image ``x`` (C×H×W) the engine computes the
input gradient of the selected class score ``A_p`` and reduces it over channels::

    S_t = reduce_c ∂A_p/∂x                      # (H, W)

then, per window ``w`` (a subset of checkpoints, each with its own mean)::

    μ_w   = 1/|w| Σ_{t∈w} S_t
    VoG_w = mean_{H×W} ( 1/|w| Σ_{t∈w} (S_t − μ_w)² )      # statistic="variance"
    VoG_w = mean_{H×W} sqrt( ... )                          # statistic="std"

A batch's K maps are computed into one reused buffer (K, B, H, W) and reduced
right away with an exact two-pass variance in float64, so no per-checkpoint
gradient map outlives the batch it belongs to: memory is O(K × batch × pixels),
independent of the dataset size. The K input gradients come from a loop over
the checkpoints (on the CPU, with ``strategy="split"``, one loop per thread, each
over its part of the batch) or, with ``strategy="vmap"``, from one batched
``torch.func`` pass over the stacked weights; either way each is one forward and
one backward pass, the least the method allows.

Models are put in eval mode and their parameters frozen: with no cross-sample
interaction (BatchNorm uses running statistics), the gradient of the summed
batch score with respect to the batch input is exactly each sample's own input
gradient.
"""

from ..errors import VoGError, check_choice
from .companions import COMPANIONS, FLAG_SIGN, MEANINGS, companion_key, window_companions
from .gradients import (
    CHANNEL_REDUCTIONS,
    LABEL_MODES,
    MISSING_LABEL,
    STATISTICS,
    STRATEGIES,
    TARGETS,
    BatchScores,
    VoGEngine,
    VoGOptions,
    default_settings,
    prepare_models,
    resolve_device,
    stack_models,
    stacking_problem,
)
from .normalize import class_normalize, class_statistics
from .streaming import RawVoG, score_batches
from .windows import normalize_windows, thirds

__all__ = [
    "CHANNEL_REDUCTIONS",
    "LABEL_MODES",
    "MISSING_LABEL",
    "STATISTICS",
    "STRATEGIES",
    "TARGETS",
    "COMPANIONS",
    "FLAG_SIGN",
    "MEANINGS",
    "companion_key",
    "window_companions",
    "BatchScores",
    "RawVoG",
    "VoGEngine",
    "VoGError",
    "VoGOptions",
    "check_choice",
    "class_normalize",
    "class_statistics",
    "default_settings",
    "normalize_windows",
    "thirds",
    "prepare_models",
    "resolve_device",
    "score_batches",
    "stack_models",
    "stacking_problem",
]
