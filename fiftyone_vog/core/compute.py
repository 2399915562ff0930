"""``compute_vog``: ties the engine to a FiftyOne collection, writes fields, registers the run.

``compute_vog`` is a short sequence of named steps (validate → load → score → normalize → write),
each a function here over small records (``Args`` → ``Plan`` → ``Loaded`` → ``RawScores`` →
``Scores``). The steps live in this module, not one of their own: they call nearly every helper
here (field names, windows, the overwrite check, threads), which would make a ``steps`` module and
this one import each other.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import __version__, options
from ..engine import (
    COMPANIONS,
    RawVoG,
    VoGEngine,
    VoGError,
    VoGOptions,
    check_choice,
    class_normalize,
    class_statistics,
)
from ..inputs import hf
from ..inputs.checkpoints import (
    ModelSpec,
    check_distinct,
    check_distinct_weights,
    load_models,
    manifest_model,
    manifest_of,
    resolve_checkpoints,
    script_model,
)
from ..inputs.images import (
    ImageDataset,
    ViewData,
    image_pixel_limit,
    make_loader,
    read_view,
    resolve_transform,
    transform_record,
)
from ..inputs.manifest import Manifest
from ..options import DEFAULTS, NORMALIZATIONS
from . import distributed, preflight
from .indexes import not_indexed_message  # noqa: F401  (the doors' import)
from .locks import claim_fields, locked
from .naming import (  # ALL: the window of every checkpoint; RAW: the raw fields' suffix
    ALL,
    RAW,
    check_derived_name,
    check_field_name,
    companion_field_names,
    score_field_names,
)
from .resume import PartialScores, open_partial, sample_signatures
from .runs import (  # noqa: F401  (the run helpers' old home: import paths kept)
    RUN_METHOD,
    MixedFieldsWarning,
    VoGResults,
    VoGRunConfig,
    delete_vog_run,
    field_owners,
    get_vog_run,
    is_vog_run,
    list_vog_runs,
    load_vog_results,
)
from .threads import ThreadChoice, auto_num_threads, torch_threads  # noqa: F401  (auto_num_threads: its old path)
from .writer import write_run

PRECISIONS = {name: getattr(torch, name) for name in options.PRECISIONS}  # the names: the options table

logger = logging.getLogger(__name__)


def _check_field_name(name: str, what: str = "vog_field", reserved: bool = True) -> str:
    """The one check of a field name we write (see :mod:`fiftyone_vog.core.naming`)."""
    return check_field_name(name, what, reserved)


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
        from ..engine.windows import thirds

        return thirds(K)
    if not isinstance(windows, Mapping):
        raise VoGError("windows must be None, 'thirds' or a mapping name → checkpoint indices")
    names = {str(p): i for i, p in enumerate(checkpoint_paths)}
    names.update({os.path.basename(str(p)): i for i, p in enumerate(checkpoint_paths)})
    out = {}
    for name, spec in windows.items():
        # a window name is part of field names: syntax checked here, the fields it makes in field_names
        _check_field_name(name, "window name", reserved=False)
        if name in (RAW, ALL):
            raise VoGError(f"window name {name!r} is reserved; choose another")
        clash = next((c for c in COMPANIONS if name == c or name.endswith(f"_{c}")), None)
        if clash:  # its fields would collide with a companion field ({vog_field}_{window}_{companion})
            raise VoGError(
                f"window name {name!r} would collide with the {clash!r} companion fields; "
                f"choose a name that is not and does not end in one of {list(COMPANIONS)}"
            )
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
    from ..engine import normalize_windows

    out = normalize_windows(out, K)
    short = [n for n, idx in out.items() if len(idx) < 2]
    if short:
        raise VoGError(f"window {short[0]!r} has fewer than 2 checkpoints; a variance needs at least 2")
    return out


def field_names(vog_field: str, windows: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``{window: (normalized_field, raw_field)}``; the window of every checkpoint is ``all``."""
    out = score_field_names(vog_field, windows)
    for w, pair in out.items():  # e.g. vog_field='to' + window 'dict' would write 'to_dict'
        source = f"vog_field={vog_field!r}" + ("" if w == ALL else f" with window {w!r}")
        for name in pair:
            check_derived_name(name, source)
    return out


def companion_fields(vog_field: str, windows: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{window: {companion: field}}``: ``{vog_field}_loss`` … for the window of every checkpoint,
    ``{vog_field}_{window}_loss`` … for the others (never class-normalized)."""
    return companion_field_names(vog_field, windows)


def _versions() -> dict:
    import sys

    import fiftyone
    import torchvision

    libraries = {  # the model libraries a run used (imported by then), as the core ones
        name: getattr(sys.modules[name], "__version__", "?")
        for name in ("timm", "lightning", "transformers")
        if name in sys.modules
    }
    return {
        "fiftyone_vog": __version__,
        "fiftyone": fiftyone.__version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        **libraries,
        "python": platform.python_version(),
    }


def _model_spec(model) -> str | None:
    if model is None or isinstance(model, str):
        return model
    if isinstance(model, torch.nn.Module):
        return f"nn.Module:{type(model).__module__}.{type(model).__qualname__}"
    return f"factory:{getattr(model, '__module__', '?')}.{getattr(model, '__qualname__', repr(model))}"


# -- compute_vog's steps: validate → load → score → normalize → write ------------------------------
# Each takes the small records the steps before it returned, so that each runs (and is tested) on
# its own; compute_vog is their sequence, under its run lock.


@dataclass(frozen=True)
class Args:
    """:func:`compute_vog`'s arguments as given (their meaning: its docstring); :meth:`of` fills
    in its defaults. The fields are its parameters, in order (tests/core/test_compute_steps.py)."""

    samples: Any
    checkpoints: Any
    model: ModelSpec
    label_field: str
    classes: Sequence[str] | None
    label_mode: str
    target: str
    statistic: str
    channel_reduction: str
    normalization: str
    vog_field: str
    windows: Any
    transform: Any
    batch_size: int
    device: str | None
    num_workers: int | None
    progress: bool | Callable | None
    overwrite: bool
    num_classes: int | None
    allow_pickle: bool
    precision: str
    resume: bool
    strategy: str
    autocast: str | None
    channels_last: bool | None
    fold_batchnorm: bool
    allow_torchscript: bool
    max_image_pixels: int | None
    num_threads: int | None
    companions: bool
    state_dict_key: str | None
    _allow_import: bool

    @classmethod
    def of(cls, *args, **kwargs) -> Args:
        """The arguments of the call ``compute_vog(*args, **kwargs)``, defaults filled in."""
        import inspect

        bound = inspect.signature(compute_vog).bind(*args, **kwargs)
        bound.apply_defaults()
        return cls(**bound.arguments)


@dataclass
class Plan:
    """What the checks decided (:func:`_validate`); no checkpoint is loaded yet."""

    args: Args
    options: VoGOptions
    device: torch.device
    threads: ThreadChoice  # torch's CPU threads while scoring (.count) and why (.why)
    ctx: distributed.DistContext | None  # under torchrun: this process's rank; else None
    paths: list  # the checkpoints, in training order
    hashes: list[str]  # their sha256
    windows: dict[str, list[int]]  # {window: checkpoint indices}, without ALL
    fields: dict[str, tuple[str, str]]  # {window: (normalized field, raw field)}, ALL included
    companion_fields: dict[str, dict[str, str]]  # {window: {companion: field}}; {} without companions
    data: ViewData  # ids, paths, labels and classes of the view
    max_image_pixels: int
    t0: float  # time.perf_counter() when the run began
    manifest: Manifest | None = None  # the checkpoint folder's vog_checkpoints.json, if any

    @property
    def model(self) -> ModelSpec:
        """``model=``, else the architecture the manifest names (see :attr:`Loaded.model` for the
        one a timm training script's checkpoints name)."""
        return self.args.model if self.args.model is not None else manifest_model(self.manifest)

    @property
    def num_classes(self) -> int:
        """The output size the architecture is built with: ``num_classes=``, the manifest's, or the classes'."""
        for n in (self.args.num_classes, self.manifest and self.manifest.num_classes):
            if n is not None:
                return int(n)
        return len(self.data.classes)

    @property
    def state_dict_key(self) -> str | None:
        a = self.args
        return a.state_dict_key if a.state_dict_key is not None else (self.manifest and self.manifest.state_dict_key)

    @property
    def num_workers(self) -> int:
        return _workers(self.args.num_workers, self.device)

    @property
    def is_main(self) -> bool:
        return self.ctx is None or self.ctx.is_main  # under torchrun only rank 0 writes

    @property
    def transform(self) -> str | None:
        t = self.args.transform
        return t if t is None or isinstance(t, str) else repr(t)


@dataclass
class Loaded:
    """The models of the checkpoints, the images as a torch dataset, and the engine (:func:`_load`)."""

    models: list
    dataset: ImageDataset
    engine: VoGEngine
    t_load: float  # time.perf_counter() once the models were loaded
    model: ModelSpec = None  # the architecture: plan.model, else the one timm's training script recorded
    transform: Any = None  # the transform used (a preset, a {"kind": ...} description or a callable)
    transform_source: str = "argument"  # where it came from (see inputs.images.resolve_transform)
    weights: dict | None = None  # which entry of the checkpoints held the weights (load_models' report)

    @property
    def preprocessing(self) -> dict:
        """The run config's record of the preprocessing used and where it came from."""
        return {"transform": transform_record(self.transform), "source": self.transform_source}


@dataclass
class RawScores:
    """The raw scores of every sample (:func:`_score`), on every torchrun rank."""

    raw: RawVoG  # {window or "window:companion": (n,)} aligned with plan.data.ids
    partial: PartialScores  # the run's flushed chunks: cleared once the write succeeded
    t_score: float  # time.perf_counter() once scored


@dataclass
class Scores:
    """What the run writes (:func:`_normalize`)."""

    values: dict[str, np.ndarray]  # {field: (n,)} of every field written
    raw: dict[str, np.ndarray]  # the raw VoG fields among them
    class_stats: dict[str, dict]  # {window: {class name: statistics of its raw scores}}


def _validate(args: Args) -> Plan:
    """Every check that needs no model, in compute_vog's order, before any checkpoint is loaded
    (file hashes and the view's labels are read): a refused argument costs no model load."""
    t0 = time.perf_counter()
    a = args
    options = VoGOptions(
        label_mode=a.label_mode, target=a.target, statistic=a.statistic, channel_reduction=a.channel_reduction
    )
    check_choice("normalization", a.normalization, NORMALIZATIONS)
    check_choice("precision", a.precision, tuple(PRECISIONS))
    _check_field_name(a.vog_field)
    if int(a.batch_size) < 1:
        raise VoGError(f"batch_size must be ≥ 1, got {a.batch_size}")
    if a.num_workers is not None and int(a.num_workers) < 0:
        raise VoGError(f"num_workers must be ≥ 0 (0: decode images in this process), got {a.num_workers}")
    if a.num_classes is not None and int(a.num_classes) < 1:
        raise VoGError(f"num_classes must be ≥ 1 (the model's output size), got {a.num_classes}")
    max_image_pixels = image_pixel_limit(a.max_image_pixels)
    dev = preflight.check_device(a.device)
    threads = ThreadChoice(a.num_threads, dev)
    ctx = distributed.from_env(dev)  # under torchrun: this process's rank; else None
    if ctx is not None:
        dev = ctx.device(dev)

    manifest = manifest_of(a.checkpoints)  # a folder's vog_checkpoints.json: order, model, classes, transform
    paths = resolve_checkpoints(a.checkpoints)
    if manifest is not None and a.model is None:
        manifest_model(manifest)  # a model named as code is refused before any work
    hashes = check_distinct(paths)  # the same file twice would score 0 everywhere
    preflight.check_checkpoint_files(paths, a.allow_torchscript, a._allow_import)
    window_idx = resolve_windows(a.windows, paths)
    fields = field_names(a.vog_field, window_idx)
    preflight.check_labels(a.samples, a.label_field, a.label_mode)
    classes = a.classes if manifest is None else manifest.check_classes(a.classes)
    classes_from = None if manifest is None or manifest.classes is None else str(manifest.path)
    if hf.is_checkpoint_folder(paths[0]):  # Hugging Face folders: architecture and class order in config.json
        classes, classes_from = hf.check_folders(paths, classes, a.model)
    data = read_view(
        a.samples,
        a.label_field,
        classes,
        require_labels=a.label_mode == "true",
        classes_from=classes_from,
    )
    if data.duplicates:
        logger.warning(
            "fiftyone-vog: the view holds %d repeated occurrence(s) of its samples; each sample is "
            "scored once (config 'duplicate_samples')",
            data.duplicates,
        )
    extra = companion_fields(a.vog_field, window_idx) if a.companions else {}
    # claimed before any check or work: no other run (of another key) writes these fields meanwhile
    outputs = [*(f for pair in fields.values() for f in pair), *(f for c in extra.values() for f in c.values())]
    claim_fields(a.samples._dataset, a.vog_field, outputs)
    _check_overwrite(
        a.samples,
        a.vog_field,
        {**fields, **{f"{w}:companions": tuple(c.values()) for w, c in extra.items()}},
        a.overwrite,
    )
    return Plan(
        a,
        options,
        dev,
        threads,
        ctx,
        paths,
        hashes,
        window_idx,
        fields,
        extra,
        data,
        max_image_pixels,
        t0,
        manifest,
    )


def _load(plan: Plan) -> Loaded:
    """Load every checkpoint into its model (strictly), wrap the images, build the engine, and
    check the model's output size against the classes on the first image."""
    a, data = plan.args, plan.data
    plan.threads.start()  # other processes' CPU use is measured while the checkpoints load
    model, script_args = script_model(plan.model, plan.paths[0])
    weights = {}
    models = load_models(
        plan.paths,
        model,
        num_classes=plan.num_classes,
        allow_pickle=a.allow_pickle,
        allow_import=a._allow_import,
        allow_torchscript=a.allow_torchscript,
        state_dict_key=plan.state_dict_key,
        report=weights,
    )
    check_distinct_weights(models, plan.paths)  # the same weights in two files (check_distinct: one file twice)
    if weights.get("ema") and plan.state_dict_key is None:
        logger.info(
            "fiftyone-vog: the checkpoints also hold EMA weights; scoring the trained weights (%s); "
            "state_dict_key='state_dict_ema' scores the EMA's",
            weights.get("state_dict_key"),
        )
    transform, source = resolve_transform(
        a.transform, models[-1], model, plan.manifest.transform if plan.manifest else None, script_args
    )
    if source == "default" and isinstance(models[-1], hf.LogitsOf):
        logger.warning(
            "fiftyone-vog: %s has no %s, so the images are scored as RGB in [0, 1] at their own size; pass "
            "transform= the preprocessing the model was trained with",
            plan.paths[-1],
            hf.PREPROCESSOR,
        )
    dataset = ImageDataset(
        data.ids,
        data.filepaths,
        data.labels,
        transform,  # (imports torchvision's transforms)
        max_image_pixels=plan.max_image_pixels,
    )
    # close the window opened above (waiting out the rest of its MIN_WINDOW when loading was quicker):
    # set-up, before the database is read again, and not counted in the scoring phase's timing
    _ = plan.threads.count
    t_load = time.perf_counter()
    engine = VoGEngine(
        models,
        {ALL: list(range(len(plan.paths))), **plan.windows},
        plan.options,
        device=plan.device,
        dtype=PRECISIONS[a.precision],
        strategy=a.strategy,
        autocast=a.autocast,
        channels_last=a.channels_last,
        companions=a.companions,
        fold_batchnorm=a.fold_batchnorm,  # the modules are this run's own (built or deep-copied above)
    )
    engine.check_output_size(dataset[0][0][None], len(data.classes))
    return Loaded(models, dataset, engine, t_load, model, transform, source, weights)


def _resume_config(plan: Plan, loaded: Loaded) -> dict:
    """Everything that changes a raw score: the key of the run's partial chunks (:mod:`.resume`)."""
    a = plan.args
    return {
        "checkpoint_sha256": plan.hashes,
        "model": _model_spec(loaded.model),
        "num_classes": a.num_classes,
        "state_dict_key": (loaded.weights or {}).get("state_dict_key"),
        "preprocessing": loaded.preprocessing,
        "label_field": a.label_field,
        "classes": plan.data.classes,
        "options": vars(plan.options),
        "windows": plan.windows,
        "transform": plan.transform,
        "precision": a.precision,
        "autocast": a.autocast,
        "companions": bool(a.companions),
        "fold_batchnorm": bool(a.fold_batchnorm),
        "channels_last": a.channels_last,  # as asked (None: the engine checks it on the first batch)
    }


def _score(plan: Plan, loaded: Loaded) -> RawScores:
    """Raw scores of every sample: resumed from the run's flushed chunks (``resume``), else from
    scratch; under torchrun this rank's shard, then gathered (:func:`.distributed.score_samples`)."""
    a, data, dev = plan.args, plan.data, plan.device
    threads = plan.threads.count  # measured in _load (its window closed there)
    partial = open_partial(
        a.samples,
        a.vog_field,
        loaded.engine,
        a.resume,
        plan.ctx,
        _resume_config(plan, loaded),
        signatures=(data.ids, sample_signatures(data.ids, data.labels, data.filepaths)),
    )
    with torch_threads(threads):
        raw = distributed.score_samples(
            loaded.engine,
            loaded.dataset,
            data.ids,
            lambda d: make_loader(
                d, batch_size=int(a.batch_size), num_workers=plan.num_workers, pin_memory=dev.type == "cuda"
            ),
            progress=a.progress,
            partial=partial,
            ctx=plan.ctx,
        )
    return RawScores(raw, partial, time.perf_counter())


def _normalize(plan: Plan, raw: RawVoG) -> Scores:
    """Each window's raw VoG normalized within the class of its used label (``normalization``),
    its raw field and class statistics; the companions as they are (never class-normalized)."""
    scores, raws, stats = {}, {}, {}
    for w, (norm_name, raw_name) in plan.fields.items():
        scores[norm_name] = class_normalize(raw.raw[w], raw.used_labels, plan.args.normalization)
        scores[raw_name] = raw.raw[w]
        raws[raw_name] = raw.raw[w]
        stats[w] = {plan.data.classes[c]: s for c, s in class_statistics(raw.raw[w], raw.used_labels).items()}
    for w, names in plan.companion_fields.items():  # companions: raw values, never class-normalized
        for c, name in names.items():
            scores[name] = raw.raw[f"{w}:{c}"]
    return Scores(scores, raws, stats)


def _run_config(plan: Plan, loaded: Loaded, scored: RawScores, scores: Scores) -> dict:
    """The run's config, as FiftyOne stores it (:class:`VoGRunConfig`)."""
    a, dev = plan.args, plan.device
    return {
        "method": RUN_METHOD,
        "vog_field": a.vog_field,
        "fields": list(scores.values),
        "checkpoints": [os.path.abspath(p) for p in plan.paths],
        "checkpoint_sha256": plan.hashes,
        "model": _model_spec(loaded.model),
        "num_classes": a.num_classes,
        "state_dict_key": (loaded.weights or {}).get("state_dict_key"),  # the entry that held the weights
        "manifest": None if plan.manifest is None else str(plan.manifest.path.resolve()),
        "label_field": a.label_field,
        "classes": plan.data.classes,
        "label_mode": a.label_mode,
        "target": a.target,
        "statistic": a.statistic,
        "channel_reduction": a.channel_reduction,
        "normalization": a.normalization,
        "companions": list(COMPANIONS) if a.companions else [],
        "windows": {w: idx for w, idx in plan.windows.items()},
        "transform": plan.transform,
        "preprocessing": loaded.preprocessing,  # what "auto" (or the argument) resolved to, and from where
        "batch_size": int(a.batch_size),
        "num_workers": plan.num_workers,
        "device": str(dev),
        "num_threads": plan.threads.count,
        "num_threads_why": plan.threads.why,
        "precision": a.precision,
        "engine": loaded.engine.settings,
        "world_size": 1 if plan.ctx is None else plan.ctx.world_size,
        "resumed_samples": scored.raw.stats.get("resumed", 0),
        "resume_changed_samples": scored.partial.changed,  # flushed, but label or path changed: scored again
        "num_samples": len(plan.data.ids),
        "duplicate_samples": plan.data.duplicates,  # repeated occurrences in the view, each scored once
        "versions": _versions(),
    }


def _write(plan: Plan, loaded: Loaded, scored: RawScores, scores: Scores) -> VoGResults:
    """Write the fields and register the run, all or nothing (:func:`.writer.write_run`; under
    torchrun rank 0 alone, the others wait at the barrier); index the fields, drop the partial
    chunks. Returns the run's :class:`VoGResults`."""
    a, data, raw = plan.args, plan.data, scored.raw
    config = _run_config(plan, loaded, scored, scores)
    # data_wait / compute: seconds the scoring loop waited for images / computed (summed over
    # torchrun ranks); a large data_wait means the device idled: raise num_workers
    timings = {
        "load": loaded.t_load - plan.t0,
        "score": scored.t_score - loaded.t_load,
        "data_wait": raw.stats["data_wait"],
        "compute": raw.stats["compute"],
    }

    def finish_timings():
        t = time.perf_counter()
        timings.update(write=t - scored.t_score, total=t - plan.t0)
        return timings

    results = VoGResults(  # what FiftyOne stores with the run, plus the arrays (not stored)
        a.samples,
        VoGRunConfig(**config),
        a.vog_field,
        class_stats=scores.class_stats,
        summary=_summary(raw),
        timings=timings,
        ids=data.ids,
        raw=scores.raw,
        scores=scores.values,
        used_labels=raw.used_labels,
        predicted=raw.predicted,
        classes=data.classes,
    )

    def stored_results():
        finish_timings()
        results.config.indexes = config["indexes"]  # what write_run indexed, as the stored config says
        return results

    if plan.is_main:  # the run's results are saved by write_run, inside its all-or-nothing block
        roles = _field_roles(plan)
        index = [n for n, role in roles.items() if role in INDEXED_ROLES]
        write_run(a.samples, data.ids, scores.values, a.vog_field, config, stored_results, roles=roles, index=index)
        try:
            scored.partial.clear()
        except KeyboardInterrupt as e:
            e.fiftyone_vog_state = "written"
            raise
    else:
        finish_timings()
    if plan.ctx is not None:
        plan.ctx.barrier()
    return results


@locked  # the run lock of (dataset, vog_field), held from the checks to the end of the write
def compute_vog(
    samples,
    checkpoints: str | os.PathLike | Sequence[str | os.PathLike],
    model: ModelSpec = None,
    label_field: str = DEFAULTS["label_field"],
    classes: Sequence[str] | None = None,
    label_mode: str = DEFAULTS["label_mode"],
    target: str = DEFAULTS["target"],
    statistic: str = DEFAULTS["statistic"],
    channel_reduction: str = DEFAULTS["channel_reduction"],
    normalization: str = DEFAULTS["normalization"],
    vog_field: str = DEFAULTS["vog_field"],
    windows=None,
    transform=None,
    batch_size: int = DEFAULTS["batch_size"],
    device: str | None = None,
    num_workers: int | None = None,
    progress: bool | Callable | None = None,
    overwrite: bool = False,
    num_classes: int | None = None,
    allow_pickle: bool = False,
    precision: str = DEFAULTS["precision"],
    resume: bool = False,
    strategy: str = "auto",
    autocast: str | None = None,
    channels_last: bool | None = None,
    fold_batchnorm: bool = True,
    allow_torchscript: bool = False,
    max_image_pixels: int | None = None,
    num_threads: int | None = None,
    companions: bool = True,
    state_dict_key: str | None = None,
    _allow_import: bool = True,
) -> VoGResults:
    """Score every sample of ``samples`` by Variance of Gradients and write the scores.

    Args:
        samples: a FiftyOne dataset or view of images.
        checkpoints: training checkpoints in training order: a glob (naturally sorted),
            a directory, or a list of paths. A directory with a manifest (``vog_checkpoints.json``,
            written by :class:`~fiftyone_vog.inputs.training.CheckpointSaver` and the training
            callbacks, see :mod:`fiftyone_vog.inputs.manifest`) gives the checkpoints in its
            training order and the defaults of ``model``, ``classes`` (checked against the
            labels), ``num_classes``, ``transform`` and ``state_dict_key``.
        model: architecture — torchvision name (``"resnet18"``), timm name (``"timm:resnet18"``,
            ``"timm:vit_tiny_patch16_224(img_size=32)"``; ``pip install 'fiftyone-vog[timm]'``),
            ``"package.module:callable"``, an ``nn.Module`` or a factory; ``None`` for TorchScript /
            pickled-module checkpoints, or when the folder's manifest names it.
        label_field: a ``fo.Classification`` field with the labels.
        classes: class names in the model's output order (default: the dataset's classes
            for ``label_field``, else its default classes, else the sorted distinct labels).
        label_mode: ``"true"`` (the label), ``"predicted"`` (the last checkpoint's
            prediction, at every checkpoint) or ``"auto"`` (the label where present, else
            the prediction).
        target: ``"probability"`` (softmax; the default, measured best on our audits — see the
            README's Results) or ``"logit"`` (pre-softmax, the paper's main-text definition).
        statistic: ``"variance"`` or ``"std"`` per pixel across checkpoints.
        channel_reduction: ``"sum"`` (paper) or ``"mean"`` over colour channels.
        normalization: ``"zscore"`` within each class, ``"abs"`` (its absolute value) or ``"none"``.
        vog_field: the field for the normalized score; ``{vog_field}_raw`` gets the raw score,
            ``{vog_field}_{window}`` / ``{vog_field}_{window}_raw`` each window's. Also the run key.
        windows: ``None``, ``"thirds"`` or ``{name: indices | "a:b" | [paths]}`` (see
            :func:`resolve_windows`).
        transform: ``None`` / ``"auto"`` (default: the manifest's transform, else the model's own
            preprocessing — a timm model's eval transform from ``timm.data.resolve_data_config`` —,
            else ``"rgb"``), a preset ``"rgb"``, ``"gray"``, ``"cifar"``, ``"imagenet"``, a
            description ``{"kind": "timm", "data_config": {...}}``, or a callable taking an RGB
            ``PIL.Image`` and returning a C×H×W tensor. The run config's ``preprocessing`` records
            what was used and where it came from.
        batch_size, num_workers: the DataLoader's; ``num_workers=None`` decodes images in the
            main process on the CPU (the model is the bottleneck there) and in up to 8 worker
            processes when scoring on a GPU, so that decoding keeps up.
        device: ``"cuda"``, ``"cpu"``, ``"cuda:1"``…; default CUDA when available.
        num_threads: torch's CPU threads while scoring (restored afterwards). ``None``: what
            ``OMP_NUM_THREADS`` says when it is set, else on the CPU as many as other processes
            leave idle cores, measured while the checkpoints load (this process's own work does
            not count; see :mod:`fiftyone_vog.core.threads`; more threads than free cores make
            every batch wait for the slowest one, measured in docs/performance.md). Recorded in
            the run's config with the reason (``num_threads``, ``num_threads_why``).
        progress: FiftyOne's convention: ``True``/``False``, ``None`` for the default, or a
            callable receiving the progress bar.
        overwrite: replace an existing run/fields with the same ``vog_field``.
        num_classes: output size used to build a torchvision/factory architecture
            (default ``len(classes)``).
        allow_pickle: allow whole pickled-module checkpoints (unpickling runs code; only
            for files you trust).
        allow_torchscript: allow TorchScript checkpoints (an archive is a program: its code runs
            when loaded and called; only for files you trust). Archives are recognised by content,
            whatever their name, and refused without this flag, also when ``model`` is given.
        max_image_pixels: refuse an image whose header declares more pixels than this, before
            decoding it (decompression bombs); default ``FIFTYONE_VOG_MAX_IMAGE_PIXELS`` or PIL's
            ``Image.MAX_IMAGE_PIXELS`` (see :func:`fiftyone_vog.inputs.images.image_pixel_limit`).
        precision: ``"float32"`` (default) or ``"float64"`` for models and gradients.
        resume: continue an interrupted run with the same configuration from its last
            flushed chunk of raw scores (see :mod:`fiftyone_vog.core.resume`); otherwise start over.
        strategy, autocast, channels_last: how the engine computes the gradients
            (``"loop"``/``"split"``/``"vmap"``; ``"bf16"``/``"fp16"`` mixed precision with the model's input
            layer in float32, or ``"bf16-all"``/``"fp16-all"`` for every layer in half precision:
            faster, ranks less exact; NHWC layout: ``None``, the default, uses it on the CPU when the
            model's class scores on the first batch are the same in NHWC, ``False`` never); see
            :class:`fiftyone_vog.engine.VoGEngine` and docs/performance.md.
        fold_batchnorm: fold each eval-mode BatchNorm into the convolution before it where the
            model's ``nn.Sequential`` containers provably pass one into the other (the same
            function: scores equal the unfolded model's up to float rounding, checked on the first
            batch; 1.3–1.4× faster on a SmallCNN on the CPU). ``False`` scores the modules as built.
            The run's config records what was folded (``engine.batchnorm_folded``); see
            :mod:`fiftyone_vog.engine.folding`.

        companions: also write, from the class scores of the same forward passes (no extra
            backward pass), ``{vog_field}_loss`` (mean cross-entropy of the used label over the
            checkpoints; high = likely mislabeled), ``{vog_field}_margin`` (its mean margin, AUM;
            low = likely mislabeled), ``{vog_field}_maxprob`` (the last checkpoint's max softmax;
            low = likely OOD) and ``{vog_field}_energy`` (its −logsumexp of the logits; high =
            likely OOD); per window ``{vog_field}_{window}_loss`` … over the window's checkpoints
            (maxprob and energy at its last). Never class-normalized. See
            :mod:`fiftyone_vog.engine.companions`.
        state_dict_key: the entry of each training checkpoint that holds the weights; ``None``
            (default): the trained weights (``state_dict``, ``model_state_dict``, …), also when the
            file keeps an EMA copy beside them; ``"state_dict_ema"``: timm's EMA weights. Recorded
            in the run's config (the entry used).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process scores its shard of the samples,
    the raw scores are gathered, and rank 0 alone writes (see :mod:`fiftyone_vog.core.distributed`).

    Returns:
        :class:`VoGResults`.

    Nothing is written unless the whole computation succeeds. Another process computing the
    same ``vog_field`` of the dataset meanwhile is refused (see :mod:`fiftyone_vog.core.locks`).
    """
    args = Args(**locals())  # first: here the locals are exactly the arguments
    plan = _validate(args)  # every check up front, in this order; nothing loaded yet
    loaded = _load(plan)  # checkpoints → models, images, engine
    scored = _score(plan, loaded)  # raw scores of every sample (resume, torchrun)
    scores = _normalize(plan, scored.raw)  # within each class; companions as they are
    return _write(plan, loaded, scored, scores)  # all or nothing, still under the lock


def data_wait_hint(
    timings: Mapping[str, float], num_workers: int, threshold: float = 0.25, min_wait: float = 10.0
) -> str | None:
    """A sentence for the user when scoring spent more than ``threshold`` of its time and at least
    ``min_wait`` seconds waiting for images (the device idled), else None.

    ``min_wait``: more workers cannot save more than the time waited, and starting them costs
    seconds of its own, so a short run gets no advice to change a setting."""
    wait, compute = timings.get("data_wait", 0.0), timings.get("compute", 0.0)
    if wait + compute <= 0 or wait < min_wait or wait / (wait + compute) <= threshold:
        return None
    return (
        f"scoring waited for images {wait / (wait + compute):.0%} of the time ({wait:.1f}s of "
        f"{wait + compute:.1f}s) with num_workers={num_workers}: raise num_workers (--num-workers) "
        "so that decoding keeps up"
    )


def threads_line(config: Mapping) -> str:
    """The run's torch thread count and why, for the CLI and the App (``"2 torch threads (idle cores
    of 2 …)"``); runs of earlier versions recorded the count alone."""
    n = config.get("num_threads")
    why = config.get("num_threads_why")
    return f"{n} torch thread{'s' if n != 1 else ''}" + (f" ({why})" if why else "")


def _workers(num_workers: int | None, dev: torch.device) -> int:
    if num_workers is not None:
        return int(num_workers)
    return 0 if dev.type == "cpu" else min(8, os.cpu_count() or 1)


#: The roles of the fields a run writes that it indexes (:mod:`.indexes`): what the App's grid and
#: the saved views sort by. Window fields are indexed on request (``fiftyone-vog index``).
INDEXED_ROLES = ("score", "raw", "companion")


def _field_roles(plan: Plan) -> dict[str, str]:
    """``{field: role}`` of every field the run writes, as the ownership record keeps them:
    ``score`` / ``raw`` (the window of every checkpoint), ``companion`` (its companions), and
    ``window`` / ``window-raw`` / ``window-companion`` for the other windows."""
    roles = {}
    for w, (norm, raw) in plan.fields.items():
        prefix = "" if w == ALL else "window-"
        roles[norm], roles[raw] = ("score" if w == ALL else "window"), f"{prefix}raw"
    for w, names in plan.companion_fields.items():
        for name in names.values():
            roles[name] = "companion" if w == ALL else "window-companion"
    return roles


def _check_overwrite(samples, vog_field, fields, overwrite):
    """Up front (under the run lock, the output fields claimed): the output fields must be free,
    or this run's own by the ownership record (then overwritten only with ``overwrite``) — never
    another VoG run's, nor a field or run that no VoG run wrote; without overwrite, no earlier
    write of this key may have been killed half way, and no fields of an unregistered run of this
    key (an interrupted run, FiftyOne's ``delete_run`` while it computed) may be left."""
    from . import ownership
    from .locks import mixed_message, unfinished_writes

    ds = samples._dataset
    names = [f for pair in fields.values() for f in pair]
    if ds.has_run(vog_field) and not is_vog_run(ds, vog_field):
        raise VoGError(
            f"dataset {ds.name!r} has a run {vog_field!r} that is not a VoG run; fiftyone-vog never replaces "
            f"it: choose another vog_field"
        )
    preflight.check_output_fields(samples, names, key=vog_field)  # another type, run or the user's: refused
    if overwrite:
        return  # rewriting every field is also the repair of a killed write
    for doc in unfinished_writes(ds, [vog_field]):
        raise VoGError(mixed_message(doc))
    if ds.has_run(vog_field):
        raise VoGError(
            f"a VoG run with key {vog_field!r} already exists on dataset {ds.name!r}; pass overwrite=True "
            f"(CLI: --overwrite) to replace it, or choose another vog_field"
        )
    left = ownership.names(ds, ownership.run_owner(vog_field))
    if left:
        raise VoGError(
            f"fields {left} of a VoG run {vog_field!r} that is no longer registered are left on dataset "
            f"{ds.name!r} (an interrupted run, or FiftyOne's delete_run while it computed); pass overwrite=True "
            f"(CLI: --overwrite) to replace them, or remove them with fov.delete_vog_run(dataset, {vog_field!r})"
        )


def _summary(raw) -> dict:
    """``{window: {"mean", "std", "min", "max"}}`` of the raw scores."""
    return {
        w: {"mean": float(np.mean(v)), "std": float(np.std(v)), "min": float(np.min(v)), "max": float(np.max(v))}
        for w, v in raw.raw.items()
        if ":" not in w  # VoG windows (not the companions' "window:name")
    }
