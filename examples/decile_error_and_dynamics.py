"""Figs. 4, 7 and 6 (left) of the paper: test error by VoG decile, early vs late, across seeds.

scikit-learn's digits at 8×8, all 10 classes, one fixed stratified split with only 15% of the
images for training (``--train-fraction``): the model then makes enough test errors (~10%) for a
per-decile error rate to mean something, and each of the ~1,500 test samples' deciles holds ~150. Five SmallCNNs are trained from different seeds (initialisation
and batch order), one checkpoint per epoch. For each, VoG of the test samples (true labels) is
computed from the first 3 checkpoints (``early``), the last 3 (``late``) — the paper's Fig. 4
setting — and from all of them, and the trained model's test error is tabulated per VoG decile.

- Fig. 4: the late-window top decile should have the highest error, the bottom decile less than
  the overall error.
- Fig. 7: the early window should rank the other way round (high early VoG, lower error).
- Fig. 6 (left): the per-decile error curve, and the ranking itself (Spearman between seeds'
  VoG of the same test samples, overlap of their top-10% sets), should be stable across seeds.

    python examples/decile_error_and_dynamics.py            # out/examples/decile_error_and_dynamics.png
    python examples/decile_error_and_dynamics.py --quick    # a reduced run for the tests
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fiftyone_vog import analysis as A  # noqa: E402
from fiftyone_vog.models import SmallCNN  # noqa: E402

import _common as C  # noqa: E402

WINDOWS = ("early", "late", "all")


def run_seed(seed: int, data: dict, epochs: int, width: int, verbose: bool, target: str = "logit") -> dict:
    factory = lambda: SmallCNN(num_classes=10, in_channels=1, width=width)  # noqa: E731
    model, saver = C.train_with_snapshots(
        factory,
        data["x_train"],
        data["y_train"],
        epochs,
        seed=seed,
        lr=0.05,
        batch_size=32,
        log_every=max(1, epochs // 3) if verbose else 0,
    )
    models = saver.models(factory)
    k = len(models)
    wins = {"early": [0, 1, 2], "late": [k - 3, k - 2, k - 1], "all": list(range(k))}
    v = C.vog_on_tensors(models, data["x_test"], data["y_test"], wins, label_mode="true", target=target)
    pred, _ = C.predict(model, data["x_test"])
    correct = pred == data["y_test"]
    return {
        "seed": seed,
        "score": v["score"],
        "correct": correct,
        "bins": {w: A.error_by_bin(v["score"][w], correct, bins=10) for w in WINDOWS},
    }


def plot(runs: list[dict], path: str, target: str = "logit") -> None:
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True, sharey=True)
    labels = runs[0]["bins"]["late"].labels
    for ax, w in zip(axes, ("early", "late")):
        curves = np.array([r["bins"][w].error_rate for r in runs])
        for c in curves:
            ax.plot(range(10), c, color="0.7", lw=0.8)
        ax.plot(range(10), curves.mean(0), "o-", color="tab:blue", label=f"mean of {len(runs)} seeds")
        ax.axhline(
            np.mean([r["bins"][w].overall_error for r in runs]), color="k", ls="--", lw=1, label="overall test error"
        )
        ax.set_xticks(range(10), labels, rotation=30, fontsize=8)
        ax.set_title(f"{w} window ({'first' if w == 'early' else 'last'} 3 checkpoints)", fontsize=10)
        ax.set_xlabel("VoG decile (test samples)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("test error")
    fig.suptitle(f"Digits: test error by {target} VoG decile, one grey line per seed", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="independently trained models (default 5)")
    ap.add_argument("--epochs", type=int, default=30, help="training epochs, one checkpoint each (default 30)")
    ap.add_argument("--width", type=int, default=16, help="SmallCNN width (default 16)")
    ap.add_argument(
        "--target",
        choices=["logit", "probability"],
        default="logit",
        help="score whose input gradient is taken (default logit, the paper's)",
    )
    ap.add_argument(
        "--train-fraction",
        type=float,
        default=0.15,
        help="share of the images used for training (default 0.15); the rest is the test set",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--out", default="out/examples", help="folder for the plot")
    ap.add_argument("--quick", action="store_true", help="2 seeds, 600 images, 6 epochs (for the tests)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds, epochs = (2, 6) if args.quick else (args.seeds, args.epochs)
    if epochs < 6:
        ap.error("--epochs must be at least 6 (early and late windows of 3 checkpoints)")

    images, digits = C.digits_images(8)
    idx = np.arange(len(digits))
    if args.quick:
        idx = np.sort(np.random.default_rng(0).choice(idx, 600, replace=False))
    tr, te = C.split_indices(
        digits[idx], 1 - args.train_fraction, seed=0
    )  # one split for every seed: rankings are comparable
    data = {
        "x_train": C.to_tensor(images[idx[tr]]),
        "y_train": torch.from_numpy(digits[idx[tr]]),
        "x_test": C.to_tensor(images[idx[te]]),
        "y_test": digits[idx[te]],
    }

    with C.Timer("deciles"):
        runs = [
            run_seed(s, data, epochs, args.width, verbose=s == 0 and not args.quick, target=args.target)
            for s in range(seeds)
        ]

    labels = runs[0]["bins"]["late"].labels
    rows, curves = [], {}
    for w in WINDOWS:
        c = np.array([r["bins"][w].error_rate for r in runs])
        curves[w] = c
        overall = np.mean([r["bins"][w].overall_error for r in runs])
        rows.append([w, overall, *c.mean(0)])
        rows.append(["  sd", "", *c.std(0)])
    table = C.print_table(
        ["window", "overall", *labels],
        rows,
        title=f"Test error by {args.target} VoG decile (lowest VoG first), mean and sd over {seeds} seeds; "
        f"{len(data['y_test'])} test samples, ~{len(data['y_test']) // 10} per decile",
    )
    stab_rows, stability = [], {}
    for w in WINDOWS:
        rs = A.rank_stability(*[r["score"][w] for r in runs], names=[f"seed{r['seed']}" for r in runs])
        # per-decile error curves: Spearman between each pair of seeds' curves
        cc = [C.spearman(curves[w][i], curves[w][j]) for i in range(seeds) for j in range(i + 1, seeds)]
        stability[w] = {
            "spearman": rs.mean_spearman,
            "top10_overlap": rs.mean_top_k_overlap,
            "curve_spearman": float(np.nanmean(cc)),
        }
        stab_rows.append(
            [w, rs.mean_spearman, min(p["spearman"] for p in rs.pairs), rs.mean_top_k_overlap, float(np.nanmean(cc))]
        )
    C.print_table(
        ["window", "spearman_mean", "spearman_min", "top10%_overlap", "curve_spearman"],
        stab_rows,
        title=f"Stability across {seeds} seeds: rank correlation of the test samples' VoG between seeds, "
        "overlap of their top-10% sets (chance 0.10), and rank correlation of the decile error curves",
    )
    flips = {w: float(curves[w].mean(0)[-1] - curves[w].mean(0)[0]) for w in WINDOWS}
    print("top-decile minus bottom-decile error: " + ", ".join(f"{w} {d:+.3f}" for w, d in flips.items()))
    path = os.path.join(
        C.ensure_dir(args.out),
        "decile_error_and_dynamics.png" if args.target == "logit" else f"decile_error_and_dynamics_{args.target}.png",
    )
    plot(runs, path, args.target)
    print(f"plot: {path}")
    return {
        "table": table,
        "plot": path,
        "curves": {w: c.mean(0).tolist() for w, c in curves.items()},
        "stability": stability,
        "top_minus_bottom": flips,
        "seeds": seeds,
    }


if __name__ == "__main__":
    main()
