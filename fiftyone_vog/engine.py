"""Streaming Variance-of-Gradients engine (pure PyTorch; imports no FiftyOne).

For every checkpoint ``t = 1..K`` and image ``x`` (C×H×W) the engine computes the
input gradient of the selected class score ``A_p`` and reduces it over channels::

    S_t = reduce_c ∂A_p/∂x                      # (H, W)

then, per window ``w`` (a subset of checkpoints, each with its own mean)::

    μ_w   = 1/|w| Σ_{t∈w} S_t
    VoG_w = mean_{H×W} ( 1/|w| Σ_{t∈w} (S_t − μ_w)² )      # statistic="variance"
    VoG_w = mean_{H×W} sqrt( ... )                          # statistic="std"

Statistics are accumulated per batch with Welford's update in float64, so no
per-checkpoint gradient map outlives the batch it belongs to: memory is
O(batch × pixels), independent of the dataset size and of K.

Models are put in eval mode and their parameters frozen: with no cross-sample
interaction (BatchNorm uses running statistics), the gradient of the summed
batch score with respect to the batch input is exactly each sample's own input
gradient.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

LABEL_MODES = ("true", "predicted", "auto")
TARGETS = ("logit", "probability")
STATISTICS = ("variance", "std")
CHANNEL_REDUCTIONS = ("sum", "mean")

#: Label value meaning "this sample has no label" (used by ``label_mode="auto"``).
MISSING_LABEL = -1


class VoGError(ValueError):
    """A problem with the user's input; the message says what to do."""


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a helpful error."""
    if value not in choices:
        raise VoGError(
            f"{name}={value!r} is not supported; choose one of {', '.join(map(repr, choices))}"
        )
    return value


@dataclass
class VoGOptions:
    """The method's options, exactly as in DESIGN.md."""

    label_mode: str = "true"
    target: str = "logit"
    statistic: str = "variance"
    channel_reduction: str = "sum"

    def __post_init__(self):
        check_choice("label_mode", self.label_mode, LABEL_MODES)
        check_choice("target", self.target, TARGETS)
        check_choice("statistic", self.statistic, STATISTICS)
        check_choice("channel_reduction", self.channel_reduction, CHANNEL_REDUCTIONS)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto" picks CUDA when available, else CPU; anything else is forced."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VoGError(f"device={str(device)!r} was requested but CUDA is not available; use device='cpu'")
    return device


def prepare_models(
    models: Sequence[nn.Module], device: torch.device, dtype: torch.dtype = torch.float32
) -> list[nn.Module]:
    """Move every checkpoint's model to ``device``, eval mode, parameters frozen."""
    prepared = []
    for m in models:
        m = m.to(device=device, dtype=dtype)
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
        prepared.append(m)
    return prepared


def normalize_windows(windows: Mapping[str, Sequence[int]] | None, num_checkpoints: int) -> dict[str, list[int]]:
    """Validate windows: names → sorted, unique, in-range checkpoint indices (negatives allowed)."""
    out: dict[str, list[int]] = {}
    for name, idx in (windows or {}).items():
        idx = list(idx)
        if not idx:
            raise VoGError(f"window {name!r} names no checkpoints")
        norm = []
        for i in idx:
            if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
                raise VoGError(f"window {name!r}: checkpoint index {i!r} is not an integer")
            if not -num_checkpoints <= i < num_checkpoints:
                raise VoGError(
                    f"window {name!r} names checkpoint index {i}, but only {num_checkpoints} "
                    f"checkpoints were given (valid: 0..{num_checkpoints - 1})"
                )
            norm.append(int(i) % num_checkpoints)
        if len(set(norm)) != len(norm):
            raise VoGError(f"window {name!r} names the same checkpoint twice: {idx}")
        out[name] = sorted(norm)
    return out


@dataclass
class BatchScores:
    """Scores of one batch: ``raw[window]`` is (B,) float64; labels are (B,) int64."""

    raw: dict[str, torch.Tensor]
    used_labels: torch.Tensor
    predicted: torch.Tensor | None


class VoGEngine:
    """Scores batches of images against K resident checkpoints.

    Args:
        models: the K checkpoints' models in training order (already loaded).
        windows: ``{name: [checkpoint indices]}``; every window gets its own mean.
        options: :class:`VoGOptions`.
        device: where models and batches live.
        dtype: float32 (default) or float64 for the model and gradients; the
            running statistics are always float64.
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        windows: Mapping[str, Sequence[int]],
        options: VoGOptions | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
    ):
        if len(models) < 2:
            raise VoGError(f"VoG needs at least 2 checkpoints, got {len(models)}")
        self.options = options or VoGOptions()
        self.device = resolve_device(device)
        self.dtype = dtype
        self.models = prepare_models(models, self.device, dtype)
        self.windows = normalize_windows(windows, len(self.models))
        if not self.windows:
            raise VoGError("at least one window is required")
        # Checkpoint index → windows containing it, for the streaming update.
        self._member = [[w for w, idx in self.windows.items() if k in idx] for k in range(len(self.models))]
        self._needed = [k for k in range(len(self.models)) if self._member[k]]

    # -- per-checkpoint pieces ------------------------------------------------
    def _score(self, out: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        if out.ndim != 2:
            raise VoGError(f"the model must return (batch, classes) scores, got shape {tuple(out.shape)}")
        if self.options.target == "probability":
            out = torch.softmax(out, dim=1)
        return out.gather(1, p[:, None]).sum()

    def saliency(self, k: int, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``S_k``: channel-reduced input gradient of checkpoint ``k``, shape (B, H, W)."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = self.models[k](x)
            (grad,) = torch.autograd.grad(self._score(out, p), x)
        if self.options.channel_reduction == "sum":
            return grad.sum(dim=1)
        return grad.mean(dim=1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class predicted by the last checkpoint (the trained model)."""
        return self.models[-1](x).argmax(dim=1)

    def check_output_size(self, x: torch.Tensor, num_classes: int) -> None:
        """Raise when the model's output size disagrees with the class list."""
        with torch.no_grad():
            out = self.models[-1](x[:1].to(self.device, self.dtype))
        if out.ndim != 2 or out.shape[1] != num_classes:
            raise VoGError(
                f"the model outputs {tuple(out.shape[1:])} scores per sample but {num_classes} classes "
                "were given; pass classes= in the model's output order (or num_classes= to build the "
                "architecture with the right head)"
            )

    # -- one batch -------------------------------------------------------------
    def used_labels(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The class p each sample is scored on, and the trained model's prediction (if needed)."""
        mode = self.options.label_mode
        predicted = None
        if mode in ("predicted", "auto"):
            predicted = self.predict(x)
        if mode == "true":
            if (labels < 0).any():
                raise VoGError("label_mode='true' needs a label for every sample; use label_mode='auto'")
            return labels, predicted
        if mode == "predicted":
            return predicted, predicted
        return torch.where(labels >= 0, labels, predicted), predicted

    def score_batch(self, x: torch.Tensor, labels: torch.Tensor) -> BatchScores:
        """Raw VoG of each sample in the batch for every window."""
        x = x.to(self.device, self.dtype, non_blocking=True)
        labels = labels.to(self.device, torch.long, non_blocking=True)
        p, predicted = self.used_labels(x, labels)
        B, _, H, W = x.shape
        f64 = torch.float64
        count = {w: 0 for w in self.windows}
        mean = {w: torch.zeros(B, H, W, dtype=f64, device=self.device) for w in self.windows}
        m2 = {w: torch.zeros(B, H, W, dtype=f64, device=self.device) for w in self.windows}
        for k in self._needed:
            s = self.saliency(k, x, p).to(f64)
            if not torch.isfinite(s).all():
                raise VoGError(
                    f"checkpoint #{k} produced NaN/inf input gradients; the checkpoint may be diverged "
                    "or the input badly scaled (check the transform)"
                )
            for w in self._member[k]:  # Welford: exact, stable, one pass
                count[w] += 1
                delta = s - mean[w]
                mean[w] += delta / count[w]
                m2[w] += delta * (s - mean[w])
        raw = {}
        for w in self.windows:
            var = m2[w] / count[w]  # population variance over the window's checkpoints
            if self.options.statistic == "std":
                var = var.clamp_min(0).sqrt()
            raw[w] = var.mean(dim=(1, 2))
        return BatchScores(raw=raw, used_labels=p, predicted=predicted)


@dataclass
class RawVoG:
    """Raw scores for ``n`` samples, aligned with ``ids``."""

    ids: list[str]
    raw: dict[str, np.ndarray]  # window → (n,) float64
    used_labels: np.ndarray  # (n,) int64
    predicted: np.ndarray | None  # (n,) int64 or None
    stats: dict = field(default_factory=dict)


def score_batches(
    engine: VoGEngine,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, Sequence[str]]],
    ids: Sequence[str],
    progress=None,
) -> RawVoG:
    """Run ``engine`` over ``batches`` of ``(images, labels, sample_ids)`` in any order.

    Scores are placed by sample id, so shuffled or multi-worker loaders cannot
    misattach them. ``progress(n_done)`` is called after each batch when given.
    Every id in ``ids`` must be seen exactly once.
    """
    n = len(ids)
    pos = {sid: i for i, sid in enumerate(ids)}
    if len(pos) != n:
        raise VoGError("sample ids are not unique")
    raw = {w: np.full(n, np.nan) for w in engine.windows}
    used = np.full(n, MISSING_LABEL, dtype=np.int64)
    needs_pred = engine.options.label_mode != "true"
    predicted = np.full(n, MISSING_LABEL, dtype=np.int64) if needs_pred else None
    seen = np.zeros(n, dtype=bool)
    done = 0
    for x, labels, batch_ids in batches:
        try:
            idx = np.fromiter((pos[s] for s in batch_ids), dtype=np.int64, count=len(batch_ids))
        except KeyError as e:
            raise VoGError(f"the loader produced sample id {e.args[0]!r} that is not in the view") from None
        if seen[idx].any():
            raise VoGError("the loader produced a sample twice")
        seen[idx] = True
        out = engine.score_batch(x, labels)
        for w, v in out.raw.items():
            raw[w][idx] = v.cpu().numpy()
        used[idx] = out.used_labels.cpu().numpy()
        if needs_pred:
            predicted[idx] = out.predicted.cpu().numpy()
        done += len(idx)
        if progress is not None:
            progress(done)
    if not seen.all():
        raise VoGError(f"the loader skipped {int((~seen).sum())} of {n} samples")
    return RawVoG(ids=list(ids), raw=raw, used_labels=used, predicted=predicted)


def class_normalize(scores: np.ndarray, labels: np.ndarray, normalization: str = "zscore") -> np.ndarray:
    """Normalize raw scores within each class.

    ``zscore``: ``(v − mean_c) / std_c`` with the population std of the samples whose
    used label is ``c``; a class with one sample or zero spread gets 0.
    ``abs``: the absolute value of that. ``none``: the raw scores, unchanged.

    Args:
        scores: (n,) float raw VoG.
        labels: (n,) int used labels.
    Returns:
        (n,) float64.
    """
    check_choice("normalization", normalization, ("zscore", "abs", "none"))
    scores = np.asarray(scores, dtype=np.float64)
    if normalization == "none":
        return scores.copy()
    labels = np.asarray(labels)
    out = np.zeros_like(scores)
    for c in np.unique(labels):
        m = labels == c
        v = scores[m]
        sd = v.std()
        if v.size > 1 and sd > 0:
            out[m] = (v - v.mean()) / sd
    return np.abs(out) if normalization == "abs" else out


def class_statistics(scores: np.ndarray, labels: np.ndarray) -> dict[int, dict[str, float]]:
    """Per-class ``{label: {"mean", "std", "count"}}`` of raw scores (population std)."""
    stats = {}
    for c in np.unique(labels):
        v = np.asarray(scores)[labels == c]
        stats[int(c)] = {"mean": float(v.mean()), "std": float(v.std()), "count": int(v.size)}
    return stats
