"""Streaming a loader through the engine and placing each score by its sample id."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import VoGError
from .gradients import MISSING_LABEL, VoGEngine


@dataclass
class RawVoG:
    """Raw scores for ``n`` samples, aligned with ``ids``."""

    ids: list[str]
    raw: dict[str, np.ndarray]  # window (or "window:companion") → (n,) float64
    used_labels: np.ndarray  # (n,) int64
    predicted: np.ndarray | None  # (n,) int64 or None
    stats: dict = field(default_factory=dict)


class Placement:
    """Where each sample id goes in ``ids``: ``place(batch_ids)`` → their positions. Every id may
    come once. Batches in the order of ``ids`` (a plain DataLoader, with or without workers) are
    placed by position; an id → position table (≈70 bytes per sample) is built only for batches
    in another order. ``twice`` and ``unknown`` are the messages of the two errors (``unknown``
    formatted with the id)."""

    def __init__(self, ids: Sequence[str], twice: str, unknown: str):
        self.ids, self.n = ids, len(ids)
        self._twice, self._unknown = twice, unknown
        self._pos: dict | None = None
        self._cursor = 0
        self._seen = np.zeros(self.n, dtype=bool)

    def __call__(self, batch_ids: Sequence[str]) -> np.ndarray:
        b, c = len(batch_ids), self._cursor
        if self._pos is None and c + b <= self.n and all(a == e for a, e in zip(batch_ids, self.ids[c : c + b])):
            idx = np.arange(c, c + b)
            self._cursor += b
        else:
            if self._pos is None:
                self._pos = {sid: i for i, sid in enumerate(self.ids)}
                if len(self._pos) != self.n:
                    raise VoGError("sample ids are not unique")
            try:
                idx = np.fromiter((self._pos[s] for s in batch_ids), dtype=np.int64, count=b)
            except KeyError as e:
                raise VoGError(self._unknown.format(e.args[0])) from None
        if self._seen[idx].any():
            raise VoGError(self._twice)
        self._seen[idx] = True
        return idx

    def missing(self) -> int:
        """How many ids were not placed."""
        return int((~self._seen).sum())


def score_batches(
    engine: VoGEngine,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, Sequence[str]]],
    ids: Sequence[str],
    progress=None,
    on_batch=None,
) -> RawVoG:
    """Run ``engine`` over ``batches`` of ``(images, labels, sample_ids)`` in any order.

    Scores are placed by sample id, so shuffled or multi-worker loaders cannot
    misattach them. ``progress(n_done)`` is called after each batch when given, and
    ``on_batch(batch_ids, batch_scores)`` once a batch is scored (used to persist
    partial results). Every id in ``ids`` must be seen exactly once.

    ``stats`` of the result: ``data_wait``, the seconds spent waiting for the loader's next
    batch, and ``compute``, the seconds spent scoring (until the scores are on the host) —
    when ``data_wait`` is a large share, the device idles for want of images.
    """
    n = len(ids)
    place = Placement(
        ids,
        twice="the loader produced a sample twice",
        unknown="the loader produced sample id {!r} that is not in the view",
    )
    raw = {w: np.full(n, np.nan) for w in getattr(engine, "outputs", engine.windows)}
    used = np.full(n, MISSING_LABEL, dtype=np.int64)
    needs_pred = engine.options.label_mode != "true"
    predicted = np.full(n, MISSING_LABEL, dtype=np.int64) if needs_pred else None
    done = 0
    wait = compute = 0.0  # seconds blocked on the loader / in the engine (results on the host)
    iterator = iter(batches)
    while True:
        t0 = time.perf_counter()
        item = next(iterator, None)
        t1 = time.perf_counter()
        wait += t1 - t0
        if item is None:
            break
        x, labels, batch_ids = item
        idx = place(batch_ids)
        out = engine.score_batch(x, labels)
        for w, v in out.raw.items():
            raw[w][idx] = v.cpu().numpy()
        used[idx] = out.used_labels.cpu().numpy()
        if needs_pred:
            predicted[idx] = out.predicted.cpu().numpy()
        compute += time.perf_counter() - t1
        done += len(idx)
        if on_batch is not None:
            on_batch(list(batch_ids), out)
        if progress is not None:
            progress(done)
    if place.missing():
        raise VoGError(f"the loader skipped {place.missing()} of {n} samples")
    return RawVoG(
        ids=list(ids), raw=raw, used_labels=used, predicted=predicted, stats={"data_wait": wait, "compute": compute}
    )
