#!/usr/bin/env python
"""How mixed precision changes VoG scores, on checkpoints of a model this script trains.

Random-weight checkpoints (``bench_vog.py``) time well but say little about precision: their
maps differ by noise, and random inputs all score alike. Here a SmallCNN is trained on real
pictures — scikit-learn's bundled digits when scikit-learn is installed, generated shapes
otherwise — saving K checkpoints, and each mixed-precision configuration is compared with the
exact float32 engine on held-out images: Spearman rank correlation and median relative
difference, for both VoG targets. Needs only torch and numpy (scikit-learn for the digits)::

    python benchmarks/precision_vog.py                      # CPU: bf16 and fp16
    python benchmarks/precision_vog.py --device cuda --n 5000
    python benchmarks/precision_vog.py --shuffle 0.2 --epochs 80 --on train   # a memorizing model, as make demo's

Each autocast dtype runs twice: with the model's input layer kept in float32 (the engine's
default; see ``fiftyone_vog.engine.precision``) and with everything in half precision.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fiftyone_vog.engine import VoGEngine, VoGOptions  # noqa: E402  (imports no FiftyOne)
from fiftyone_vog.inputs.training import train_classifier  # noqa: E402
from fiftyone_vog.models import SmallCNN  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def load_pictures(source: str, size: int, seed: int):
    """(x (N, 3, size, size) in [0, 1], y, source name)."""
    if source in ("auto", "digits"):
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            if source == "digits":
                raise SystemExit("--data digits needs scikit-learn; use --data shapes") from None
        else:
            d = load_digits()
            x = torch.from_numpy(d.images).float()[:, None] / 16.0
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
            return x.clamp(0, 1), torch.from_numpy(d.target).long(), "digits"
    g = torch.Generator().manual_seed(seed)
    n, classes = 2000, 4
    y = torch.randint(0, classes, (n,), generator=g)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    shapes = torch.stack(
        [
            (xx**2 + yy**2 < 0.5).float(),
            ((xx.abs() < 0.6) & (yy.abs() < 0.6)).float(),
            (torch.sin(8 * xx) > 0).float(),
            (torch.sin(8 * xx) * torch.sin(8 * yy) > 0.5).float(),
        ]
    )
    x = shapes[y][:, None].repeat(1, 3, 1, 1) * torch.rand(n, 3, 1, 1, generator=g)
    x = (x + 0.3 * torch.rand(x.shape, generator=g)).clamp(0, 1)
    return x, y, "shapes"


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--data",
        default="auto",
        choices=["auto", "digits", "shapes"],
        help="training pictures (default: digits when scikit-learn is installed, else shapes)",
    )
    p.add_argument("--size", type=int, default=32, help="image side (default 32)")
    p.add_argument("--epochs", type=int, default=20, help="training epochs (default 20)")
    p.add_argument("--k", type=int, default=5, help="checkpoints, evenly spaced over training (default 5)")
    p.add_argument("--n", type=int, default=1000, help="held-out images scored (default 1000)")
    p.add_argument("--autocast", default="bf16,fp16", help="comma-separated: bf16, fp16 (default both)")
    p.add_argument("--device", help="cpu | cuda (default: cuda when available)")
    p.add_argument(
        "--shuffle",
        type=float,
        default=0.0,
        help="fraction of training labels replaced by another class (memorization; default 0)",
    )
    p.add_argument(
        "--on",
        choices=["test", "train"],
        default="test",
        help="score held-out images (default) or the training images with their training labels",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="JSON path (default: benchmarks/results/precision-<data>-<device>.json)")
    args = p.parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.k < 2 or args.epochs < args.k:
        p.error("need --k ≥ 2 and --epochs ≥ --k")

    x, y, source = load_pictures(args.data, args.size, args.seed)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed))
    n_test = min(args.n, len(x) // 2)
    test, train = perm[:n_test], perm[n_test:]
    num_classes = int(y.max()) + 1
    y_train = y[train].clone()
    if args.shuffle:  # as the paper's memorization experiment: a seeded share of wrong labels
        g = torch.Generator().manual_seed(args.seed + 1)
        flip = torch.randperm(len(train), generator=g)[: round(args.shuffle * len(train))]
        y_train[flip] = (y_train[flip] + torch.randint(1, num_classes, (len(flip),), generator=g)) % num_classes
    keep = set(np.linspace(1, args.epochs, args.k).round().astype(int).tolist())
    states = []

    def log(epoch, loss, acc):
        if epoch in keep:
            states.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    torch.manual_seed(args.seed)
    model = SmallCNN(num_classes=num_classes, in_channels=3)
    t0 = time.perf_counter()
    train_classifier(model, x[train], y_train, epochs=args.epochs, lr=0.05, batch_size=32, seed=args.seed, log=log)
    train_s = time.perf_counter() - t0
    models = []
    for s in states:
        m = SmallCNN(num_classes=num_classes, in_channels=3)
        m.load_state_dict(s)
        models.append(m)
    accuracy = float((models[-1].eval()(x[test]).argmax(1) == y[test]).float().mean())
    # the images scored: held out, or training images with the (possibly shuffled) labels trained on
    xt, yt = (x[test], y[test]) if args.on == "test" else (x[train][:n_test], y_train[:n_test])
    windows = {"all": list(range(len(models)))}

    def scores(opts, **kw):
        eng = VoGEngine(models, windows, opts, device=device, **kw)
        out = np.concatenate(
            [eng.score_batch(xt[i : i + 256], yt[i : i + 256]).raw["all"].numpy() for i in range(0, len(xt), 256)]
        )
        return out, eng.settings

    rows = []
    for target in ("probability", "logit"):
        opts = VoGOptions(target=target)
        exact, _ = scores(opts)
        for ac in [a.strip() for a in args.autocast.split(",") if a.strip()]:
            for keep_fp32 in (True, False):
                low, settings = scores(opts, autocast=ac, fp32_input_layer=keep_fp32)
                rows.append(
                    {
                        "target": target,
                        "autocast": ac,
                        "fp32_input_layer": settings.get("fp32_input_layer"),
                        "spearman": spearman(low, exact),
                        "median_rel_diff": float(np.median(np.abs(low - exact) / exact)),
                    }
                )

    shuffled = f", {args.shuffle:.0%} of training labels shuffled" if args.shuffle else ""
    print(
        f"{source} {args.size}×{args.size}, SmallCNN{shuffled}, K={len(models)} of {args.epochs} epochs, "
        f"{n_test} {'held-out' if args.on == 'test' else 'training'} images scored "
        f"(test accuracy {accuracy:.3f}), device {device}"
    )
    print(f"{'target':12} {'autocast':8} {'fp32 input layer':17} {'spearman':>9} {'median rel':>11}")
    for r in rows:
        print(
            f"{r['target']:12} {r['autocast']:8} {str(r['fp32_input_layer']):17} "
            f"{r['spearman']:9.5f} {r['median_rel_diff']:11.2e}"
        )
    result = {
        "data": source,
        "size": args.size,
        "epochs": args.epochs,
        "shuffle": args.shuffle,
        "on": args.on,
        "k": len(models),
        "n": n_test,
        "test_accuracy": accuracy,
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else f"{platform.machine()}, {os.cpu_count()} cores"
        ),
        "torch": torch.__version__,
        "train_seconds": train_s,
        "rows": rows,
    }
    out = args.out or os.path.join(RESULTS_DIR, f"precision-{source}-{device.type}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
