"""Fig. 8 of the paper: do memorized (shuffled-label) training samples have higher VoG?

scikit-learn's digits at their native 8×8, all 10 classes, 75% training split; 20% of the training
labels are replaced by a different class. A SmallCNN (width 32) is trained on those labels with
SGD, one checkpoint per epoch, for each training length in ``--epochs`` (default 20 and 100 epochs:
the short run fits the clean labels but not yet the shuffled ones, the long run memorizes them).
VoG is computed on the training samples with the labels the network was trained on, for the logit
and the probability target and for several checkpoint windows, and compared between shuffled and
clean samples with Welch's t-test and as a detector of shuffled samples (AUROC, precision at
k = number of shuffled samples). The paper reports higher mean and spread of VoG for shuffled
samples, p < 0.001.

    python examples/digits_memorization.py            # out/examples/digits_memorization.png
    python examples/digits_memorization.py --quick    # a reduced run for the tests
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

TARGETS = ("logit", "probability")
COMPANIONS = ("loss", "margin")  # the label-error companions (maxprob / energy are for OOD: digits_ood.py)


def windows_for(k: int) -> dict[str, list[int]]:
    """early/middle/late thirds, the first and last 3 checkpoints (paper Fig. 4's setting) and all."""
    w = C.thirds(k)
    w["first3"], w["last3"] = list(range(3)), list(range(k - 3, k))
    order = ("first3", "early", "middle", "late", "last3", "all")
    return {name: w[name] for name in order}


def run(
    epochs: int, x: torch.Tensor, labels: np.ndarray, flag: np.ndarray, seed: int, width: int, verbose: bool
) -> dict:
    factory = lambda: SmallCNN(num_classes=10, in_channels=1, width=width)  # noqa: E731
    print(f"training {epochs} epochs on {len(x)} samples, {flag.sum()} with shuffled labels", flush=True)
    model, saver = C.train_with_snapshots(
        factory,
        x,
        torch.from_numpy(labels),
        epochs,
        seed=seed,
        lr=0.05,
        batch_size=32,
        log_every=max(1, epochs // 5) if verbose else 0,
    )
    models = saver.models(factory)
    fit = np.array([(C.predict(m, x)[0] == labels) for m in models])  # (K, N): fits its training label
    out = {"epochs": epochs, "fit_shuffled": fit[:, flag].mean(1), "fit_clean": fit[:, ~flag].mean(1), "rows": {}}
    wins = windows_for(len(models))
    for target in TARGETS:
        v = C.vog_on_tensors(models, x, labels, wins, target=target, label_mode="true", companions=target == TARGETS[0])
        for w in wins:
            s = v["score"][w]
            out["rows"][target, w] = {
                "ttest": A.welch_ttest(s, flag),
                "detect": A.detection_metrics(s, flag, ks=()),
                "auroc_raw": A.detection_metrics(v["raw"][w], flag, ks=()).auroc,
                "score": s,
            }
        for c in COMPANIONS if target == TARGETS[0] else ():
            # the training-dynamics companions of the same pass, over all checkpoints, signed so that high flags
            s = A.score_direction(c) * v["companions"][f"all:{c}"]
            d = A.detection_metrics(s, flag, ks=())
            out["rows"]["companion", c] = {
                "ttest": A.welch_ttest(s, flag),
                "detect": d,
                "auroc_raw": d.auroc,
                "score": s,
            }
    return out


def plot(runs: list[dict], flag: np.ndarray, path: str) -> None:
    plt = C.pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13.8, 3.8), constrained_layout=True)
    ax = axes[0]
    for r in runs:
        ep = np.arange(1, r["epochs"] + 1)
        ax.plot(ep, r["fit_shuffled"], label=f"{r['epochs']}-epoch run: shuffled")
        ax.plot(ep, r["fit_clean"], "--", label=f"{r['epochs']}-epoch run: clean")
    ax.text(
        0.98,
        0.5,
        "same seed: a shorter run is\nthe start of the longer one",
        transform=ax.transAxes,
        ha="right",
        fontsize=7,
    )
    ax.set_xlabel("epoch"), ax.set_ylabel("fits its training label"), ax.set_title("memorization", fontsize=10)
    ax.legend(fontsize=7)
    panels = [(runs[-1], target) for target in TARGETS]  # the longest (memorizing) run, both targets
    for ax, (r, target) in zip(axes[1:], panels):
        s = r["rows"][target, "all"]["score"]
        bins = np.linspace(np.percentile(s, 0.5), np.percentile(s, 99.5), 40)
        ax.hist(s[~flag], bins=bins, alpha=0.6, density=True, label=f"clean (n={int((~flag).sum())})")
        ax.hist(s[flag], bins=bins, alpha=0.6, density=True, label=f"shuffled (n={int(flag.sum())})")
        d = r["rows"][target, "all"]
        ax.set_title(
            f"{r['epochs']} epochs, {target}, all checkpoints: AUROC {d['detect'].auroc:.2f}, "
            f"p={d['ttest'].p_value:.1e}",
            fontsize=9,
        )
        ax.set_xlabel("VoG (class z-score)"), ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", default="20,100", help="comma-separated training lengths (default 20,100)")
    ap.add_argument("--fraction", type=float, default=0.2, help="share of training labels shuffled (default 0.2)")
    ap.add_argument("--width", type=int, default=32, help="SmallCNN width (default 32)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--out", default="out/examples", help="folder for the plot")
    ap.add_argument("--quick", action="store_true", help="300 training images, 6 and 12 epochs (for the tests)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    epochs = [6, 12] if args.quick else [int(e) for e in args.epochs.split(",")]

    images, digits = C.digits_images(8)
    train_idx, _ = C.split_indices(digits, 0.25, args.seed)
    if args.quick:
        train_idx = np.sort(np.random.default_rng(args.seed).choice(train_idx, 300, replace=False))
    labels, flag = C.shuffle_labels_array(digits[train_idx], args.fraction, 10, seed=51 + args.seed)
    x = C.to_tensor(images[train_idx])

    runs = []
    with C.Timer("memorization"):
        for e in epochs:
            runs.append(run(e, x, labels, flag, args.seed, args.width, verbose=not args.quick))

    rows = []
    for r in runs:
        for (target, w), d in r["rows"].items():
            t, det = d["ttest"], d["detect"]
            rows.append(
                [
                    r["epochs"],
                    target,
                    w,
                    t.mean_other,
                    t.std_other,
                    t.mean_flagged,
                    t.std_flagged,
                    t.t,
                    t.p_value,
                    det.auroc,
                    d["auroc_raw"],
                    det.r_precision,
                ]
            )
    table = C.print_table(
        [
            "epochs",
            "target",
            "window",
            "clean_mu",
            "clean_sd",
            "shuf_mu",
            "shuf_sd",
            "welch_t",
            "p",
            "auroc",
            "auroc_raw",
            "prec@k",
        ],
        rows,
        title=f"Shuffled ({int(flag.sum())}) vs clean ({int((~flag).sum())}) training samples: class z-scored VoG "
        "(auroc_raw: raw VoG; prec@k: precision among the k highest, k = #shuffled, chance "
        f"{flag.mean():.2f})",
    )
    for r in runs:
        marks = sorted({max(1, r["epochs"] // 4), r["epochs"] // 2, r["epochs"]})
        print(
            f"{r['epochs']}-epoch run: shuffled samples fitting their (wrong) label at epochs "
            + ", ".join(f"{m}: {r['fit_shuffled'][m - 1]:.2f}" for m in marks)
            + f"; clean at the end: {r['fit_clean'][-1]:.2f}"
        )
    path = os.path.join(C.ensure_dir(args.out), "digits_memorization.png")
    plot(runs, flag, path)
    print(f"plot: {path}")
    summary = {
        (r["epochs"], t, w): {"auroc": d["detect"].auroc, "p": d["ttest"].p_value, "t": d["ttest"].t}
        for r in runs
        for (t, w), d in r["rows"].items()
    }
    return {
        "summary": summary,
        "table": table,
        "plot": path,
        "fit_shuffled": {r["epochs"]: float(r["fit_shuffled"][-1]) for r in runs},
        "n_shuffled": int(flag.sum()),
    }


if __name__ == "__main__":
    main()
