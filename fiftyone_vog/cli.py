"""``fiftyone-vog`` command line: subcommands mirror the Python API and hold no logic.

Each subcommand is an ``add_<name>(subparsers)`` function that declares its
arguments and sets ``func`` to a handler calling one API function.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from . import options
from .options import DEFAULTS as D

os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")

#: How long the CLI waits for the database before saying it is down (pymongo's own default
#: is 30 s, and FiftyOne retries: a minute of silence, then a traceback).
DB_TIMEOUT_MS = 5000


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line too (exit status 2), like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _redact(uri: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", uri)


def _check_database():
    """Fail fast, in one line, when the configured MongoDB does not answer."""
    import fiftyone as fo

    uri = fo.config.database_uri
    if not uri:  # FiftyOne starts its own mongod
        return
    import pymongo
    from pymongo.errors import PyMongoError

    try:
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=DB_TIMEOUT_MS, connectTimeoutMS=DB_TIMEOUT_MS)
        try:
            client.admin.command("ping")
        finally:
            client.close()
    except PyMongoError as e:
        raise CLIError(
            f"cannot reach the FiftyOne database at {_redact(uri)} ({type(e).__name__} after "
            f"{DB_TIMEOUT_MS / 1000:g} s): start that MongoDB, or point FIFTYONE_DATABASE_URI at a running one "
            "(unset, FiftyOne starts its own); the dataset is unchanged"
        ) from None


def _load_dataset(name: str, view: str | None = None):
    import fiftyone as fo

    _check_database()
    if not fo.dataset_exists(name):
        known = fo.list_datasets()
        raise CLIError(f"dataset {name!r} not found; datasets: {', '.join(known) if known else '(none)'}")
    ds = fo.load_dataset(name)
    if view:
        if not ds.has_saved_view(view):
            raise CLIError(f"saved view {view!r} not found on {name!r}; saved views: {ds.list_saved_views()}")
        return ds.load_saved_view(view)
    return ds


def _windows(arg: str | None):
    """``--windows thirds`` or ``--windows 'early=0:3,late=-3:'`` or JSON (the App's parser too)."""
    return options.parse_windows(arg, what="--windows")


# -- compute -------------------------------------------------------------------
def add_compute(sub):
    p = sub.add_parser(
        "compute",
        help="score every sample of a dataset by VoG and write the fields",
        description="Score every sample of a FiftyOne dataset by Variance of Gradients across training "
        "checkpoints; writes VOG_FIELD (class-normalized), VOG_FIELD_raw and one pair per window.",
        epilog="examples: fiftyone-vog compute my-images --checkpoints 'runs/exp1/epoch_*.pt' --model resnet18; "
        "fiftyone-vog compute my-images --checkpoints runs/exp1 (a folder with vog_checkpoints.json, or timm's "
        "train.py output: no --model); fiftyone-vog compute my-images --checkpoints 'runs/exp1/*.ckpt' "
        "--model timm:convnext_tiny; fiftyone-vog compute my-images --checkpoints runs/hf (a Hugging Face "
        "Trainer output folder: its checkpoint-*/ folders by step, architecture, class order and preprocessing "
        "from config.json and preprocessor_config.json; no --model)",
    )
    p.add_argument("dataset", help="name of the FiftyOne dataset")
    p.add_argument("--view", help="score only this saved view of the dataset")
    p.add_argument(
        "--checkpoints",
        required=True,
        help="glob (quote it), directory, or comma-separated files in training order; a directory with a "
        "vog_checkpoints.json manifest (CheckpointSaver, the Lightning and Hugging Face callbacks) gives the "
        "order, model, classes and transform; a Hugging Face Trainer output folder or a glob such as "
        "'runs/hf/checkpoint-*' gives its checkpoint folders by step",
    )
    p.add_argument(
        "--model",
        help="torchvision name (resnet18), timm name (timm:resnet18, timm:vit_tiny_patch16_224(img_size=32); "
        "pip install 'fiftyone-vog[timm]'), 'package.module:callable'; omit when the checkpoints' manifest or "
        "timm's train.py names it, and for TorchScript checkpoints (with --allow-torchscript); hf (or omitted) for "
        "Hugging Face checkpoint folders: the architecture in their config.json, never code from the folder "
        "(pip install 'fiftyone-vog[transformers]')",
    )
    p.add_argument(
        "--state-dict-key",
        help="the entry of each training checkpoint holding the weights (default: the trained weights, "
        "state_dict; state_dict_ema: timm's EMA weights)",
    )
    p.add_argument(
        "--num-classes", type=int, help="output size to build the architecture with (default: number of classes)"
    )
    p.add_argument("--label-field", default=D["label_field"], help="fo.Classification field (default: %(default)s)")
    p.add_argument("--classes", help="comma-separated class names in the model's output order")
    p.add_argument("--label-mode", default=D["label_mode"], choices=options.LABEL_MODES)
    p.add_argument(
        "--target",
        default=D["target"],
        choices=options.TARGETS,
        help=f"class score: softmax probability or the paper's logit (default: {options.DEFAULT_TARGET}, "
        "measured best; see the README's Results)",
    )
    p.add_argument("--statistic", default=D["statistic"], choices=options.STATISTICS)
    p.add_argument("--channel-reduction", default=D["channel_reduction"], choices=options.CHANNEL_REDUCTIONS)
    p.add_argument("--normalization", default=D["normalization"], choices=options.NORMALIZATIONS)
    p.add_argument("--vog-field", default=D["vog_field"], help="output field and run key (default: %(default)s)")
    p.add_argument("--windows", help="'thirds', or NAME=SPEC pairs such as 'early=0:3,late=-3:' (indices or slices)")
    p.add_argument(
        "--transform",
        default=D["transform"],
        help=f"{' | '.join(options.TRANSFORMS)} or a JSON description such as "
        '\'{"kind": "timm", "data_config": {...}}\' (default: %(default)s: the manifest\'s, else the model\'s own '
        "preprocessing — a timm model's eval transform —, else rgb)",
    )
    p.add_argument("--batch-size", type=int, default=D["batch_size"])
    p.add_argument("--num-workers", type=int, help="image-decoding processes (default: 0 on CPU, up to 8 on GPU)")
    p.add_argument(
        "--num-threads",
        type=int,
        help="torch CPU threads while scoring (default: OMP_NUM_THREADS, else on the CPU the cores other processes leave idle)",
    )
    p.add_argument("--device", help="cuda | cpu | cuda:N (default: cuda when available)")
    p.add_argument("--precision", default=D["precision"], choices=options.PRECISIONS)
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run with the same configuration from its last saved chunk",
    )
    p.add_argument(
        "--strategy",
        default="auto",
        choices=options.STRATEGIES,
        help="checkpoints one after another (loop), the same on one part of each batch per CPU thread "
        "(split: opt-in, faster at the engine level, see docs/performance.md), or all in one batched pass (vmap)",
    )
    p.add_argument(
        "--autocast",
        choices=options.AUTOCASTS,
        help="mixed precision: faster, ranks kept, values not exact (the model's input layer stays "
        "float32; -all: every layer in half precision, faster still, ranks less exact)",
    )
    p.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="NHWC memory layout for convolutions (default: on the CPU when the model's class scores on the "
        "first batch are the same in NHWC; on CUDA with --autocast)",
    )
    p.add_argument(
        "--no-fold-batchnorm",
        dest="fold_batchnorm",
        action="store_false",
        help="score the model as built, without folding eval-mode BatchNorm into the convolution before it "
        "(folding is the same function, checked on the first batch, and faster)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing run / fields of the same name")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="allow whole pickled-module checkpoints (runs code; trusted files only)",
    )
    p.add_argument(
        "--allow-torchscript",
        action="store_true",
        help="allow TorchScript checkpoints (an archive is a program: runs code; trusted files only)",
    )
    p.add_argument(
        "--max-image-pixels",
        type=int,
        help="refuse images declaring more pixels (decompression bombs; default: "
        "FIFTYONE_VOG_MAX_IMAGE_PIXELS or PIL's 89,478,485)",
    )
    p.add_argument(
        "--no-companions",
        dest="companions",
        action="store_false",
        help="do not write the companions VOG_FIELD_loss, _margin, _maxprob, _energy (from the same pass)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_compute)


def run_compute(args):
    import fiftyone_vog as fov
    from fiftyone_vog.core.compute import data_wait_hint, not_indexed_message, threads_line

    samples = _load_dataset(args.dataset, args.view)
    checkpoints = args.checkpoints
    if "," in checkpoints:
        checkpoints = [c.strip() for c in checkpoints.split(",") if c.strip()]
    res = fov.compute_vog(
        samples,
        checkpoints,
        model=args.model,
        label_field=args.label_field,
        classes=args.classes.split(",") if args.classes else None,
        label_mode=args.label_mode,
        target=args.target,
        companions=args.companions,
        statistic=args.statistic,
        channel_reduction=args.channel_reduction,
        normalization=args.normalization,
        vog_field=args.vog_field,
        windows=_windows(args.windows),
        transform=_transform(args.transform),
        batch_size=args.batch_size,
        device=args.device,
        num_workers=args.num_workers,
        num_threads=args.num_threads,
        progress=not args.quiet,
        overwrite=args.overwrite,
        num_classes=args.num_classes,
        allow_pickle=args.allow_pickle,
        allow_torchscript=args.allow_torchscript,
        max_image_pixels=args.max_image_pixels,
        precision=args.precision,
        resume=args.resume,
        strategy=args.strategy,
        autocast=args.autocast,
        channels_last=args.channels_last,
        fold_batchnorm=args.fold_batchnorm,
        state_dict_key=args.state_dict_key,
    )
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 reports
        return
    t = res.timings
    print(
        f"VoG: scored {len(res.ids)} samples against {len(res.config['checkpoints'])} checkpoints on "
        f"{res.config['device']} in {t['total']:.1f}s; wrote {', '.join(res.scores)}"
    )
    print(f"  of which scoring {t['compute']:.1f}s and waiting for images {t['data_wait']:.1f}s")
    print(f"  {threads_line(res.config)}")
    print(f"  preprocessing: {_preprocessing(res.config)}")
    unindexed = not_indexed_message(res.config.get("indexes"))
    if unindexed:
        print(f"  note: {unindexed}")
    hint = data_wait_hint(t, res.config["num_workers"])
    if hint:
        print(f"  note: {hint}")
    print(f"sort hardest first: dataset.sort_by({res.vog_field!r}, reverse=True)")


def _transform(text: str):
    """``--transform``: a preset name, or a JSON transform description."""
    import json

    if not text.strip().startswith("{"):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CLIError(
            f'--transform: invalid JSON ({e}); e.g. \'{{"kind": "timm", "data_config": {{...}}}}\''
        ) from None


def _preprocessing(config: dict) -> str:
    """The run's preprocessing and where it came from, in words."""
    from fiftyone_vog.inputs.kinds import transform_summary

    used = config.get("preprocessing") or {}
    source = {
        "argument": "--transform",
        "manifest": "the checkpoints' manifest",
        "checkpoint": "timm's training arguments in the checkpoints",
        "model": "the model's own",
        "default": "the default",
    }.get(used.get("source"), "?")
    return f"{transform_summary(used.get('transform'))} ({source})"


# -- views -------------------------------------------------------------------
def add_views(sub):
    p = sub.add_parser(
        "views",
        help="save the vog-high, vog-low, vog-shuffled-labels, vog-ood, vog-label-errors and vog-likely-ood views",
        description="Save expression-based views on the dataset: vog-high (top PERCENTILE%% by VoG, hardest "
        "first), vog-low (bottom PERCENTILE%%, lowest first), vog-shuffled-labels (SHUFFLED_FIELD is True), "
        "vog-ood (tagged OOD_TAG, or OOD_FIELD is True), vog-label-errors (by the run's mean loss: those above "
        "ln 2 by default, see --label-error-rule) and vog-likely-ood (every scored sample by the run's best OOD "
        "score, no tag needed). A view that cannot be saved is skipped with a note. Existing views of these names "
        "are replaced. --name-prefix PREFIX names them PREFIX-high, PREFIX-low, ... instead, so that another "
        "score field keeps its own views. Prints each view's size and what it holds.",
        epilog="examples:\n  fiftyone-vog views my-images\n  fiftyone-vog views my-images --percentile 5 --ood-tag novel\n"
        "  fiftyone-vog views my-images --vog-field vog_test --name-prefix vog-test\n"
        "  fiftyone-vog views my-images --label-error-rule percentile --percentile 20",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", help="name of the FiftyOne dataset")
    p.add_argument("--vog-field", default="vog", help="score field written by 'compute' (default: vog)")
    p.add_argument("--percentile", type=float, default=10, help="size of vog-high / vog-low in percent (default: 10)")
    p.add_argument(
        "--shuffled-field",
        default="label_shuffled",
        help="boolean field marking shuffled labels (default: label_shuffled)",
    )
    p.add_argument("--ood-field", help="boolean field marking out-of-distribution samples (default: use --ood-tag)")
    p.add_argument("--ood-tag", default="ood", help="sample tag marking out-of-distribution samples (default: ood)")
    p.add_argument("--name-prefix", help="name the views PREFIX-high, PREFIX-low, ... (default: vog)")
    p.add_argument(
        "--label-error-rule",
        choices=options.LABEL_ERROR_RULES,
        help="which samples vog-label-errors holds: even-odds (default: mean loss above ln 2, sized by the data) "
        "or percentile (the top PERCENTILE%%)",
    )
    p.set_defaults(func=run_views)


def run_views(args):
    import logging

    import fiftyone_vog as fov

    ds = _load_dataset(args.dataset)
    logger = logging.getLogger("fiftyone_vog.audit.views")
    level = logger.level
    logger.setLevel(logging.ERROR)  # skipped views are printed below, not warned twice
    try:
        views = fov.save_vog_views(
            ds,
            vog_field=args.vog_field,
            percentile=args.percentile,
            shuffled_field=args.shuffled_field,
            ood_field=args.ood_field,
            ood_tag=args.ood_tag,
            name_prefix=args.name_prefix,
            label_error_rule=args.label_error_rule,
        )
    finally:
        logger.setLevel(level)
    for name, count in views.counts().items():
        print(f"{name}\t{count} samples\t{ds.get_saved_view_info(name)['description']}")
    for name, reason in views.skipped.items():
        print(f"{name}\tskipped: {reason}")
    print(f"open one: fo.load_dataset({args.dataset!r}).load_saved_view({views.names['high']!r})")


# -- shuffle-labels ------------------------------------------------------------
def add_shuffle_labels(sub):
    p = sub.add_parser(
        "shuffle-labels",
        help="memorization audit: give a seeded fraction of samples a wrong label (or --restore)",
        description="Replace the label of a seeded FRACTION of the labeled samples with a different class, keep "
        "the originals in LABEL_FIELD_original and flag changed samples in FLAG_FIELD. Train on the result, compute "
        "VoG, then compare flagged and clean samples (the paper's memorization audit). --restore undoes it.",
        epilog="examples:\n  fiftyone-vog shuffle-labels my-images --fraction 0.2 --seed 51\n"
        "  fiftyone-vog shuffle-labels my-images --restore",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", help="name of the FiftyOne dataset")
    p.add_argument("--view", help="shuffle only this saved view of the dataset")
    p.add_argument("--fraction", type=float, default=0.2, help="share of labeled samples to shuffle (default: 0.2)")
    p.add_argument("--label-field", default="ground_truth", help="fo.Classification field (default: ground_truth)")
    p.add_argument(
        "--seed",
        type=int,
        default=options.DEFAULT_SEED,
        help=f"random seed, a whole number ≥ 0 (default: {options.DEFAULT_SEED})",
    )
    p.add_argument(
        "--flag-field",
        help="boolean field marking changed labels (default: label_shuffled for "
        "ground_truth, else LABEL_FIELD_shuffled; with --restore: the one the shuffle recorded)",
    )
    p.add_argument("--original-field", help="field keeping the original labels (default: LABEL_FIELD_original)")
    p.add_argument(
        "--mode",
        default=options.SHUFFLE_MODES[0],
        choices=options.SHUFFLE_MODES,
        help="random-class: each drawn sample gets another class (default); permute: permute drawn labels",
    )
    p.add_argument("--overwrite", action="store_true", help="restore an earlier shuffle first, then shuffle again")
    p.add_argument("--restore", action="store_true", help="put the original labels back and remove the fields")
    p.set_defaults(func=run_shuffle_labels)


def run_shuffle_labels(args):
    import fiftyone_vog as fov

    samples = _load_dataset(args.dataset, args.view)
    if args.restore:
        out = fov.restore_labels(
            samples, label_field=args.label_field, flag_field=args.flag_field, original_field=args.original_field
        )
        print(
            f"restored {out['restored']} labels of {args.label_field!r}; removed {', '.join(out['deleted_fields']) or 'no fields'}"
        )
        return
    out = fov.shuffle_labels(
        samples,
        fraction=args.fraction,
        label_field=args.label_field,
        seed=args.seed,
        flag_field=args.flag_field,
        original_field=args.original_field,
        overwrite=args.overwrite,
        mode=args.mode,
    )
    print(
        f"shuffled {out['shuffled']} of {out['labeled']} labeled samples ({out['selected']} drawn, seed {out['seed']}); "
        f"flag: {out['flag_field']}, originals: {out['original_field']}"
    )


# -- export --------------------------------------------------------------------
def add_export(sub):
    p = sub.add_parser(
        "export",
        help="export a saved view (e.g. vog-high) as a class-folder tree, FiftyOne dataset or CSV manifest",
        description="Export a saved view (or the whole dataset) to EXPORT_DIR. image-classification-dir: "
        "EXPORT_DIR/<label>/<image>; fiftyone: media and every field, re-importable; csv: EXPORT_DIR/manifest.csv "
        "with id, filepath, label and the VoG fields, in the view's order. EXPORT_DIR must be new or empty, "
        "or, with --overwrite, hold an earlier fiftyone-vog export: --overwrite replaces only the files that "
        "export wrote and that are unchanged (fiftyone-vog's ownership record in the FiftyOne database lists "
        "them; its .fiftyone-vog-export.json is information only); anything else there is kept and named, and "
        "one where the new export writes refuses it. EXPORT_DIR itself is kept as it is (mode, owner, group). "
        "Never exported to: a filesystem root, the home or working directory or their ancestors, a folder "
        "holding media of any dataset, a symbolic link.",
        epilog="examples:\n  fiftyone-vog export my-images --view vog-high --export-dir out/hard\n"
        "  fiftyone-vog export my-images --view vog-shuffled-labels --export-dir out/memorized --dataset-type csv",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", help="name of the FiftyOne dataset")
    p.add_argument("--view", help="saved view to export, e.g. vog-high (default: the whole dataset)")
    p.add_argument("--export-dir", required=True, help="output directory (new or empty unless --overwrite)")
    p.add_argument("--dataset-type", default=options.DEFAULT_EXPORT_TYPE, choices=options.EXPORT_TYPES)
    p.add_argument("--label-field", default="ground_truth", help="fo.Classification field (default: ground_truth)")
    p.add_argument("--vog-field", default="vog", help="VoG run whose fields go into the CSV (csv only; default: vog)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier fiftyone-vog export in EXPORT_DIR: only the files it wrote, unchanged since "
        "(as fiftyone-vog's record lists them); anything else there is kept",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_export)


def run_export(args):
    import logging

    import fiftyone_vog as fov

    samples = _load_dataset(args.dataset, args.view)
    logger = logging.getLogger("fiftyone_vog.audit.export")
    level = logger.level
    logger.setLevel(logging.ERROR)  # what Overwrite kept is printed below, not warned twice
    try:
        path = fov.export_vog_subset(
            samples,
            args.export_dir,
            dataset_type=args.dataset_type,
            label_field=args.label_field,
            vog_field=args.vog_field,
            overwrite=args.overwrite,
            progress=not args.quiet,
        )
    finally:
        logger.setLevel(level)
    print(f"exported {getattr(path, 'num_samples', len(samples))} samples ({args.dataset_type}) to {path}")
    if getattr(path, "warning", None):
        print(f"fiftyone-vog export: {path.warning}", file=sys.stderr)


# -- report --------------------------------------------------------------------
def add_report(sub):
    p = sub.add_parser(
        "report",
        help="write an HTML report (plus PNGs) of every VoG analysis and store the results in the run",
        description="Analyse the VoG scores of a dataset or saved view: score histogram, error by VoG decile, "
        "early vs late window, shuffled-label t-test, OOD share by percentile, per-class VoG vs false-negative "
        "rate, and grids of the lowest- and highest-VoG images. Writes OUT_DIR/report.html (self-contained, "
        "opens offline) and one PNG per chart; sections whose inputs are missing are skipped with a note.",
        epilog="examples:\n  fiftyone-vog report my-images --out-dir out/report --pred-field predictions\n"
        "  fiftyone-vog report vog-digits --view test --out-dir out/test-report --pred-field predictions --no-per-class",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", help="name of the FiftyOne dataset")
    p.add_argument("--out-dir", required=True, help="folder for report.html and the PNGs (created)")
    p.add_argument("--view", help="analyse only this saved view of the dataset")
    p.add_argument("--vog-field", default="vog", help="score field and run key (default: vog)")
    p.add_argument(
        "--label-field", default="ground_truth", help="fo.Classification field with labels (default: ground_truth)"
    )
    p.add_argument(
        "--pred-field", help="fo.Classification field with predictions (error, window and per-class sections)"
    )
    p.add_argument(
        "--shuffled-field",
        default="label_shuffled",
        help="boolean field marking shuffled labels (default: label_shuffled)",
    )
    p.add_argument("--ood-tag", default="ood", help="tag marking out-of-distribution samples (default: ood)")
    p.add_argument("--ood-field", help="boolean field marking OOD samples (instead of the tag)")
    p.add_argument("--early-field", help="early-window score field (default: VOG_FIELD_early when present)")
    p.add_argument("--late-field", help="late-window score field (default: VOG_FIELD_late when present)")
    p.add_argument("--bins", type=int, default=10, help="number of VoG quantile bins (default: 10, deciles)")
    p.add_argument("--grid-size", type=int, default=5, help="images per side of the lowest/highest grids (default: 5)")
    p.add_argument("--no-per-class", action="store_true", help="skip per-class grids and the per-class section")
    p.set_defaults(func=run_report)


def run_report(args):
    import fiftyone_vog as fov

    samples = _load_dataset(args.dataset, args.view)
    out = fov.vog_report(
        samples,
        args.out_dir,
        vog_field=args.vog_field,
        label_field=args.label_field,
        pred_field=args.pred_field,
        shuffled_field=args.shuffled_field,
        ood_tag=args.ood_tag,
        ood_field=args.ood_field,
        early_field=args.early_field,
        late_field=args.late_field,
        grid_size=args.grid_size,
        per_class=not args.no_per_class,
        bins=args.bins,
        print_summary=True,
    )
    print(f"{len(out['pngs'])} PNGs in {out['out_dir']}; open {out['html']} in a browser")


# -- runs ----------------------------------------------------------------------
def add_runs(sub):
    p = sub.add_parser(
        "runs",
        help="list, inspect, rename or delete the VoG runs of a dataset",
        description="Manage the VoG runs of a dataset, as the App's Get VoG run info, Rename VoG run and "
        "Delete VoG run operators do: list them, see one's configuration and what it owns (fields, indexes, "
        "saved views), rename one (its fields follow the key), delete one (with what it owns).",
        epilog="examples:\n  fiftyone-vog runs list my-images\n  fiftyone-vog runs info my-images vog\n"
        "  fiftyone-vog runs rename my-images vog vog_resnet\n  fiftyone-vog runs delete my-images vog_resnet",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    runs = p.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    ls, info, rename, delete = (
        runs.add_parser(name, help=h)
        for name, h in zip(
            options.RUN_COMMANDS,
            (
                "the VoG runs of the dataset: key, date, samples, checkpoints, fields",
                "one run's configuration (checkpoints, model, options, threads), timings and what it owns",
                "rename a run: its fields, their indexes and its saved views follow (vog → vog2: vog2, vog2_raw, ...)",
                "delete a run with its fields, their indexes and the saved views it saved (lists them first)",
            ),
        )
    )
    for q in (ls, info, rename, delete):
        q.add_argument("dataset", help="name of the FiftyOne dataset")
    info.add_argument("key", nargs="?", help="the run's key (default: vog, else the most recent run)")
    info.add_argument("--json", action="store_true", help="print everything as JSON")
    rename.add_argument("key", help="the run's key")
    rename.add_argument("new_key", help="its new key; the fields are renamed after it")
    rename.add_argument("--dry-run", action="store_true", help="say what would be renamed; rename nothing")
    delete.add_argument("key", help="the run's key")
    delete.add_argument(
        "--keep-fields", action="store_true", help="delete only the run's record: its fields and views stay"
    )
    delete.add_argument("--yes", action="store_true", help="delete without asking (a terminal asks; else required)")
    p.set_defaults(func=run_runs)


def run_runs(args):
    import json

    import fiftyone_vog as fov
    from fiftyone_vog.core.runs import preferred_runs, vog_run_contents

    ds = _load_dataset(args.dataset)
    action = args.runs_command
    if action == "list":
        keys = fov.list_vog_runs(ds)
        for key in keys:
            info = fov.get_vog_run(ds, key)
            c = info.config
            when = info.timestamp.strftime("%Y-%m-%d %H:%M") if info.timestamp else "?"
            fields = ", ".join(vog_run_contents(ds, key).fields) or "(none)"
            print(
                f"{key}\t{when}\t{getattr(c, 'num_samples', '?')} samples\t"
                f"{len(getattr(c, 'checkpoints', None) or [])} checkpoints\tfields: {fields}"
            )
        if not keys:
            print(f"no VoG run on {ds.name!r}; score it with: fiftyone-vog compute {ds.name} --checkpoints ...")
    elif action == "info":
        key = args.key or next(iter(preferred_runs(ds)), D["vog_field"])
        info = fov.describe_vog_run(ds, key)
        if args.json:
            print(json.dumps(info, indent=2, default=str))
            return
        print(f"VoG run {key!r} of {ds.name!r}, created {info['created']} (FiftyOne {info['fiftyone_version']})")
        for what in ("fields", "indexes", "views"):
            print(f"  {what}: {', '.join(info[what]) or '(none)'}")
        for field, why in info["kept"].items():
            print(f"  kept: {field} ({why})")
        print("  timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in info["timings"].items()))
        for name, value in info["config"].items():
            print(f"  {name}: {json.dumps(value, default=str)}")
    elif action == "rename":
        fields = fov.rename_vog_run(ds, args.key, args.new_key, dry_run=args.dry_run)
        done = "would rename" if args.dry_run else "renamed"
        moved = ", ".join(f"{old} → {new}" for old, new in fields.items()) or "no field"
        print(f"{done} VoG run {args.key!r} to {args.new_key!r}: {moved}")
    else:
        contents = fov.delete_vog_run(ds, args.key, delete_fields=not args.keep_fields, dry_run=True)
        print(f"deleting VoG run {args.key!r} of {ds.name!r} deletes:")
        for line in contents.lines():
            print(f"  {line}")
        if not args.yes:
            if not sys.stdin.isatty():
                raise CLIError("nothing was deleted: pass --yes to delete what is listed above")
            if input("delete? [y/N] ").strip().lower() not in ("y", "yes"):
                print("nothing was deleted")
                return
        fov.delete_vog_run(ds, args.key, delete_fields=not args.keep_fields)
        print(f"deleted VoG run {args.key!r}")


# -- index ---------------------------------------------------------------------
def add_index(sub):
    p = sub.add_parser(
        "index",
        help="index VoG fields so that the App's Sort by lists them (or --drop the indexes fiftyone-vog made)",
        description="A VoG run indexes its score, its raw score and its companions (what the App's grid and "
        f"the saved views sort by), within MongoDB's limit of {options.MAX_INDEXES} indexes per dataset. This "
        "indexes other fields fiftyone-vog wrote (a window's, say), or with --drop drops the indexes it "
        "made on them (never an index it did not make). Fields fiftyone-vog did not write are refused.",
        epilog="examples:\n  fiftyone-vog index my-images vog_late vog_late_raw\n"
        "  fiftyone-vog index my-images vog_early --drop",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("dataset", help="name of the FiftyOne dataset")
    p.add_argument("fields", nargs="+", metavar="FIELD", help="fields fiftyone-vog wrote")
    p.add_argument("--drop", action="store_true", help="drop the indexes fiftyone-vog made on these fields")
    p.set_defaults(func=run_index)


def run_index(args):
    import fiftyone_vog as fov

    ds = _load_dataset(args.dataset)
    out = fov.index_vog_fields(ds, args.fields, drop=args.drop)
    done = out["dropped"] if args.drop else out["indexed"]
    print(f"{'dropped the indexes of' if args.drop else 'indexed'}: {', '.join(done) or '(none)'}")
    if out["unchanged"]:
        why = "no index fiftyone-vog made" if args.drop else "already indexed"
        print(f"unchanged ({why}): {', '.join(out['unchanged'])}")
    print(f"{out['indexes']} of MongoDB's {options.MAX_INDEXES} indexes in use on {args.dataset!r}")


# -- install-plugin ------------------------------------------------------------
def add_install_plugin(sub):
    p = sub.add_parser(
        "install-plugin",
        help="make the FiftyOne App find the @fiftyone-vog/vog plugin of this installation",
        description="Link (default) or copy this package's folder, which holds fiftyone.yml, into FiftyOne's "
        "plugins directory (fo.config.plugins_dir / FIFTYONE_PLUGINS_DIR), then check that FiftyOne loads it.",
        epilog="example: fiftyone-vog install-plugin && fiftyone app launch",
    )
    p.add_argument("--plugins-dir", help="FiftyOne plugins directory (default: fo.config.plugins_dir)")
    p.add_argument("--copy", action="store_true", help="copy the files instead of a symlink")
    p.add_argument("--overwrite", action="store_true", help="replace an existing installation")
    p.set_defaults(func=run_install_plugin)


def run_install_plugin(args):
    from .app.install import install_plugin, plugin_errors

    path = install_plugin(args.plugins_dir, mode="copy" if args.copy else "link", overwrite=args.overwrite)
    print(f"installed {options.PLUGIN_NAME} at {path}")
    import fiftyone as fo

    plugins_dir = os.path.dirname(path)
    if os.path.realpath(fo.config.plugins_dir or "") != os.path.realpath(plugins_dir):
        print(f"note: FiftyOne looks for plugins in {fo.config.plugins_dir!r}; set FIFTYONE_PLUGINS_DIR={plugins_dir}")
        return
    errors = plugin_errors()
    if errors:
        raise CLIError("FiftyOne could not load the plugin: " + "; ".join(errors))
    print("FiftyOne loads it: open the App and press ` for the operator browser (Compute VoG)")


# -- entry point ---------------------------------------------------------------
SUBCOMMANDS = [
    add_compute,
    add_views,
    add_shuffle_labels,
    add_export,
    add_report,
    add_runs,
    add_index,
    add_install_plugin,
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fiftyone-vog",
        description="Variance of Gradients (VoG) example difficulty for FiftyOne datasets.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .errors import VoGError

    try:
        args.func(args)
    except (CLIError, VoGError, options.OptionError) as e:
        return _fail(args.command, e)
    except KeyboardInterrupt as e:
        state = getattr(e, "fiftyone_vog_state", None)  # set by the writer of compute's run
        what = {
            "restored": "during the write; every sample was put back as it was and an earlier run kept",
            "written": "after the write had finished; the new run is complete",
        }.get(state)
        print(
            f"fiftyone-vog {args.command}: interrupted {what}"
            if what
            else f"fiftyone-vog {args.command}: interrupted; the dataset was left as it was",
            file=sys.stderr,
        )
        return 130
    except Exception as e:
        errors = sys.modules.get("pymongo.errors")
        if errors is None or not isinstance(e, errors.ConnectionFailure):
            raise
        # lost during the command (checked up front in _load_dataset): no claim about the dataset
        return _fail(
            args.command,
            f"lost the connection to the FiftyOne database ({type(e).__name__}); check "
            "that MongoDB runs (FIFTYONE_DATABASE_URI) and run the command again",
        )
    return 0


def _fail(command: str, error) -> int:
    """Every error is one line on stderr and exit status 2."""
    text = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
    print(f"fiftyone-vog {command}: error: {text}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
