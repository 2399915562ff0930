"""Input gradients of K resident checkpoints and their per-window VoG (pure PyTorch).

A batch's K maps are computed into one reused buffer (K, B, H, W) and reduced right away with
an exact two-pass variance in float64; the K input gradients come from a loop over the
checkpoints or, with ``strategy="vmap"``, from one batched ``torch.func`` pass over the stacked
weights. See the package docstring for the definition.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import VoGError, check_choice
from ..options import CHANNEL_REDUCTIONS, LABEL_MODES, STATISTICS, STRATEGIES, TARGETS  # noqa: F401  (one table)
from .companions import COMPANIONS, companion_key, window_companions
from .folding import fold_checked
from .layout import channels_last_checked
from .precision import AUTOCAST_CHOICES, exact_fp32, find_input_layer, fp16_scaled_probability, mixed_precision
from .windows import normalize_windows

#: Label value meaning "this sample has no label" (used by ``label_mode="auto"``).
MISSING_LABEL = -1

#: ``strategy="split"`` cuts no part smaller than this many samples: a part's every operator costs
#: the same Python dispatch (under the GIL, shared by the parts' threads) whatever its size, so
#: with many threads and a small batch the parts are fewer than the threads and each part's
#: operators run on ``threads // parts`` threads (16 threads, batch 64: 4 parts × 4 threads; a
#: batch under 32 samples runs the loop).
SPLIT_MIN_PART = 16


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
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise VoGError(f"device={device!r} is not a device; use 'cpu', 'cuda' or 'cuda:N'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise VoGError(f"device={str(device)!r} was requested but CUDA is not available; use device='cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise VoGError(
            f"device={str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
            "numbered from 0; use 'cuda' or 'cuda:0'"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise VoGError(f"device={str(device)!r} was requested but MPS is not available; use device='cpu'")
    # meta, xla, ... hold no data or need their own setup: gradients are computed on these three
    if device.type not in ("cpu", "cuda", "mps"):
        raise VoGError(f"device={str(device)!r} cannot compute gradients on images; use 'cpu', 'cuda' or 'cuda:N'")
    return device


def prepare_models(
    models: Sequence[nn.Module],
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> list[nn.Module]:
    """Move every checkpoint's model to ``device``, eval mode, parameters frozen."""
    prepared = []
    for m in models:
        m = m.to(device=device, dtype=dtype)
        if channels_last:
            m = m.to(memory_format=torch.channels_last)
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
        prepared.append(m)
    return prepared


@dataclass
class BatchScores:
    """Scores of one batch: ``raw[window]`` (and ``raw["window:companion"]`` with companions) is
    (B,) float64; labels are (B,) int64."""

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
            per-pixel statistics are always computed in float64.
        strategy: how the K input gradients of a batch are computed (same result):
            ``"loop"`` runs the checkpoints one after another; ``"split"`` (CPU only, opt-in)
            cuts the batch into one part per torch thread (``torch.get_num_threads()`` when
            the batch starts; parts of at least :data:`SPLIT_MIN_PART` samples, the threads
            shared out among them) and runs the loop over each part on its own thread (the
            batch's activations, as ``loop``, but each thread's allocator keeps its own free
            memory; the model's ``forward`` must not keep per-call state on the module);
            ``"vmap"`` runs them all in one batched pass over stacked weights (``torch.func``;
            needs K× the activation memory of one checkpoint); ``"auto"`` (default) picks per
            device, see :func:`default_settings`.
        autocast: ``None`` (default, exact) or ``"bf16"`` / ``"fp16"``: mixed-precision
            forward and backward; ranks agree with float32 (Spearman ≥ 0.999 in our tests) but
            values differ. See :mod:`fiftyone_vog.precision`. ``"bf16-all"`` / ``"fp16-all"``
            mean ``fp32_input_layer=False``.
        companions: also score every window's training-dynamics companions (mean loss, mean
            margin, last max-softmax, last energy of the used label) from the class scores of the
            same forward passes; they appear in :attr:`outputs` and in ``BatchScores.raw`` under
            ``"{window}:{name}"`` (see :mod:`fiftyone_vog.engine.companions`).
        fp32_input_layer: with ``autocast``, keep the model's input layer (its first
            convolution or linear layer) in float32 — the default, and what keeps the ranks; the
            layer's name is in :attr:`settings`. ``False`` runs everything in half precision.
        channels_last: run convolutions in NHWC memory layout (same result up to float
            rounding); ``None`` picks per device: on the CPU in float32 without autocast, NHWC
            when the model has a 2-d convolution and its class scores on the first batch are the
            same in NHWC (:mod:`fiftyone_vog.engine.layout`; **changes the given modules' layout
            in place**, as ``True`` does); on CUDA only with autocast. What was done is in
            :attr:`settings` (``channels_last``, and ``channels_last_check`` after the check).
        fold_batchnorm: on the first batch, fold each eval-mode BatchNorm into the convolution
            before it (same function, same scores up to float rounding, one operator fewer each
            way; :mod:`fiftyone_vog.engine.folding`), when the folded model's class scores on that
            batch equal the original's. **Changes the given modules in place**, so off by default
            here; :func:`fiftyone_vog.compute_vog`, which builds its own modules, turns it on.
            What was done is in :attr:`settings` (``batchnorm_folded``).
    """

    def __init__(
        self,
        models: Sequence[nn.Module],
        windows: Mapping[str, Sequence[int]],
        options: VoGOptions | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        strategy: str = "auto",
        autocast: str | None = None,
        channels_last: bool | None = None,
        fp32_input_layer: bool = True,
        companions: bool = False,
        fold_batchnorm: bool = False,
    ):
        if len(models) < 2:
            raise VoGError(f"VoG needs at least 2 checkpoints, got {len(models)}")
        self.options = options or VoGOptions()
        self.device = resolve_device(device)
        self.dtype = dtype
        check_choice("strategy", strategy, STRATEGIES)
        if autocast is not None:
            check_choice("autocast", autocast, AUTOCAST_CHOICES)
            if dtype != torch.float32:
                raise VoGError("autocast needs float32 models; use precision='float32' with autocast")
            if autocast.endswith("-all"):  # "bf16-all": the input layer in half precision too
                autocast, fp32_input_layer = autocast[: -len("-all")], False
        self.autocast = autocast
        self.fp32_input_layer = bool(fp32_input_layer)
        self._input_layer: str | None = None  # found on the first batch (needs an input)
        self._kept_fp32: list | None = None
        defaults = default_settings(self.device, autocast)
        layout = defaults["channels_last"] if channels_last is None else bool(channels_last)
        # "check": decided on the first batch (_first_batch), float32 only (the measured case)
        self._layout_check = layout == "check" and dtype == torch.float32
        self._layout: dict | None = None  # channels_last_checked's report, once the first batch has run
        self.channels_last = layout is True
        self.models = prepare_models(models, self.device, dtype, self.channels_last)
        self.windows = normalize_windows(windows, len(self.models))
        if not self.windows:
            raise VoGError("at least one window is required")
        # Only checkpoints that some window uses are run; ``_slot[k]`` is k's row in a batch's maps.
        self._needed = sorted({k for idx in self.windows.values() for k in idx})
        self._slot = {k: i for i, k in enumerate(self._needed)}
        self._rows = {w: _rows([self._slot[k] for k in idx]) for w, idx in self.windows.items()}
        self._stacked = None
        if strategy == "auto":
            strategy = defaults["strategy"]  # "loop" on every device (see default_settings)
        elif strategy == "split" and self.device.type != "cpu":
            raise VoGError(
                f"strategy='split' cuts batches across CPU threads; on {self.device.type} use "
                "strategy='loop' (or 'auto')"
            )
        elif strategy == "vmap":
            # BatchNorm's batching rule rejects half-precision inputs with float32 statistics
            problem = "autocast is not supported with vmap" if autocast else stacking_problem(self.models)
            if problem is not None:
                raise VoGError(f"strategy='vmap' cannot run these checkpoints: {problem}; use strategy='loop'")
        self.strategy = strategy
        self._pool = None  # "split": (parts, the threads that take the other parts), made on first use
        self._workspace: dict = {}
        self.companions = bool(companions)
        self._logits: torch.Tensor | None = None  # (K', B, classes) float64 of the current batch
        self.fold_batchnorm = bool(fold_batchnorm)
        self._folded: dict | None = None  # fold_checked's report, once the first batch has run

    @property
    def outputs(self) -> list[str]:
        """Keys of ``BatchScores.raw``: the windows, then ``"{window}:{companion}"`` when enabled."""
        keys = list(self.windows)
        if self.companions:
            keys += [companion_key(w, c) for w in self.windows for c in COMPANIONS]
        return keys

    @property
    def settings(self) -> dict:
        """The effective computation settings (for a run's record)."""
        settings = {
            "strategy": self.strategy,
            "autocast": self.autocast,
            "channels_last": self.channels_last,
            "dtype": str(self.dtype).replace("torch.", ""),
        }
        if self.autocast is not None:
            settings["fp32_input_layer"] = self._input_layer if self.fp32_input_layer else None
        if self.fold_batchnorm:
            settings["batchnorm_folded"] = self._folded
        if self._layout_check:
            settings["channels_last_check"] = self._layout
        return settings

    def _first_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Once, on the first batch ``x`` (as :meth:`_input` made it): fold the BatchNorms
        (``fold_batchnorm``), then choose the memory layout (``channels_last=None`` on the CPU),
        each checked on ``x``; returns ``x`` in the layout chosen."""
        if self.fold_batchnorm and self._folded is None:
            with exact_fp32(self.device):  # the check compares IEEE float32 (no TF32) class scores
                self._folded = fold_checked(self.models, x)
        if self._layout_check and self._layout is None:
            with exact_fp32(self.device):
                self._layout = channels_last_checked(self.models, x)
            self.channels_last = self._layout["channels_last"]
            x = self._input(x)
        return x

    # -- per-checkpoint pieces ------------------------------------------------
    def _score(self, out: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(Σ_i target_i, per-sample scale or None)``: the input gradient of the sum divided by
        the scale is each sample's ∂A_p/∂x."""
        if out.ndim != 2:
            raise VoGError(f"the model must return (batch, classes) scores, got shape {tuple(out.shape)}")
        if self.options.target == "probability":
            if self.autocast == "fp16":  # keep confident samples out of fp16's underflow
                return fp16_scaled_probability(out, p)
            # softmax in at least float32 (autocast may hand back half precision)
            out = torch.softmax(out, dim=1, dtype=torch.promote_types(out.dtype, torch.float32))
        return out.gather(1, p[:, None]).sum(), None

    def _reduce_channels(self, grad: torch.Tensor, dim: int, out: torch.Tensor | None = None) -> torch.Tensor:
        if self.options.channel_reduction == "sum":
            return torch.sum(grad, dim=dim, out=out) if out is not None else grad.sum(dim=dim)
        return torch.mean(grad, dim=dim, out=out) if out is not None else grad.mean(dim=dim)

    def _autocast(self, k: int, x: torch.Tensor):
        """The precision context of checkpoint ``k``'s pass over ``x``."""
        if self.autocast is None:
            return exact_fp32(self.device)
        if self._kept_fp32 is None:
            self._find_input_layer(x)
        return mixed_precision(self.device, self.autocast, self._kept_fp32[k])

    def _find_input_layer(self, x: torch.Tensor) -> None:
        name = find_input_layer(self.models[-1], x) if self.fp32_input_layer else None
        self._input_layer = name
        self._kept_fp32 = [m.get_submodule(name) if name else None for m in self.models]

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype, non_blocking=True)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _input_gradient(self, k: int, x: torch.Tensor, p: torch.Tensor | None, labels=None, logits=None):
        """∂A_p/∂x of checkpoint ``k`` (B, C, H, W); with ``p=None`` p comes from this forward pass.
        ``logits``: a dict that receives ``{k: this forward pass's class scores (B, classes)}``."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad(), self._autocast(k, x):
            out = self.models[k](x)
            if logits is not None:
                logits[k] = out.detach()
            predicted = None
            if p is None:  # this is the last checkpoint: its forward pass gives the prediction
                predicted = out.detach().argmax(dim=1)
                p = self._choose_labels(labels, predicted)
            score, scale = self._score(out, p)
            (grad,) = torch.autograd.grad(score, x)
            if scale is not None:
                grad = grad / scale.view(-1, *([1] * (grad.ndim - 1)))  # powers of two: exact
        return grad, p, predicted

    def saliency(self, k: int, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """``S_k``: channel-reduced input gradient of checkpoint ``k``, shape (B, H, W)."""
        grad, _, _ = self._input_gradient(k, self._input(x), p.to(self.device))
        return self._reduce_channels(grad, dim=1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class predicted by the last checkpoint (the trained model)."""
        x = self._input(x)
        with self._autocast(len(self.models) - 1, x):
            return self.models[-1](x).argmax(dim=1)

    def check_output_size(self, x: torch.Tensor, num_classes: int) -> None:
        """Raise when the model cannot take the input or its output size disagrees with the class list."""
        try:
            with torch.no_grad():
                out = self.models[-1](self._input(x[:1]))
        except (RuntimeError, ValueError) as e:  # wrong channels or size (transformers raises ValueError)
            raise VoGError(
                f"the model cannot take the images as transformed ({x.shape[1]}×{x.shape[2]}×{x.shape[3]}, "
                f"channels×height×width): {str(e).splitlines()[0][:300]} — choose the transform the model was "
                "trained with (transform='rgb' for 3 channels, 'gray' for 1, 'cifar', 'imagenet', or your own)"
            ) from None
        if out.ndim != 2 or out.shape[1] != num_classes:
            raise VoGError(
                f"the model outputs {tuple(out.shape[1:])} scores per sample but {num_classes} classes "
                "were given; pass classes= in the model's output order (or num_classes= to build the "
                "architecture with the right head)"
            )

    # -- one batch -------------------------------------------------------------
    def _choose_labels(self, labels: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
        if self.options.label_mode == "predicted":
            return predicted
        return torch.where(labels >= 0, labels, predicted)  # "auto"

    def saliency_maps(self, x: torch.Tensor, labels: torch.Tensor):
        """All needed checkpoints' maps of one batch: ``(maps (K', B, H, W), p, predicted)``.

        Row ``i`` of ``maps`` is checkpoint ``self._needed[i]``. The buffer is reused by the
        next batch: copy what must outlive it.
        """
        if self.options.label_mode == "true" and (labels < 0).any():
            raise VoGError("label_mode='true' needs a label for every sample; use label_mode='auto'")
        x = self._first_batch(self._input(x))
        labels = labels.to(self.device, torch.long, non_blocking=True)
        B, _, H, W = x.shape
        maps = self._buffer("maps", (len(self._needed), B, H, W), self.dtype)
        self._logits = None
        last = len(self.models) - 1
        p = labels if self.options.label_mode == "true" else None
        predicted = None
        if p is None and (self.strategy == "vmap" or last not in self._slot):
            predicted = self.predict(x)
            p = self._choose_labels(labels, predicted)
        if self.strategy == "vmap":
            grads, logits = self._vmap_gradients(x, p)  # (K', B, C, H, W), (K', B, classes)
            self._reduce_channels(grads, dim=2, out=maps)
            if self.companions:
                self._logits = logits.detach().to(torch.float64)
            return maps, p, predicted
        threads = torch.get_num_threads() if self.strategy == "split" else 1
        parts = min(threads, B // SPLIT_MIN_PART)
        if parts > 1:
            p, pred, logits = self._split(x, labels, p, maps, parts, threads)
        else:
            p, pred, logits = self._loop(x, labels, p, maps)
        predicted = pred if pred is not None else predicted
        if logits is not None:
            self._logits = torch.stack([logits[k].to(torch.float64) for k in self._needed])
        return maps, p, predicted

    def _loop(self, x: torch.Tensor, labels: torch.Tensor, p: torch.Tensor | None, maps: torch.Tensor):
        """The needed checkpoints one after another on the batch ``x``: fills ``maps``
        (K', b, H, W); returns ``(p, predicted or None, {k: class scores} or None)``."""
        last = len(self.models) - 1
        predicted = None
        order = list(self._needed)
        if p is None:  # fuse the prediction into the last checkpoint's own forward pass
            order.remove(last)
            order.insert(0, last)
        logits = {} if self.companions else None
        for k in order:
            grad, p, pred = self._input_gradient(k, x, p, labels, logits)
            predicted = pred if pred is not None else predicted
            self._reduce_channels(grad, dim=1, out=maps[self._slot[k]])
        return p, predicted, logits

    def _split(
        self,
        x: torch.Tensor,
        labels: torch.Tensor,
        p: torch.Tensor | None,
        maps: torch.Tensor,
        parts: int,
        threads: int,
    ):
        """:meth:`_loop` on ``parts`` slices of the batch at once, one per thread (this one takes
        the first), the ``threads`` intra-op threads shared out among them (one each when there
        are as many parts as threads): on a CPU, for the models and batches measured in
        docs/performance.md, faster than one loop whose every operator is split across all the
        threads. Samples do not interact (eval mode), so each part's maps are the batch's rows."""
        from concurrent.futures import ThreadPoolExecutor, wait

        if self.autocast is not None and self._kept_fp32 is None:
            self._find_input_layer(x)  # once, before the threads share the models
        if self._pool is None or self._pool[0] != parts:
            if self._pool is not None:
                self._pool[1].shutdown(wait=False)
            self._pool = (
                parts,
                ThreadPoolExecutor(parts - 1, thread_name_prefix="vog-split"),
            )
        pool = self._pool[1]
        edges = [round(i * x.shape[0] / parts) for i in range(parts + 1)]
        spans = list(zip(edges[:-1], edges[1:]))

        # intra-op threads per part: the remainder goes to the first parts (3 threads, 2 parts: 2 + 1)
        share = [threads // parts + (i < threads % parts) for i in range(parts)]

        def part(lo: int, hi: int, n: int):
            # a thread's first torch call sets its count to the last one set in any thread:
            # let that happen first, then set this part's own (0.4 µs)
            torch.get_num_threads()
            torch.set_num_threads(n)
            return self._loop(x[lo:hi], labels[lo:hi], None if p is None else p[lo:hi], maps[:, lo:hi])

        futures = [pool.submit(part, lo, hi, n) for (lo, hi), n in zip(spans[1:], share[1:])]
        try:
            results = [part(*spans[0], share[0])] + [f.result() for f in futures]
        finally:
            wait(futures)  # no part may still write into maps once this returns or raises
            torch.set_num_threads(threads)
        ps, preds, logits = zip(*results)
        return (
            torch.cat(ps),
            None if preds[0] is None else torch.cat(preds),
            None if logits[0] is None else {k: torch.cat([d[k] for d in logits]) for k in logits[0]},
        )

    def score_batch(self, x: torch.Tensor, labels: torch.Tensor) -> BatchScores:
        """Raw VoG of each sample in the batch for every window."""
        maps, p, predicted = self.saliency_maps(x, labels)
        raw = {}
        for w, rows in self._rows.items():
            raw[w] = self._window_vog(maps, rows)
        bad = [w for w, v in raw.items() if not bool(torch.isfinite(v).all())] if raw else []
        if bad:  # one check per batch; name the culprit only when something is wrong
            for k in self._needed:
                if not bool(torch.isfinite(maps[self._slot[k]]).all()):
                    break
            raise VoGError(
                f"checkpoint #{k} produced NaN/inf input gradients; the checkpoint may be diverged "
                "or the input badly scaled (check the transform)"
            )
        if self.companions:
            for w, idx in self.windows.items():
                rows = [self._slot[k] for k in idx]
                for c, v in window_companions(self._logits[rows], p).items():
                    raw[companion_key(w, c)] = v
        return BatchScores(raw=raw, used_labels=p, predicted=predicted)

    def _window_vog(self, maps: torch.Tensor, rows) -> torch.Tensor:
        """Mean over pixels of the per-pixel variance (or std) over the window's rows; (B,) float64."""
        sel = maps[rows]  # a view for a contiguous window, else a gathered copy
        Kw, B, H, W = sel.shape
        s = self._buffer("f64", (Kw, B, H, W), torch.float64)
        s.copy_(sel)
        mu = torch.mean(s, dim=0, out=self._buffer("mu", (B, H, W), torch.float64))
        s.sub_(mu).square_()  # two passes in float64: exact and stable
        var = torch.mean(s, dim=0, out=mu)
        if self.options.statistic == "std":
            var.sqrt_()
        return var.mean(dim=(1, 2))

    def _buffer(self, name: str, shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        """A reusable scratch tensor: no per-batch allocation (and page faults) for large maps."""
        key = (name, shape, dtype)
        buf = self._workspace.get(key)
        if buf is None:
            # keep one shape per name: the last, smaller batch of a run replaces it once
            for old in [k for k in self._workspace if k[0] == name]:
                del self._workspace[old]
            buf = self._workspace[key] = torch.empty(shape, dtype=dtype, device=self.device)
        return buf

    # -- all checkpoints in one batched pass (torch.func) ------------------------------
    def _vmap_gradients(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call, grad, vmap

        if self._stacked is None:
            self._stacked = stack_models([self.models[k] for k in self._needed])
        base, params, buffers = self._stacked

        def score(params, buffers, x, p):
            out = functional_call(base, (params, buffers), (x,))
            return self._score(out, p)[0], out  # fp32: no scale; the class scores ride along

        with torch.enable_grad(), exact_fp32(self.device):  # autocast is refused with vmap
            return vmap(grad(score, argnums=2, has_aux=True), in_dims=(0, 0, None, None))(params, buffers, x, p)


def _rows(slots: list[int]):
    """A slice when the window's rows are contiguous (a view, no copy), else an index list."""
    if slots == list(range(slots[0], slots[0] + len(slots))):
        return slice(slots[0], slots[0] + len(slots))
    return slots


def stacking_problem(models: Sequence[nn.Module]) -> str | None:
    """Why the models cannot be stacked for ``torch.func`` (None when they can)."""
    if any(isinstance(m, torch.jit.ScriptModule) for m in models):
        return "TorchScript checkpoints cannot be called functionally"
    ref = [(n, t.shape, t.dtype) for n, t in _state(models[0])]
    for k, m in enumerate(models[1:], 1):
        if type(m) is not type(models[0]) or [(n, t.shape, t.dtype) for n, t in _state(m)] != ref:
            return f"checkpoint #{k} has a different architecture from checkpoint #0"
    return None


def _state(m: nn.Module):
    return [*m.named_parameters(), *m.named_buffers()]


def stack_models(models: Sequence[nn.Module]):
    """``(base, params, buffers)``: one stateless copy of the architecture and the K checkpoints'
    parameters and buffers stacked on a new leading dimension (``torch.func.stack_module_state``)."""
    from torch.func import stack_module_state

    params, buffers = stack_module_state(list(models))
    params = {k: v.detach() for k, v in params.items()}
    base = copy.deepcopy(models[0]).to("meta")
    return base, params, buffers


def default_settings(device: torch.device, autocast: str | None = None) -> dict:
    """Default ``strategy`` and ``channels_last`` per device.

    ``loop`` everywhere: on CPU ``vmap``'s grouped convolutions are slower than the loop, and
    ``split`` (one part of the batch per thread), faster at the engine level, was slower than the
    loop when scoring right after training in the same process (docs/performance.md); on a GPU a
    large model saturates the device one checkpoint at a time while ``vmap`` needs K× the
    activation memory (opt in for small models). ``channels_last``: with autocast on CUDA, where
    NHWC is what the tensor-core kernels want; ``"check"`` on the CPU without autocast, where
    oneDNN's convolutions and max-pooling are faster in NHWC (decided on the first batch,
    :mod:`fiftyone_vog.engine.layout`). The measurements behind this are in docs/performance.md,
    with the commands that produced them.
    """
    if device.type == "cuda":
        return {"strategy": "loop", "channels_last": autocast is not None}
    return {"strategy": "loop", "channels_last": "check" if device.type == "cpu" and autocast is None else False}
