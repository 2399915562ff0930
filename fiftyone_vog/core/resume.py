"""Partial raw scores of an unfinished VoG run, so that an interrupted run can resume.

While :func:`fiftyone_vog.compute_vog` scores, the raw scores of finished batches are
flushed in chunks (every ``FIFTYONE_VOG_FLUSH_SECONDS`` seconds, default 10, or every
50,000 samples) to the collection ``fiftyone_vog.partial`` of the FiftyOne database —
beside the dataset, so a run on a shared MongoDB resumes from any machine. Each chunk is
one document, inserted atomically: a killed process loses at most the chunk it was filling.

A chunk is keyed by the dataset, the run key (``vog_field``) and a fingerprint of
everything that changes a raw score (checkpoint SHA-256s, model, classes, options,
windows, transform, precision): a changed configuration never resumes from stale scores.
``compute_vog(..., resume=True)`` scores only the samples not in a chunk; the visible
fields are written once, when every sample is scored, and the chunks are then deleted.

Each chunk also keeps, per sample, a 64-bit hash of its id, label and file path
(:func:`sample_signatures`): a sample whose label or image path changed since its chunk was
flushed is scored again (the others resume), and the run's config counts it in
``resume_changed_samples``. A changed image file under the same path is not detected.

Chunks of datasets deleted since are garbage: whenever partial scores are opened or
dropped, the chunks whose ``dataset_id`` names no existing dataset are deleted (one
``distinct`` on the indexed ``dataset_id`` and one ``_id`` query of FiftyOne's
``datasets`` collection).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence

import numpy as np

COLLECTION = "fiftyone_vog.partial"
MAX_PENDING = 50_000  # samples per chunk: ~2 MB, far below MongoDB's 16 MB document limit

logger = logging.getLogger(__name__)


def fingerprint(config: dict) -> str:
    """SHA-256 of a JSON-serializable configuration (key order does not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def sample_signatures(ids: Sequence[str], labels: Sequence[int], filepaths: Sequence[str]) -> np.ndarray:
    """(n,) uint64: a hash of each sample's id, label index and file path (what a raw score reads
    besides the configuration, which the chunks' key covers)."""
    h = hashlib.blake2b
    return np.fromiter(
        (
            int.from_bytes(h(f"{i}\0{l}\0{p}".encode(), digest_size=8).digest(), "little")
            for i, l, p in zip(ids, np.asarray(labels).tolist(), filepaths)
        ),
        dtype=np.uint64,
        count=len(ids),
    )


def _flush_seconds() -> float:
    text = os.environ.get("FIFTYONE_VOG_FLUSH_SECONDS", "10")
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0:  # NaN too
        from ..errors import VoGError

        raise VoGError(
            f"FIFTYONE_VOG_FLUSH_SECONDS={text!r} is not a number of seconds ≥ 0; "
            "set it to e.g. 10 (0: after every batch), or unset it"
        )
    return value


class PartialScores:
    """Chunks of raw scores of one unfinished run in the FiftyOne database.

    Args:
        dataset: the FiftyOne dataset being scored.
        vog_field: the run key.
        key: :func:`fingerprint` of the run's configuration.
        windows: window names, in the engine's order.
    """

    def __init__(self, dataset, vog_field: str, key: str, windows: Sequence[str]):
        import fiftyone.core.odm as foo

        self._coll = foo.get_db_conn()[COLLECTION]
        self._coll.create_index([("dataset_id", 1), ("vog_field", 1), ("key", 1)])
        self.run = {"dataset_id": str(dataset._doc.id), "vog_field": vog_field}
        self.key = key
        self.windows = list(windows)
        self._pending: list = []
        self._npending = 0
        self._last = time.monotonic()
        self._sig: dict[str, int] = {}
        self.changed = 0  # flushed samples whose label or file path changed since (scored again)

    def set_signatures(self, ids: Sequence[str], signatures: np.ndarray) -> None:
        """The current :func:`sample_signatures` of the samples, checked by :meth:`load`, stored by :meth:`add`."""
        self._sig = dict(zip(ids, signatures.tolist()))

    # -- reading ---------------------------------------------------------------
    def load(self) -> tuple[list[str], dict[str, np.ndarray], np.ndarray, np.ndarray | None]:
        """Everything flushed so far: ``(ids, raw {window: (m,)}, used_labels (m,), predicted | None)``.

        When signatures were set (:meth:`set_signatures`), only samples whose stored signature
        equals the current one are returned, each once (the newest chunk wins); the others are
        counted in ``changed`` (of the samples still in the run) and scored again.
        """
        ids, raw, used, pred, sigs = [], {w: [] for w in self.windows}, [], [], []
        for doc in self._coll.find({**self.run, "key": self.key}).sort("_id", 1):
            ids.extend(doc["ids"])
            for w in self.windows:
                raw[w].append(np.frombuffer(doc["raw"][w], dtype=np.float64))
            used.append(np.frombuffer(doc["used"], dtype=np.int64))
            if doc.get("predicted") is not None:
                pred.append(np.frombuffer(doc["predicted"], dtype=np.int64))
            # chunks written before signatures existed match nothing: their samples are scored again
            sigs.append(
                np.frombuffer(doc["sig"], dtype=np.uint64)
                if doc.get("sig") is not None
                else np.full(len(doc["ids"]), None, dtype=object)
            )
        cat = lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt)  # noqa: E731
        raw = {w: cat(v, np.float64) for w, v in raw.items()}
        used, pred = cat(used, np.int64), (cat(pred, np.int64) if pred else None)
        if self._sig and ids:
            stored = np.concatenate([s.astype(object) for s in sigs]).tolist()
            last, changed = {}, set()
            for i, (sid, sig) in enumerate(zip(ids, stored)):
                now = self._sig.get(sid)
                if now is None:
                    continue  # not in this run's samples
                if sig == now:
                    last[sid] = i
                    changed.discard(sid)
                elif sid not in last:
                    changed.add(sid)
            self.changed = len(changed)
            if self.changed:
                logger.warning(
                    "%d sample(s) had their label or image path changed since the interrupted run "
                    "flushed their scores; they are scored again",
                    self.changed,
                )
            sel = np.fromiter(sorted(last.values()), dtype=np.int64, count=len(last))
            ids = [ids[i] for i in sel]
            raw = {w: v[sel] for w, v in raw.items()}
            used, pred = used[sel], (None if pred is None else pred[sel])
        return ids, raw, used, pred

    # -- writing ---------------------------------------------------------------
    def add(self, ids: Sequence[str], batch) -> None:
        """Queue one scored batch (:class:`~fiftyone_vog.engine.BatchScores`); flush when due."""
        self._pending.append(
            (
                list(ids),
                {w: batch.raw[w].detach().cpu().numpy().astype(np.float64) for w in self.windows},
                batch.used_labels.detach().cpu().numpy().astype(np.int64),
                None if batch.predicted is None else batch.predicted.detach().cpu().numpy().astype(np.int64),
                np.fromiter((self._sig.get(i, 0) for i in ids), dtype=np.uint64, count=len(ids)) if self._sig else None,
            )
        )
        self._npending += len(ids)
        if self._npending >= MAX_PENDING or time.monotonic() - self._last >= _flush_seconds():
            self.flush()

    def flush(self) -> None:
        """Write the queued batches as one chunk (one atomic insert)."""
        if self._pending:
            ids, raw, used, pred, sig = zip(*self._pending)
            has_pred = pred[0] is not None
            self._coll.insert_one(
                {
                    **self.run,
                    "key": self.key,
                    "ids": [i for chunk in ids for i in chunk],
                    "raw": {w: np.concatenate([r[w] for r in raw]).tobytes() for w in self.windows},
                    "used": np.concatenate(used).tobytes(),
                    "predicted": np.concatenate(pred).tobytes() if has_pred else None,
                    "sig": np.concatenate(sig).tobytes() if sig[0] is not None else None,
                }
            )
        self._pending, self._npending, self._last = [], 0, time.monotonic()

    def clear(self) -> None:
        """Delete every chunk of this run key on this dataset (any configuration)."""
        self._pending, self._npending = [], 0
        self._coll.delete_many(self.run)


def drop_orphans(coll=None) -> int:
    """Delete the chunks of datasets that no longer exist; returns how many.

    Never raises: a failure is logged and the run goes on (the chunks stay for next time).
    Only chunks whose ``dataset_id`` is a well-formed id that names no dataset in FiftyOne's
    ``datasets`` collection are deleted.
    """
    import fiftyone.core.odm as foo
    from bson import ObjectId
    from bson.errors import InvalidId

    try:
        db = foo.get_db_conn()
        coll = db[COLLECTION] if coll is None else coll
        known = {}
        for sid in coll.distinct("dataset_id"):
            try:
                known[ObjectId(sid)] = sid
            except (InvalidId, TypeError):
                continue  # not written by us: leave it alone
        if not known:
            return 0
        alive = {d["_id"] for d in db.datasets.find({"_id": {"$in": list(known)}}, {"_id": True})}
        gone = [sid for oid, sid in known.items() if oid not in alive]
        if not gone:
            return 0
        n = coll.delete_many({"dataset_id": {"$in": gone}}).deleted_count
        logger.info("deleted %d chunk(s) of partial VoG scores of %d deleted dataset(s)", n, len(gone))
        return n
    except Exception as e:
        logger.warning("could not delete the partial VoG scores of deleted datasets: %s", e)
        return 0


def drop_partials(dataset, vog_field: str) -> int:
    """Delete the chunks that interrupted runs under this key left; returns how many.
    (Also deletes the chunks of deleted datasets: :func:`drop_orphans`.)"""
    import fiftyone.core.odm as foo

    coll = foo.get_db_conn()[COLLECTION]
    drop_orphans(coll)
    run = {"dataset_id": str(dataset._doc.id), "vog_field": vog_field}
    return coll.delete_many(run).deleted_count


def open_partial(
    samples,
    vog_field: str,
    engine,
    resume: bool,
    ctx,
    config: dict,
    signatures: tuple[Sequence[str], np.ndarray] | None = None,
) -> PartialScores:
    """The run's :class:`PartialScores`; without ``resume`` any earlier chunks of this run key are dropped.
    The chunks of deleted datasets are dropped too (:func:`drop_orphans`).

    Args:
        config: everything that changes a raw score; hashed into the chunks' key.
        ctx: the ``torchrun`` context (rank 0 drops, then every rank waits) or None.
        signatures: ``(ids, sample_signatures(...))`` of the samples to score; a flushed sample
            whose signature differs is scored again.
    """
    _flush_seconds()  # a bad setting fails here, before any sample is scored
    partial = PartialScores(
        samples._dataset, vog_field, fingerprint(config), list(getattr(engine, "outputs", engine.windows))
    )
    if signatures is not None:
        partial.set_signatures(*signatures)
    if ctx is None or ctx.is_main:
        drop_orphans(partial._coll)
    if not resume and (ctx is None or ctx.is_main):
        partial.clear()
    if ctx is not None:
        ctx.barrier()
    return partial
