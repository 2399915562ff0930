"""Can the network memorize? Training accuracy on shuffled labels, per training recipe.

The memorization audit (paper Fig. 8) needs a network that fits the wrong labels: before it has,
shuffled samples score *lower* VoG than clean ones (docs/results.md). This trains each recipe on
scikit-learn's digits upscaled to ``--size`` (default 28×28, MNIST's size; bilinear), 75% training
split, 20% of the training labels replaced by a different class, and prints the share of shuffled
samples whose (wrong) training label the network predicts, in eval mode, every 10 epochs and at
the end.

Recipes (``--recipe``, several allowed):
  demo         SmallCNN width 16, SGD lr 0.05 momentum 0.9, batch 32, 80 epochs (make demo's recipe, on 8×8)
  smallcnn-adamw  SmallCNN width 16, AdamW lr 0.001, batch 32, 80 epochs
  resnet-sgd   CifarResNet18 width 16, SGD lr 0.05 momentum 0.9, batch 64, 30 epochs
  memorizing   fiftyone_vog.options.MEMORIZING_RECIPE: CifarResNet18 width 16, AdamW lr 0.001, batch 64, 30 epochs

    python examples/memorization_fit.py                       # every recipe at 28×28, ~10 min on one core
    python examples/memorization_fit.py --recipe memorizing --size 16
    python examples/memorization_fit.py --quick               # a reduced run for the tests
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fiftyone_vog.inputs.checkpoints import import_callable  # noqa: E402
from fiftyone_vog.inputs.training import train_classifier  # noqa: E402
from fiftyone_vog.options import MEMORIZING_RECIPE  # noqa: E402

import _common as C  # noqa: E402

SMALLCNN = "fiftyone_vog.models:SmallCNN"
RECIPES = {
    "demo": dict(model=SMALLCNN, width=16, optimizer="sgd", lr=0.05, batch_size=32, epochs=80),
    "smallcnn-adamw": dict(model=SMALLCNN, width=16, optimizer="adamw", lr=1e-3, batch_size=32, epochs=80),
    "resnet-sgd": dict(MEMORIZING_RECIPE, optimizer="sgd", lr=0.05),
    "memorizing": dict(MEMORIZING_RECIPE),
}


def fit_curve(recipe: dict, x: torch.Tensor, labels: np.ndarray, flag: np.ndarray, seed: int, epochs: int) -> dict:
    """Train one recipe; ``{epoch: (fit shuffled, fit clean)}`` every 10 epochs and at the end, and seconds."""
    torch.manual_seed(seed)
    model = import_callable(recipe["model"])(num_classes=10, in_channels=1, width=recipe["width"])
    curve, t0 = {}, time.perf_counter()

    def log(epoch, loss, acc):
        if epoch % 10 == 0 or epoch == epochs:
            model.eval()
            with torch.no_grad():
                fit = model(x).argmax(1).numpy() == labels
            model.train()
            curve[epoch] = (float(fit[flag].mean()), float(fit[~flag].mean()))
            print(f"  epoch {epoch:3d}  fits shuffled {curve[epoch][0]:.3f}  clean {curve[epoch][1]:.3f}", flush=True)

    train_classifier(
        model,
        x,
        torch.from_numpy(labels),
        epochs,
        optimizer=recipe["optimizer"],
        lr=recipe["lr"],
        batch_size=recipe["batch_size"],
        seed=seed,
        log=log,
    )
    return {"curve": curve, "seconds": time.perf_counter() - t0}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", nargs="+", choices=tuple(RECIPES), default=list(RECIPES))
    ap.add_argument("--size", type=int, default=28, help="image side in pixels (default 28)")
    ap.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs")
    ap.add_argument("--fraction", type=float, default=0.2, help="share of training labels shuffled (default 0.2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="100 images at 8×8, 2 epochs (for the tests)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    size = 8 if args.quick else args.size
    images, digits = C.digits_images(size)
    train_idx, _ = C.split_indices(digits, 0.25, args.seed)
    if args.quick:
        train_idx = np.sort(np.random.default_rng(args.seed).choice(train_idx, 100, replace=False))
    labels, flag = C.shuffle_labels_array(digits[train_idx], args.fraction, 10, seed=51 + args.seed)
    x = C.to_tensor(images[train_idx])
    print(f"digits at {size}×{size}: {len(x)} training images, {int(flag.sum())} with a shuffled label", flush=True)
    rows, out = [], {}
    for name in args.recipe:
        recipe = RECIPES[name]
        epochs = 2 if args.quick else args.epochs or recipe["epochs"]
        print(f"{name}: {recipe}", flush=True)
        out[name] = r = fit_curve(recipe, x, labels, flag, args.seed, epochs)
        by_20 = [e for e in r["curve"] if e <= 20]
        rows.append(
            [
                name,
                recipe["model"].rsplit(":", 1)[-1],
                recipe["optimizer"],
                recipe["lr"],
                recipe["batch_size"],
                epochs,
                r["curve"][by_20[-1]][0] if by_20 else float("nan"),
                r["curve"][epochs][0],
                r["curve"][epochs][1],
                r["seconds"],
            ]
        )
    table = C.print_table(
        ["recipe", "model", "optimizer", "lr", "batch", "epochs", "shuf@20", "fits_shuffled", "fits_clean", "s"],
        rows,
        title=f"Digits {size}×{size}, {int(flag.sum())} of {len(x)} training labels shuffled (seed {args.seed}): "
        "share of samples the trained network predicts as their training label",
    )
    return {"table": table, "runs": out, "n_shuffled": int(flag.sum())}


if __name__ == "__main__":
    main()
