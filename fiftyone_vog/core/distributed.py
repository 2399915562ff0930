"""Scoring a view's samples: sharded across ``torchrun`` processes and resumable.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), every rank scores its
own shard of the sample ids (every ``WORLD_SIZE``-th sample, starting at ``RANK``), the raw
scores are gathered with ``torch.distributed`` (a gloo group, whatever the main backend),
and every rank ends with the same full set; :func:`fiftyone_vog.compute_vog` lets only
rank 0 class-normalize-and-write. The process group is initialized here when the launcher
has not: NCCL on CUDA, gloo on CPU. Raw scores depend on nothing but the sample and the
checkpoints, so the result equals a single-process run's up to float rounding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from ..engine import MISSING_LABEL, RawVoG, VoGEngine, VoGError, score_batches
from ..engine.streaming import Placement

_OBJECT_GROUP = None


@dataclass
class DistContext:
    """This process's place in a ``torchrun`` job."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """On CUDA, one GPU per process: ``cuda:LOCAL_RANK`` unless an index was given."""
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.local_rank % torch.cuda.device_count())
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return device

    def shard(self, n: int) -> np.ndarray:
        """Positions this rank scores: every ``world_size``-th, from ``rank``."""
        return np.arange(self.rank, n, self.world_size)

    def barrier(self) -> None:
        dist.barrier(group=_object_group())


def from_env(device: torch.device) -> DistContext | None:
    """The ``torchrun`` context, initializing the process group if needed; None when not distributed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    if "RANK" not in os.environ:
        raise VoGError(
            "WORLD_SIZE is set but RANK is not; launch with torchrun (or set RANK, MASTER_ADDR, MASTER_PORT)"
        )
    ctx = DistContext(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", os.environ["RANK"])))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" and dist.is_nccl_available() else "gloo"
        if backend == "nccl":
            ctx.device(device)
        dist.init_process_group(backend=backend)
    return ctx


def _object_group():
    """A gloo group for Python-object collectives (works beside an NCCL default group)."""
    global _OBJECT_GROUP
    if _OBJECT_GROUP is None:
        _OBJECT_GROUP = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    return _OBJECT_GROUP


def merge(parts: list[RawVoG], ids: list[str]) -> RawVoG:
    """Place the scores of disjoint parts by sample id; every id must be scored exactly once."""
    n = len(ids)
    place = Placement(
        ids,
        twice="a sample was scored twice while merging partial results",
        unknown="a partial result holds sample id {!r}, which is not in the view",
    )
    windows = list(parts[0].raw)
    raw = {w: np.full(n, np.nan) for w in windows}
    used = np.full(n, MISSING_LABEL, dtype=np.int64)
    has_pred = any(p.predicted is not None for p in parts)
    predicted = np.full(n, MISSING_LABEL, dtype=np.int64) if has_pred else None
    for p in parts:
        idx = place(p.ids)
        for w in windows:
            raw[w][idx] = p.raw[w]
        used[idx] = p.used_labels
        if has_pred:
            predicted[idx] = p.predicted
    if place.missing():
        raise VoGError(f"{place.missing()} of {n} samples were not scored")
    stats = dict(parts[0].stats) if len(parts) == 1 else {}
    return RawVoG(ids=list(ids), raw=raw, used_labels=used, predicted=predicted, stats=stats)


def score_samples(
    engine: VoGEngine, dataset, ids: list[str], make_loader, progress=None, partial=None, ctx: DistContext | None = None
) -> RawVoG:
    """Score the samples of ``dataset`` (items ``(image, label, id)`` aligned with ``ids``).

    Args:
        make_loader: ``make_loader(torch_dataset)`` → an iterable of ``(images, labels, ids)``.
        progress: FiftyOne's ``progress`` argument (a bar is shown on rank 0 only).
        partial: a :class:`~fiftyone_vog.core.resume.PartialScores` to resume from and flush to.
        ctx: the ``torchrun`` context, or None for a single process.
    Returns:
        The full :class:`RawVoG` aligned with ``ids`` (on every rank).
    """
    import fiftyone.core.utils as fou

    mine = np.arange(len(ids)) if ctx is None else ctx.shard(len(ids))
    my_ids = [ids[i] for i in mine]
    parts = []
    if partial is not None:
        done_ids, done_raw, done_used, done_pred = partial.load()
        keep = set(my_ids)
        sel = np.array([i for i, s in enumerate(done_ids) if s in keep], dtype=np.int64)
        if len(sel):
            parts.append(
                RawVoG(
                    ids=[done_ids[i] for i in sel],
                    raw={w: v[sel] for w, v in done_raw.items()},
                    used_labels=done_used[sel],
                    predicted=None if done_pred is None else done_pred[sel],
                )
            )
    done = set(parts[0].ids) if parts else set()
    todo = [int(i) for i in mine if ids[i] not in done]
    timing = {"data_wait": 0.0, "compute": 0.0}
    if ctx is not None and not ctx.is_main:
        progress = False
    with fou.ProgressBar(total=len(mine), progress=progress) as pb:
        pb.set_iteration(len(done))
        if todo:
            todo_ids = [ids[i] for i in todo]
            on_batch = partial.add if partial is not None else None
            loader = make_loader(torch.utils.data.Subset(dataset, todo))
            parts.append(
                score_batches(
                    engine, loader, todo_ids, on_batch=on_batch, progress=lambda n: pb.set_iteration(len(done) + n)
                )
            )
            timing = {k: parts[-1].stats[k] for k in timing}
    if partial is not None:
        partial.flush()
    if not parts:  # an empty shard (more ranks than samples)
        parts.append(
            RawVoG(
                ids=[],
                raw={w: np.zeros(0) for w in getattr(engine, "outputs", engine.windows)},
                used_labels=np.zeros(0, np.int64),
                predicted=None if engine.options.label_mode == "true" else np.zeros(0, np.int64),
            )
        )
    if ctx is None:
        raw = merge(parts, ids)
        raw.stats.update(resumed=len(done), **timing)
        return raw
    mine_raw = merge(parts, my_ids) if my_ids else parts[0]
    mine_raw.stats.update(resumed=len(done), **timing)
    parts = [None] * ctx.world_size
    dist.all_gather_object(parts, mine_raw, group=_object_group())
    raw = merge(parts, ids)
    for key in ("resumed", *timing):  # totals over the ranks
        raw.stats[key] = sum(p.stats[key] for p in parts)
    return raw
