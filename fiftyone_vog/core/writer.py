"""The all-or-nothing write of a VoG run: every score field of every sample in one bulk pass,
the FiftyOne run and its results registered — or, on any failure, the dataset put back as it was.

Why a snapshot of the old values and not a MongoDB transaction: transactions need a replica set
(FiftyOne's bundled mongod is a standalone server) and are capped at 60 s, less than a large
write takes.
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import VoGError
from .runs import VoGRunConfig

logger = logging.getLogger(__name__)


def write_run(samples, ids, scores, vog_field, config, results=None, roles=None, index=()):
    """Declare fields, write all values in bulk, index the fields ``index`` names, register the
    run and save its results — all or nothing.
    (Field names, types and owners were checked up front by
    :func:`fiftyone_vog.core.compute._check_overwrite`.)

    Each field this call creates is recorded in the ownership record (:mod:`.ownership`) as the
    run's (owner ``run:{vog_field}``, role from ``roles``), each index it creates too
    (:func:`.indexes.index_fields`; what was and was not indexed goes into ``config["indexes"]``).
    Once the new run is registered, the fields the record lists as the run's that this write did
    not write (an earlier run of the key with other windows, companions or after a rename) are
    deleted: the run it replaced leaves nothing behind.

    On any failure (``BaseException``: Ctrl-C included) the dataset is put back as it was:
    fields and indexes this call created are deleted (through the record), fields that existed
    get their old value back on every sample that may have been written (an absent key absent
    again, ``None`` as ``None``), and an earlier run under ``vog_field`` stays registered,
    untouched; then the original error propagates. If putting back fails too, a
    :class:`VoGError` says which fields may be mixed and how to recover. The first SIGINT,
    SIGTERM or SIGHUP interrupts the write (the undo follows); every later one is held back until
    the undo is done, then a SIGTERM/SIGHUP is acted on (:mod:`fiftyone_vog.core.signals`, main
    thread). A "writing" mark persisted before the first chunk and cleared once complete or
    undone tells later calls about a write that was killed (:mod:`fiftyone_vog.core.locks`).

    Why a snapshot of the old values and not a MongoDB transaction: transactions need a
    replica set (FiftyOne's bundled mongod is a standalone server) and are capped at 60 s,
    less than a large write takes. Reading the old values of the few score fields is one
    projection query per chunk, O(samples) floats like the scores themselves, and only when
    the fields exist; a fresh ``vog_field`` pays nothing. The old run is taken off the
    dataset but kept in the database (with its results) until the new one is registered,
    so that it can be put back as it was, timestamp and results included.
    """
    import copy

    import fiftyone as fo

    from . import locks, ownership
    from .indexes import index_fields
    from .signals import deferred_signals

    ds = samples._dataset
    owner = ownership.run_owner(vog_field)
    roles = roles or {}
    schema = ds.get_field_schema()
    old = _read_values(samples, ids, [n for n in scores if n in schema])
    groups = copy.deepcopy(ds.app_config.sidebar_groups)
    created, indexes, written, old_run = [], [], [], _NOT_TAKEN
    locks.check_current(ds, vog_field)  # still ours: a lock that went stale may have been taken over
    # the first signal interrupts the write; any later one waits until the undo is done
    with deferred_signals(first_interrupts=True):
        try:
            # persisted before the first chunk, deleted once complete or undone: a SIGKILL leaves it behind
            locks.mark_writing(samples, vog_field, scores, config)
            for name in scores:
                if name not in schema:
                    with deferred_signals():  # a field and its record: never one without the other
                        ds.add_sample_field(name, fo.FloatField)
                        created.append(name)
                        ownership.record(ds, ownership.FIELD, name, owner, role=roles.get(name, "score"))
            bulk_set(samples, ids, scores, written=written)
            config["indexes"] = {
                **index_fields(ds, [n for n in index if n in scores], owner, created=indexes),
                "on_request": [n for n in scores if n not in index],  # fov.index_vog_fields indexes them
            }
            old_run = _take_run(samples, vog_field)
            samples._root_dataset.save()  # the dataset no longer lists the old run; its document stays
            run_config = VoGRunConfig(**config)  # FiftyOne stores its class path: delete_run cleans up
            samples.register_run(vog_field, run_config, overwrite=True, cleanup=False)
            if results is not None:  # ``results()`` builds the run's results (RunResults)
                # not cached by FiftyOne: the object compute_vog returns holds the arrays, the stored one not
                samples._dataset.save_run_results(vog_field, results(), cache=False)
            try:
                ds.app_config.sidebar_groups = _sidebar_groups(ds, list(scores))
                ds.save()
            except Exception:  # a sidebar nicety must never fail a finished computation
                pass
        except BaseException as err:
            with deferred_signals(drop_sigint=True):  # also inside the outer block: nothing cuts the undo short
                _undo_write(samples, ids, vog_field, old, written, created, indexes, old_run, groups, err)
                _clear_mark(ds, vog_field)  # kept (the fields may be mixed) if the undo failed
            if isinstance(err, KeyboardInterrupt):
                err.fiftyone_vog_state = "restored"
            raise
        try:
            with deferred_signals():
                _clear_mark(ds, vog_field)
                _drop_run_doc(samples, vog_field, old_run)
                _drop_replaced_fields(ds, owner, scores)
        except KeyboardInterrupt as err:
            err.fiftyone_vog_state = "written"
            raise


def _drop_replaced_fields(ds, owner, scores) -> None:
    """After a successful write: delete the fields the record lists as the run's that this write
    did not write (they describe the run it replaced)."""
    from . import ownership

    for name in ownership.names(ds, owner):
        if name not in scores:
            try:
                ownership.delete_field(ds, name, owner)
            except Exception as e:  # still recorded as the run's: the next overwrite or delete removes it
                logger.warning("could not delete field %r left by the VoG run it replaced: %s", name, e)


def _clear_mark(ds, key) -> None:
    from . import locks

    try:
        locks.clear_writing(ds, key)
    except Exception as e:  # never mask the write's own outcome; a leftover mark only warns too much
        logger.warning("could not clear the writing mark of VoG run %r: %s", key, e)


_NOT_TAKEN = object()  # write_run failed before the old run (if any) was taken off the dataset
_ABSENT = object()  # a sample document without the field's key (FiftyOne tells that from None)


# FiftyOne internals the writer uses, each named here once (tests/core/test_run_type.py fails if
# FiftyOne changes them): the dataset's pymongo sample collection (read and write raw documents:
# only they tell an absent key from None), ``Sample._reload_docs`` (in-memory samples see the new
# values), the dataset document's ``runs`` and the ``_run_cache`` (take a run off and put it back
# as it was, timestamp and results included).
def _collection(ds):
    """The dataset's pymongo sample collection."""
    return ds._sample_collection


def _spans(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]


def _in_chunks(fn, spans, threads: int = 4, started: list | None = None) -> list:
    """``[fn(lo, hi) for (lo, hi) in spans]``, on a few threads.

    On the first failure — or Ctrl-C while waiting — the chunks not yet started are
    cancelled, the running ones are waited for (so that nothing lands after the caller
    undoes what landed), and the error propagates. ``started`` collects the spans that
    began, i.e. that may have changed something.
    """
    import threading
    from concurrent.futures import CancelledError, ThreadPoolExecutor

    failed = threading.Event()  # set by the failing worker itself: the others start nothing more,
    # however long the waiting thread takes to wake up

    def run(span):
        if failed.is_set():
            raise CancelledError
        if started is not None:
            started.append(span)
        try:
            return fn(*span)
        except BaseException:
            failed.set()
            raise

    from .signals import deferred_signals

    pool = ThreadPoolExecutor(max_workers=max(1, min(threads, len(spans))))
    try:
        futures = [pool.submit(run, span) for span in spans]
        out = [f.result() for f in futures]
    except BaseException:
        failed.set()
        with deferred_signals(drop_sigint=True):  # a second Ctrl-C must not skip waiting for running chunks
            pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return out


def _read_values(samples, ids, names, chunk: int = 10_000) -> dict[str, list] | None:
    """``{name: [value of the field on sample ids[i], or _ABSENT]}`` straight from the sample
    collection (one projection query per chunk of ids); None when there are no names."""
    if not names:
        return None
    coll = _collection(samples._dataset)
    from bson import ObjectId

    out = {n: [_ABSENT] * len(ids) for n in names}

    def read(lo, hi):
        pos = {ObjectId(sid): i for i, sid in enumerate(ids[lo:hi], lo)}
        for doc in coll.find({"_id": {"$in": list(pos)}}, {n: True for n in names}):
            i = pos[doc["_id"]]
            for n in names:
                out[n][i] = doc.get(n, _ABSENT)

    _in_chunks(read, _spans(len(ids), chunk))
    return out


def _restore_values(samples, ids, old: dict[str, list], spans, threads: int = 4) -> None:
    """Put the values read by :func:`_read_values` back on the samples of ``spans``."""
    _update_by_id(_collection(samples._dataset), ids, old, sorted(spans), threads)


def _update_by_id(coll, ids, columns: dict[str, list], spans, threads: int = 4, started: list | None = None) -> None:
    """Per span of ``ids``, one unordered bulk write: each sample gets a ``$set`` of its values in
    ``columns`` (an ``_ABSENT`` value is ``$unset`` instead) and of ``last_modified_at``, as
    ``set_values`` does. The updates are built per chunk in its thread: O(chunk) alive, not O(N)."""
    from datetime import datetime

    from bson import ObjectId
    from pymongo import UpdateOne

    now = datetime.utcnow()  # FiftyOne stores naive UTC in last_modified_at
    names = list(columns)

    def update(lo, hi):
        ops = []
        chunk = [columns[n][lo:hi] for n in names]
        any_absent = any(_ABSENT in c for c in chunk)  # only a restore has absent keys
        for sid, *row in zip(ids[lo:hi], *chunk):
            op = {"$set": {**dict(zip(names, row)), "last_modified_at": now}}
            if any_absent and _ABSENT in row:
                op["$set"] = {n: v for n, v in op["$set"].items() if v is not _ABSENT}
                op["$unset"] = {n: "" for n, v in zip(names, row) if v is _ABSENT}
            ops.append(UpdateOne({"_id": ObjectId(sid)}, op))
        if ops:
            coll.bulk_write(ops, ordered=False)

    _in_chunks(update, spans, threads, started=started)


def _take_run(samples, key):
    """Take the run ``key`` off the (in-memory) dataset document but keep the run's document
    and results in the database, so that a failed write can put it back as it was; None if
    there is none. The caller saves the dataset."""
    doc = samples._root_dataset._doc
    doc.reload("runs")  # as the database has them now: another process may have deleted the run meanwhile
    runs = doc.runs
    if key not in runs:
        return None
    doc = runs[key]
    del runs[key]  # not pop(): https://github.com/voxel51/fiftyone/issues/4322
    return doc


def _reattach_run(samples, key, old_run) -> None:
    """Undo :func:`_take_run`: delete whatever was registered under ``key`` since, and put
    the old run back."""
    import fiftyone.core.runs as fors

    ds = samples._root_dataset
    if ds.has_run(key):
        fors.Run.delete_run(ds, key, cleanup=False)  # the run's fields hold the restored values: keep them
    if old_run is not None:
        ds._doc.runs[key] = old_run
        ds.save()


def _drop_run_doc(samples, key, old_run) -> None:
    """After a successful write: delete the replaced run's document and results, as
    ``register_run(overwrite=True)`` would have."""
    if old_run is None or old_run is _NOT_TAKEN:
        return
    try:
        samples._root_dataset._run_cache.pop(key, None)
        if old_run.results:
            old_run.results.delete()
        old_run.delete()
    except Exception as e:  # the new run is complete; a leftover document is harmless
        logger.warning("could not delete the replaced run document of %r: %s", key, e)


def _undo_write(samples, ids, vog_field, old, written, created, indexes, old_run, groups, err) -> None:
    """Put the dataset back as it was before :func:`write_run` (see there); raise a
    :class:`VoGError` naming what may be left mixed if that fails."""
    import fiftyone.core.sample as fos

    from . import ownership

    ds = samples._dataset
    owner = ownership.run_owner(vog_field)
    problems = []
    for index in indexes:  # on fields that existed (those on created fields go with them)
        try:
            if ownership.owns(ds, ownership.INDEX, index, owner):
                ownership.drop_index(ds, index, owner)
        except Exception as e:
            problems.append((f"the new index {index!r} was left behind", e))
    if old is not None and written:
        try:
            _restore_values(samples, ids, old, written)
        except Exception as e:
            problems.append(
                (f"fields {sorted(old)} may hold the new values on some samples and the old ones on others", e)
            )
    if old_run is not _NOT_TAKEN:
        try:
            _reattach_run(samples, vog_field, old_run)
        except Exception as e:
            problems.append((f"the run {vog_field!r} may be missing or half-registered", e))
    try:
        if ds.app_config.sidebar_groups != groups:
            ds.app_config.sidebar_groups = groups
            ds.save()
    except Exception:
        pass  # cosmetic, and deleting the created fields below takes them off the sidebar
    for name in created:
        try:
            ownership.delete_field(ds, name, owner)  # recorded as the run's when it was created
        except Exception as e:
            problems.append((f"the new field {name!r} was left behind", e))
    try:
        fos.Sample._reload_docs(ds._sample_collection_name, sample_ids=ids)  # in-memory samples see the old values
    except Exception:
        pass
    if problems:
        what = "; ".join(p for p, _ in problems)
        raise VoGError(
            f"writing the VoG scores failed ({type(err).__name__}: {err}) and putting the dataset "
            f"{ds.name!r} back as it was failed too: {what}. To recover, run compute_vog(..., "
            f"vog_field={vog_field!r}, overwrite=True) again, which rewrites every field and the run, "
            f"or fov.delete_vog_run(dataset, {vog_field!r}) to remove them. "
            f"(Restore error: {type(problems[0][1]).__name__}: {problems[0][1]})"
        ) from problems[0][1]


def bulk_set(
    samples, ids, scores: dict[str, np.ndarray], chunk: int = 10_000, threads: int = 4, written: list | None = None
) -> None:
    """Write every score field of every sample in one bulk pass, keyed by sample id.

    ``set_values`` makes one pass over the samples per field, in batches sized for latency;
    here one ``$set`` per sample carries all fields (and ``last_modified_at``, as
    ``set_values`` does), in fixed chunks written by a few threads (MongoDB applies them in
    parallel): one pass instead of one per field (timings in docs/performance.md).
    On a failure the chunks not yet started are cancelled; ``written`` collects the
    ``(lo, hi)`` index spans of ``ids`` that began (and may have landed).
    """
    ds = samples._dataset
    import fiftyone.core.sample as fos

    _update_by_id(
        _collection(ds),
        ids,
        {n: v.tolist() for n, v in scores.items()},
        _spans(len(ids), chunk),
        threads,
        started=written,
    )
    fos.Sample._reload_docs(ds._sample_collection_name, sample_ids=ids)  # in-memory samples see the values


def _sidebar_groups(ds, names):
    """Put the VoG fields in a "VoG" sidebar group of the App."""
    import fiftyone as fo

    groups = ds.app_config.sidebar_groups or fo.DatasetAppConfig.default_sidebar_groups(ds)
    vog = next((g for g in groups if g.name == "VoG"), None)
    for g in groups:
        if g is not vog:
            g.paths = [p for p in g.paths if p not in names]
    if vog is None:
        vog = fo.SidebarGroupDocument(name="VoG", paths=[])
        groups.insert(2 if len(groups) > 2 else len(groups), vog)
    vog.paths = list(dict.fromkeys([*vog.paths, *names]))
    return groups
