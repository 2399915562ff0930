"""``fiftyone-vog`` command line: subcommands mirror the Python API and hold no logic.

Each subcommand is an ``add_<name>(subparsers)`` function that declares its
arguments and sets ``func`` to a handler calling one API function.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def _load_dataset(name: str, view: str | None = None):
    import fiftyone as fo

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
    """``--windows thirds`` or ``--windows 'early=0:3,late=-3:'`` or JSON."""
    if not arg:
        return None
    if arg == "thirds":
        return arg
    if arg.lstrip().startswith("{"):
        return json.loads(arg)
    out = {}
    for part in arg.split(","):
        name, sep, spec = part.partition("=")
        if not sep:
            raise CLIError(f"--windows: {part!r} is not NAME=SPEC (e.g. early=0:3,late=-3:)")
        spec = spec.strip()
        out[name.strip()] = spec if ":" in spec else [int(s) for s in spec.split("+")]
    return out


# -- compute -------------------------------------------------------------------
def add_compute(sub):
    p = sub.add_parser(
        "compute",
        help="score every sample of a dataset by VoG and write the fields",
        description="Score every sample of a FiftyOne dataset by Variance of Gradients across training "
        "checkpoints; writes VOG_FIELD (class-normalized), VOG_FIELD_raw and one pair per window.",
        epilog="example: fiftyone-vog compute my-images --checkpoints 'runs/exp1/epoch_*.pt' --model resnet18",
    )
    p.add_argument("dataset", help="name of the FiftyOne dataset")
    p.add_argument("--view", help="score only this saved view of the dataset")
    p.add_argument("--checkpoints", required=True, help="glob (quote it), directory, or comma-separated files in training order")
    p.add_argument("--model", help="torchvision name (resnet18), 'package.module:callable'; omit for TorchScript checkpoints")
    p.add_argument("--num-classes", type=int, help="output size to build the architecture with (default: number of classes)")
    p.add_argument("--label-field", default="ground_truth", help="fo.Classification field (default: ground_truth)")
    p.add_argument("--classes", help="comma-separated class names in the model's output order")
    p.add_argument("--label-mode", default="true", choices=["true", "predicted", "auto"])
    p.add_argument("--target", default="logit", choices=["logit", "probability"])
    p.add_argument("--statistic", default="variance", choices=["variance", "std"])
    p.add_argument("--channel-reduction", default="sum", choices=["sum", "mean"])
    p.add_argument("--normalization", default="zscore", choices=["zscore", "abs", "none"])
    p.add_argument("--vog-field", default="vog", help="output field and run key (default: vog)")
    p.add_argument("--windows", help="'thirds', or NAME=SPEC pairs such as 'early=0:3,late=-3:' (indices or slices)")
    p.add_argument("--transform", default="rgb", help="rgb | gray | cifar | imagenet (default: rgb)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--device", help="cuda | cpu | cuda:N (default: cuda when available)")
    p.add_argument("--precision", default="float32", choices=["float32", "float64"])
    p.add_argument("--overwrite", action="store_true", help="replace an existing run / fields of the same name")
    p.add_argument("--allow-pickle", action="store_true", help="allow whole pickled-module checkpoints (runs code; trusted files only)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_compute)


def run_compute(args):
    import fiftyone_vog as fov

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
        statistic=args.statistic,
        channel_reduction=args.channel_reduction,
        normalization=args.normalization,
        vog_field=args.vog_field,
        windows=_windows(args.windows),
        transform=args.transform,
        batch_size=args.batch_size,
        device=args.device,
        num_workers=args.num_workers,
        progress=not args.quiet,
        overwrite=args.overwrite,
        num_classes=args.num_classes,
        allow_pickle=args.allow_pickle,
        precision=args.precision,
    )
    t = res.timings
    print(
        f"VoG: scored {len(res.ids)} samples against {len(res.config['checkpoints'])} checkpoints on "
        f"{res.config['device']} in {t['total']:.1f}s; wrote {', '.join(res.scores)}"
    )
    print(f"sort hardest first: dataset.sort_by({res.vog_field!r}, reverse=True)")


# -- entry point ---------------------------------------------------------------
SUBCOMMANDS = [add_compute]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fiftyone-vog",
        description="Variance of Gradients (VoG) example difficulty for FiftyOne datasets.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from .engine import VoGError

    try:
        args.func(args)
    except (CLIError, VoGError) as e:
        print(f"fiftyone-vog {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fiftyone-vog {args.command}: interrupted; the dataset was left as it was", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
