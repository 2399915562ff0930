"""``compute_vog``: ties the engine to a FiftyOne collection, writes fields, registers the run."""

from __future__ import annotations

import keyword
import logging
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from . import __version__
from . import distributed
from .checkpoints import ModelSpec, load_models, resolve_checkpoints, sha256
from .data import ImageDataset, make_loader, read_view
from .resume import open_partial
from .engine import (
    VoGEngine,
    VoGError,
    VoGOptions,
    check_choice,
    class_normalize,
    class_statistics,
    resolve_device,
)

NORMALIZATIONS = ("zscore", "abs", "none")
PRECISIONS = {"float32": torch.float32, "float64": torch.float64}
ALL = "all"  # the engine's name for the window of every checkpoint
RUN_METHOD = "fiftyone_vog.compute_vog"

logger = logging.getLogger(__name__)


@dataclass
class VoGResults:
    """What :func:`compute_vog` computed. Arrays are aligned with ``ids``.

    Attributes:
        ids: sample ids of the scored view.
        raw: ``{field_name: (n,) float64}`` raw VoG for ``{vog_field}_raw`` and each window's ``_raw`` field.
        scores: ``{field_name: (n,) float64}`` everything written, normalized and raw.
        used_labels: (n,) the class index each sample was scored on.
        predicted: (n,) the last checkpoint's predicted class, or None for ``label_mode="true"``.
        classes: class names in model output order.
        class_stats: ``{window: {class_name: {"mean","std","count"}}}`` of raw scores.
        config: the configuration registered with the run.
        timings: seconds spent loading, scoring and writing.
    """

    ids: list[str]
    raw: dict[str, np.ndarray]
    scores: dict[str, np.ndarray]
    used_labels: np.ndarray
    predicted: np.ndarray | None
    classes: list[str]
    class_stats: dict
    config: dict
    timings: dict = field(default_factory=dict)

    @property
    def vog_field(self) -> str:
        return self.config["vog_field"]

    def __getitem__(self, field_name: str) -> np.ndarray:
        return self.scores[field_name]

    def __repr__(self):
        return f"VoGResults(vog_field={self.vog_field!r}, samples={len(self.ids)}, fields={list(self.scores)})"


def _check_field_name(name: str, what: str = "vog_field") -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise VoGError(f"{what}={name!r} is not a valid field name; use letters, digits and underscores, e.g. 'vog'")
    return name


def resolve_windows(windows, checkpoint_paths: Sequence[os.PathLike]) -> dict[str, list[int]]:
    """Turn the user's window spec into ``{name: [checkpoint indices]}``.

    Accepted:
      - ``None``: no windows.
      - ``"thirds"``: ``early``/``middle``/``late``, the first, middle and last third of the
        checkpoints (as in the paper's Fig. 1 stages).
      - a mapping ``name → spec`` where spec is a list of indices (negatives count from the
        end), a slice string such as ``"0:3"`` or ``"-3:"``, or a list of checkpoint file
        paths / file names that are among the checkpoints.
    """
    K = len(checkpoint_paths)
    if windows is None:
        return {}
    if isinstance(windows, str):
        if windows != "thirds":
            raise VoGError(f"windows={windows!r}: use 'thirds' or a mapping name → checkpoints")
        if K < 6:
            raise VoGError(f"windows='thirds' needs at least 6 checkpoints (2 per window), got {K}")
        a, b = K // 3, K - K // 3
        return {"early": list(range(a)), "middle": list(range(a, b)), "late": list(range(b, K))}
    if not isinstance(windows, Mapping):
        raise VoGError("windows must be None, 'thirds' or a mapping name → checkpoint indices")
    names = {str(p): i for i, p in enumerate(checkpoint_paths)}
    names.update({os.path.basename(str(p)): i for i, p in enumerate(checkpoint_paths)})
    out = {}
    for name, spec in windows.items():
        _check_field_name(name, "window name")
        if name in ("raw", ALL):
            raise VoGError(f"window name {name!r} is reserved; choose another")
        if isinstance(spec, str):
            if ":" in spec:
                try:
                    parts = [int(p) if p.strip() else None for p in spec.split(":")]
                    spec = list(range(K))[slice(*parts)]
                except (ValueError, TypeError):
                    raise VoGError(f"window {name!r}: {spec!r} is not a slice like '0:3' or '-3:'") from None
            else:
                spec = [spec]
        idx = []
        for s in spec:
            if isinstance(s, (str, os.PathLike)):
                key = str(s)
                if key not in names:
                    raise VoGError(f"window {name!r} names checkpoint {key!r}, which is not among the checkpoints")
                idx.append(names[key])
            else:
                idx.append(s)
        out[name] = idx
    # validates ranges, duplicates and emptiness with the engine's own rules
    from .engine import normalize_windows

    out = normalize_windows(out, K)
    short = [n for n, idx in out.items() if len(idx) < 2]
    if short:
        raise VoGError(f"window {short[0]!r} has fewer than 2 checkpoints; a variance needs at least 2")
    return out


def field_names(vog_field: str, windows: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{window: (normalized_field, raw_field)}``; the window of every checkpoint is ``all``."""
    out = {ALL: (vog_field, f"{vog_field}_raw")}
    for w in windows:
        out[w] = (f"{vog_field}_{w}", f"{vog_field}_{w}_raw")
    return out


def _versions() -> dict:
    import fiftyone
    import torchvision

    return {
        "fiftyone_vog": __version__,
        "fiftyone": fiftyone.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
    }


def _model_spec(model) -> str | None:
    if model is None or isinstance(model, str):
        return model
    if isinstance(model, torch.nn.Module):
        return f"nn.Module:{type(model).__module__}.{type(model).__qualname__}"
    return f"factory:{getattr(model, '__module__', '?')}.{getattr(model, '__qualname__', repr(model))}"


def compute_vog(
    samples,
    checkpoints: str | os.PathLike | Sequence[str | os.PathLike],
    model: ModelSpec = None,
    label_field: str = "ground_truth",
    classes: Sequence[str] | None = None,
    label_mode: str = "true",
    target: str = "logit",
    statistic: str = "variance",
    channel_reduction: str = "sum",
    normalization: str = "zscore",
    vog_field: str = "vog",
    windows=None,
    transform=None,
    batch_size: int = 64,
    device: str | None = None,
    num_workers: int | None = None,
    progress: bool | Callable | None = None,
    overwrite: bool = False,
    num_classes: int | None = None,
    allow_pickle: bool = False,
    precision: str = "float32",
    resume: bool = False,
    strategy: str = "auto",
    autocast: str | None = None,
    channels_last: bool | None = None,
    _allow_import: bool = True,
) -> VoGResults:
    """Score every sample of ``samples`` by Variance of Gradients and write the scores.

    Args:
        samples: a FiftyOne dataset or view of images.
        checkpoints: training checkpoints in training order: a glob (naturally sorted),
            a directory, or a list of paths.
        model: architecture — torchvision name (``"resnet18"``), ``"package.module:callable"``,
            an ``nn.Module`` or a factory; ``None`` for TorchScript / pickled-module checkpoints.
        label_field: a ``fo.Classification`` field with the labels.
        classes: class names in the model's output order (default: the dataset's classes
            for ``label_field``, else its default classes, else the sorted distinct labels).
        label_mode: ``"true"`` (the label), ``"predicted"`` (the last checkpoint's
            prediction, at every checkpoint) or ``"auto"`` (the label where present, else
            the prediction).
        target: ``"logit"`` (pre-softmax) or ``"probability"`` (softmax).
        statistic: ``"variance"`` or ``"std"`` per pixel across checkpoints.
        channel_reduction: ``"sum"`` (paper) or ``"mean"`` over colour channels.
        normalization: ``"zscore"`` within each class, ``"abs"`` (its absolute value) or ``"none"``.
        vog_field: the field for the normalized score; ``{vog_field}_raw`` gets the raw score,
            ``{vog_field}_{window}`` / ``{vog_field}_{window}_raw`` each window's. Also the run key.
        windows: ``None``, ``"thirds"`` or ``{name: indices | "a:b" | [paths]}`` (see
            :func:`resolve_windows`).
        transform: ``"rgb"`` (default), ``"gray"``, ``"cifar"``, ``"imagenet"`` or a callable
            taking an RGB ``PIL.Image`` and returning a C×H×W tensor.
        batch_size, num_workers: the DataLoader's; ``num_workers=None`` decodes images in the
            main process on the CPU (the model is the bottleneck there) and in up to 8 worker
            processes when scoring on a GPU, so that decoding keeps up.
        device: ``"cuda"``, ``"cpu"``, ``"cuda:1"``…; default CUDA when available.
        progress: FiftyOne's convention: ``True``/``False``, ``None`` for the default, or a
            callable receiving the progress bar.
        overwrite: replace an existing run/fields with the same ``vog_field``.
        num_classes: output size used to build a torchvision/factory architecture
            (default ``len(classes)``).
        allow_pickle: allow whole pickled-module checkpoints (unpickling runs code; only
            for files you trust).
        precision: ``"float32"`` (default) or ``"float64"`` for models and gradients.
        resume: continue an interrupted run with the same configuration from its last
            flushed chunk of raw scores (see :mod:`fiftyone_vog.resume`); otherwise start over.
        strategy, autocast, channels_last: how the engine computes the gradients
            (``"loop"``/``"vmap"``, ``"bf16"``/``"fp16"`` mixed precision, NHWC layout); see
            :class:`fiftyone_vog.engine.VoGEngine` and docs/performance.md.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process scores its shard of the samples,
    the raw scores are gathered, and rank 0 alone writes (see :mod:`fiftyone_vog.distributed`).

    Returns:
        :class:`VoGResults`.

    Nothing is written unless the whole computation succeeds.
    """
    t0 = time.perf_counter()
    options = VoGOptions(label_mode=label_mode, target=target, statistic=statistic, channel_reduction=channel_reduction)
    check_choice("normalization", normalization, NORMALIZATIONS)
    check_choice("precision", precision, tuple(PRECISIONS))
    _check_field_name(vog_field)
    if int(batch_size) < 1:
        raise VoGError(f"batch_size must be ≥ 1, got {batch_size}")
    dev = resolve_device(device)
    ctx = distributed.from_env(dev)  # under torchrun: this process's rank; else None
    if ctx is not None:
        dev = ctx.device(dev)

    paths = resolve_checkpoints(checkpoints)
    window_idx = resolve_windows(windows, paths)
    fields = field_names(vog_field, window_idx)
    data = read_view(samples, label_field, classes, require_labels=label_mode == "true")
    _check_overwrite(samples, vog_field, fields, overwrite)

    models = load_models(
        paths,
        model,
        num_classes=num_classes if num_classes is not None else len(data.classes),
        allow_pickle=allow_pickle,
        allow_import=_allow_import,
    )
    t_load = time.perf_counter()
    engine = VoGEngine(models, {ALL: list(range(len(paths))), **window_idx}, options, device=dev,
                       dtype=PRECISIONS[precision], strategy=strategy, autocast=autocast, channels_last=channels_last)
    dataset = ImageDataset(data.ids, data.filepaths, data.labels, transform)
    engine.check_output_size(dataset[0][0][None], len(data.classes))
    hashes = [sha256(p) for p in paths]
    partial = open_partial(samples, vog_field, engine, resume, ctx, {
        "checkpoint_sha256": hashes, "model": _model_spec(model), "num_classes": num_classes,
        "label_field": label_field, "classes": data.classes, "options": vars(options), "windows": window_idx,
        "transform": transform if transform is None or isinstance(transform, str) else repr(transform),
        "precision": precision, "autocast": autocast,
    })
    raw = distributed.score_samples(
        engine, dataset, data.ids,
        lambda d: make_loader(d, batch_size=int(batch_size), num_workers=_workers(num_workers, dev), pin_memory=dev.type == "cuda"),
        progress=progress, partial=partial, ctx=ctx,
    )
    t_score = time.perf_counter()

    scores, raws, stats = {}, {}, {}
    for w, (norm_name, raw_name) in fields.items():
        scores[norm_name] = class_normalize(raw.raw[w], raw.used_labels, normalization)
        scores[raw_name] = raw.raw[w]
        raws[raw_name] = raw.raw[w]
        stats[w] = {data.classes[c]: s for c, s in class_statistics(raw.raw[w], raw.used_labels).items()}

    config = {
        "method": RUN_METHOD,
        "vog_field": vog_field,
        "fields": list(scores),
        "checkpoints": [os.path.abspath(p) for p in paths],
        "checkpoint_sha256": hashes,
        "model": _model_spec(model),
        "num_classes": num_classes,
        "label_field": label_field,
        "classes": data.classes,
        "label_mode": label_mode,
        "target": target,
        "statistic": statistic,
        "channel_reduction": channel_reduction,
        "normalization": normalization,
        "windows": {w: idx for w, idx in window_idx.items()},
        "transform": transform if transform is None or isinstance(transform, str) else repr(transform),
        "batch_size": int(batch_size),
        "device": str(dev),
        "precision": precision,
        "engine": engine.settings,
        "world_size": 1 if ctx is None else ctx.world_size,
        "resumed_samples": raw.stats.get("resumed", 0),
        "num_samples": len(data.ids),
        "versions": _versions(),
    }
    main = ctx is None or ctx.is_main  # under torchrun only rank 0 writes
    timings = {"load": t_load - t0, "score": t_score - t_load}

    def finish_timings():
        t = time.perf_counter()
        timings.update(write=t - t_score, total=t - t0)
        return timings

    if main:  # the run's results are saved by _write, inside its all-or-nothing block
        _write(samples, data.ids, scores, vog_field, config,
               lambda: _run_results(samples, vog_field, stats, finish_timings(), raw))
        partial.clear()
    else:
        finish_timings()
    if ctx is not None:
        ctx.barrier()
    return VoGResults(
        ids=data.ids, raw=raws, scores=scores, used_labels=raw.used_labels, predicted=raw.predicted,
        classes=data.classes, class_stats=stats, config=config, timings=timings,
    )


def _workers(num_workers: int | None, dev: torch.device) -> int:
    if num_workers is not None:
        return int(num_workers)
    return 0 if dev.type == "cpu" else min(8, os.cpu_count() or 1)


def _check_overwrite(samples, vog_field, fields, overwrite):
    """Up front: the output fields must be free (or overwritten) and, if they exist, float fields."""
    import fiftyone as fo

    ds = samples._dataset
    schema = ds.get_field_schema()
    for name in (f for pair in fields.values() for f in pair):
        if name in schema and not isinstance(schema[name], fo.FloatField):
            raise VoGError(f"field {name!r} exists with type {type(schema[name]).__name__}; choose another vog_field")
    if overwrite:
        return
    if ds.has_run(vog_field):
        raise VoGError(
            f"a VoG run with key {vog_field!r} already exists on dataset {ds.name!r}; pass overwrite=True "
            f"(CLI: --overwrite) to replace it, or choose another vog_field"
        )
    taken = [f for pair in fields.values() for f in pair if f in schema]
    if taken:
        raise VoGError(f"field {taken[0]!r} already exists; pass overwrite=True or choose another vog_field")


def _write(samples, ids, scores, vog_field, config, results=None):
    """Declare fields, write all values in bulk, register the run and save its results — all
    or nothing.
    (Field names and types were checked up front by :func:`_check_overwrite`.)

    On any failure (``BaseException``: Ctrl-C included) the dataset is put back as it was:
    fields this call created are deleted, fields that existed get their old value back on
    every sample that may have been written (an absent key absent again, ``None`` as
    ``None``), and an earlier run under ``vog_field`` stays registered, untouched; then the
    original error propagates. If putting back fails too, a :class:`VoGError` says which
    fields may be mixed and how to recover.

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

    ds = samples._dataset
    schema = ds.get_field_schema()
    old = _read_values(samples, ids, [n for n in scores if n in schema])
    groups = copy.deepcopy(ds.app_config.sidebar_groups)
    created, written, old_run = [], [], _NOT_TAKEN
    try:
        for name in scores:
            if name not in schema:
                ds.add_sample_field(name, fo.FloatField)
                created.append(name)
        _bulk_set(samples, ids, scores, written=written)
        old_run = _take_run(samples, vog_field)
        samples._root_dataset.save()  # the dataset no longer lists the old run; its document stays
        run_config = samples.init_run(**config)
        samples.register_run(vog_field, run_config, overwrite=True, cleanup=False)
        if results is not None:  # ``results()`` builds the run's results (RunResults)
            samples._dataset.save_run_results(vog_field, results())
        try:
            ds.app_config.sidebar_groups = _sidebar_groups(ds, list(scores))
            ds.save()
        except Exception:  # a sidebar nicety must never fail a finished computation
            pass
    except BaseException as err:
        _undo_write(samples, ids, vog_field, old, written, created, old_run, groups, err)
        raise
    _drop_run_doc(samples, vog_field, old_run)


_NOT_TAKEN = object()  # _write failed before the old run (if any) was taken off the dataset
_ABSENT = object()  # a sample document without the field's key (FiftyOne tells that from None)


def _spans(n: int, chunk: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]


def _in_chunks(fn, spans, threads: int = 4, started: list | None = None) -> list:
    """``[fn(lo, hi) for (lo, hi) in spans]``, on a few threads.

    On the first failure — or Ctrl-C while waiting — the chunks not yet started are
    cancelled, the running ones are waited for (so that nothing lands after the caller
    undoes what landed), and the error propagates. ``started`` collects the spans that
    began, i.e. that may have changed something.
    """
    from concurrent.futures import ThreadPoolExecutor

    def run(span):
        if started is not None:
            started.append(span)
        return fn(*span)

    pool = ThreadPoolExecutor(max_workers=max(1, min(threads, len(spans))))
    try:
        futures = [pool.submit(run, span) for span in spans]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _read_values(samples, ids, names, chunk: int = 10_000) -> dict[str, list] | None:
    """``{name: [value of the field on sample ids[i], or _ABSENT]}`` straight from the sample
    collection (one projection query per chunk of ids); None when there are no names."""
    if not names:
        return None
    coll = getattr(samples._dataset, "_sample_collection", None)
    if coll is None:  # the public API: cannot tell an absent key from None
        view = samples._dataset.select(ids, ordered=True)
        return {n: view.values(n) for n in names}
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
    coll = getattr(samples._dataset, "_sample_collection", None)
    if coll is None:
        for name, values in old.items():
            samples.set_values(name, dict(zip(ids, values)), key_field="id")
        return
    from datetime import datetime

    from bson import ObjectId
    from pymongo import UpdateOne

    now = datetime.utcnow()
    names = list(old)

    def restore(lo, hi):
        ops = []
        for i in range(lo, hi):
            values = {n: old[n][i] for n in names}
            update = {"$set": {**{n: v for n, v in values.items() if v is not _ABSENT}, "last_modified_at": now}}
            absent = {n: "" for n, v in values.items() if v is _ABSENT}
            if absent:
                update["$unset"] = absent
            ops.append(UpdateOne({"_id": ObjectId(ids[i])}, update))
        if ops:
            coll.bulk_write(ops, ordered=False)

    _in_chunks(restore, sorted(spans), threads)


def _take_run(samples, key):
    """Take the run ``key`` off the (in-memory) dataset document but keep the run's document
    and results in the database, so that a failed write can put it back as it was; None if
    there is none. The caller saves the dataset."""
    runs = samples._root_dataset._doc.runs
    if key not in runs:
        return None
    doc = runs[key]
    del runs[key]  # not pop(): https://github.com/voxel51/fiftyone/issues/4322
    return doc


def _reattach_run(samples, key, old_run) -> None:
    """Undo :func:`_take_run`: delete whatever was registered under ``key`` since, and put
    the old run back."""
    ds = samples._root_dataset
    if ds.has_run(key):
        ds.delete_run(key)
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


def _undo_write(samples, ids, vog_field, old, written, created, old_run, groups, err) -> None:
    """Put the dataset back as it was before :func:`_write` (see there); raise a
    :class:`VoGError` naming what may be left mixed if that fails."""
    import fiftyone.core.sample as fos

    ds = samples._dataset
    problems = []
    if old is not None and written:
        try:
            _restore_values(samples, ids, old, written)
        except Exception as e:
            problems.append((f"fields {sorted(old)} may hold the new values on some samples and the old ones on "
                             f"others", e))
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
            ds.delete_sample_field(name)
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


def _bulk_set(samples, ids, scores: dict[str, np.ndarray], chunk: int = 10_000, threads: int = 4,
              written: list | None = None) -> None:
    """Write every score field of every sample in one bulk pass, keyed by sample id.

    ``set_values`` makes one pass over the samples per field, in batches sized for latency;
    here one ``$set`` per sample carries all fields (and ``last_modified_at``, as
    ``set_values`` does), in fixed chunks written by a few threads (MongoDB applies them in
    parallel). Measured on 2 cores: 1M samples × 2 fields in ~19 s instead of ~70 s.
    On a failure the chunks not yet started are cancelled; ``written`` collects the
    ``(lo, hi)`` index spans of ``ids`` that began (and may have landed).
    """
    ds = samples._dataset
    coll = getattr(ds, "_sample_collection", None)
    if coll is None:  # a FiftyOne without that attribute: the public API, one field at a time
        if written is not None:
            written.append((0, len(ids)))
        for name, values in scores.items():
            samples.set_values(name, dict(zip(ids, values.tolist())), key_field="id")
        return
    from datetime import datetime

    import fiftyone.core.sample as fos
    from bson import ObjectId
    from pymongo import UpdateOne

    now = datetime.utcnow()  # FiftyOne stores naive UTC in last_modified_at, as set_values does
    names = list(scores)
    columns = [scores[n].tolist() for n in names]

    def write(lo, hi):  # ops built per chunk: O(chunk) of them alive per thread, not O(N)
        ops = [
            UpdateOne({"_id": ObjectId(sid)}, {"$set": {**dict(zip(names, row)), "last_modified_at": now}})
            for sid, *row in zip(ids[lo:hi], *(c[lo:hi] for c in columns))
        ]
        coll.bulk_write(ops, ordered=False)

    _in_chunks(write, _spans(len(ids), chunk), threads, started=written)
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


def _run_results(samples, key, stats, timings, raw):
    summary = {
        w: {"mean": float(np.mean(v)), "std": float(np.std(v)), "min": float(np.min(v)), "max": float(np.max(v))}
        for w, v in raw.raw.items()
    }
    return samples._dataset.init_run_results(key, class_stats=stats, summary=summary, timings=timings)


# -- runs --------------------------------------------------------------------
def list_vog_runs(dataset) -> list[str]:
    """Keys of the VoG runs registered on ``dataset``."""
    return [k for k in dataset.list_runs() if dataset.get_run_info(k).config.method == RUN_METHOD]


def get_vog_run(dataset, key: str = "vog"):
    """The run's info (``.config``, ``.timestamp``) for a VoG run key."""
    if key not in list_vog_runs(dataset):
        raise VoGError(f"no VoG run {key!r} on dataset {dataset.name!r}; runs: {list_vog_runs(dataset)}")
    return dataset.get_run_info(key)


def load_vog_results(dataset, key: str = "vog"):
    """The stored run results: per-class statistics, summary, timings."""
    get_vog_run(dataset, key)
    return dataset.load_run_results(key)


def delete_vog_run(dataset, key: str = "vog", delete_fields: bool = True) -> None:
    """Delete a VoG run, the partial scores interrupted runs left under its key, and (by
    default) the fields it wrote."""
    from .resume import drop_partials

    info = get_vog_run(dataset, key)
    drop_partials(dataset, key)
    if delete_fields:
        schema = dataset.get_field_schema()
        for name in info.config.fields:
            if name in schema:
                dataset.delete_sample_field(name)
    dataset.delete_run(key)
