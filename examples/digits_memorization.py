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

With ``--recipe resnet`` the network and training follow the paper's CIFAR recipe instead, at a
CPU size: a ¼-width ResNet-18 with BatchNorm (CIFAR stem, base width 16), digits upscaled to 32×32
(bilinear), SGD lr 0.1, momentum 0.9, weight decay 5e-4, lr × 0.1 at 50% and 75% of the epochs,
random crops (zero padding 4), batch 128, 100 epochs; windows: thirds, late half and all.

    python examples/digits_memorization.py            # out/examples/digits_memorization.png
    python examples/digits_memorization.py --quick    # a reduced run for the tests
    python examples/digits_memorization.py --recipe resnet --seed 0   # ~15–30 min on one core
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fiftyone_vog import analysis as A  # noqa: E402
from fiftyone_vog.inputs.training import train_classifier  # noqa: E402
from fiftyone_vog.models import CifarResNet18, SmallCNN  # noqa: E402

import _common as C  # noqa: E402

TARGETS = ("logit", "probability")
COMPANIONS = ("loss", "margin")  # the label-error companions (maxprob / energy are for OOD: digits_ood.py)


def windows_for(k: int) -> dict[str, list[int]]:
    """early/middle/late thirds, the first and last 3 checkpoints (paper Fig. 4's setting) and all."""
    w = C.thirds(k)
    w["first3"], w["last3"] = list(range(3)), list(range(k - 3, k))
    order = ("first3", "early", "middle", "late", "last3", "all")
    return {name: w[name] for name in order}


def resnet_windows(k: int) -> dict[str, list[int]]:
    """The paper-recipe windows: early/middle/late thirds, the late half and all checkpoints."""
    w = C.thirds(k)
    w["late_half"] = list(range(k // 2, k))
    order = ("early", "middle", "late", "late_half", "all")
    return {name: w[name] for name in order if w[name]}  # a smoke run of < 3 epochs has empty thirds


def step_lr(epoch: int, epochs: int, base: float = 0.1) -> float:
    """The paper's step schedule, scaled to ``epochs``: ×0.1 after 50% and again after 75% of them."""
    return base * (0.1 ** ((epoch > epochs // 2) + (epoch > (3 * epochs) // 4)))


def random_crop(xb: torch.Tensor, pad: int, g: torch.Generator) -> torch.Tensor:
    """Each image shifted by a random crop of its zero-padded copy (digits have a black background)."""
    n, _, h, w = xb.shape
    padded = torch.nn.functional.pad(xb, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=g).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def train_resnet_recipe(
    factory, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int, batch_size: int = 128, log_every: int = 0
) -> C.SnapshotSaver:
    """SGD 0.1 / momentum 0.9 / weight decay 5e-4 with step_lr and random crops; a checkpoint per epoch."""
    torch.manual_seed(seed)
    model, saver, g = factory(), C.SnapshotSaver(), torch.Generator().manual_seed(seed)

    def log(epoch, loss, acc):
        if log_every and (epoch % log_every == 0 or epoch == epochs):
            print(
                f"  epoch {epoch:3d}/{epochs}  lr {step_lr(epoch, epochs):.3g}  loss {loss:.3f}  "
                f"train acc (augmented) {acc:.3f}",
                flush=True,
            )

    train_classifier(
        model,
        x,
        y,
        epochs,
        saver=saver,
        lr=step_lr(1, epochs),
        batch_size=batch_size,
        momentum=0.9,
        weight_decay=5e-4,
        lr_schedule=lambda epoch: step_lr(epoch, epochs),
        generator=g,  # the batch order and the crops draw from one generator
        augment=lambda xb: random_crop(xb, 4, g),
        log=log,
    )
    return saver


def run(
    epochs: int,
    x: torch.Tensor,
    labels: np.ndarray,
    flag: np.ndarray,
    seed: int,
    width: int,
    verbose: bool,
    recipe: str = "smallcnn",
) -> dict:
    print(f"training {epochs} epochs on {len(x)} samples, {flag.sum()} with shuffled labels", flush=True)
    log_every = max(1, epochs // 5) if verbose else 0
    if recipe == "resnet":
        factory = lambda: CifarResNet18(num_classes=10, in_channels=1, width=width)  # noqa: E731
        with C.Timer("training"):
            saver = train_resnet_recipe(factory, x, torch.from_numpy(labels), epochs, seed, log_every=log_every)
    else:
        factory = lambda: SmallCNN(num_classes=10, in_channels=1, width=width)  # noqa: E731
        model, saver = C.train_with_snapshots(
            factory, x, torch.from_numpy(labels), epochs, seed=seed, lr=0.05, batch_size=32, log_every=log_every
        )
    models = saver.models(factory)  # fresh modules loaded from the saved state_dicts, in eval mode
    fit = np.array([(C.predict(m, x)[0] == labels) for m in models])  # (K, N): fits its training label
    out = {"epochs": epochs, "fit_shuffled": fit[:, flag].mean(1), "fit_clean": fit[:, ~flag].mean(1), "rows": {}}
    wins = resnet_windows(len(models)) if recipe == "resnet" else windows_for(len(models))
    for target in TARGETS:
        with C.Timer(f"VoG, {target} target") if recipe == "resnet" else contextlib.nullcontext():
            v = C.vog_on_tensors(
                models, x, labels, wins, target=target, label_mode="true", companions=target == TARGETS[0]
            )
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


def summarize(folder: str) -> str:
    """Mean (sd) over the seeds of the paper-recipe runs whose JSON files lie in ``folder``."""
    import glob

    runs = [
        json.load(open(p)) for p in sorted(glob.glob(os.path.join(folder, "digits_memorization_resnet_seed*.json")))
    ]
    if not runs:
        raise SystemExit(f"no digits_memorization_resnet_seed*.json in {folder}; run --recipe resnet first")
    rows = []
    for i, row in enumerate(runs[0]["rows"]):
        vals = np.array([[r["rows"][i][m] for m in ("auroc", "auroc_raw", "prec_k")] for r in runs])
        rows.append(
            [row["epochs"], row["target"], row["window"], *vals.mean(0), *vals.std(0, ddof=1 if len(runs) > 1 else 0)]
        )
    fits = ", ".join(f"seed {r['seed']}: {r['fit_shuffled'][str(rows[0][0])]:.2f}" for r in runs)
    return C.print_table(
        ["epochs", "target", "window", "auroc", "auroc_raw", "prec@k", "sd_auroc", "sd_raw", "sd_prec@k"],
        rows,
        title=f"Paper recipe, mean and sd over seeds {[r['seed'] for r in runs]} (wall "
        + ", ".join(f"{r['seconds']:.0f}" for r in runs)
        + f" s); shuffled samples fitting their wrong label at the end: {fits}",
    )


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--recipe",
        choices=("smallcnn", "resnet"),
        default="smallcnn",
        help="smallcnn: SmallCNN on 8×8 digits (default); resnet: the paper's recipe, ¼-width ResNet-18 at 32×32",
    )
    ap.add_argument("--epochs", default=None, help="comma-separated training lengths (default 20,100; resnet: 100)")
    ap.add_argument("--fraction", type=float, default=0.2, help="share of training labels shuffled (default 0.2)")
    ap.add_argument("--width", type=int, default=None, help="SmallCNN width (default 32) / ResNet base width (16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--out", default="out/examples", help="folder for the plot")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="300 training images, 6 and 12 epochs (resnet: 100 images, 6 epochs, width 4) (for the tests)",
    )
    ap.add_argument("--summarize", metavar="DIR", help="print mean (sd) over the --recipe resnet seeds saved in DIR")
    args = ap.parse_args(argv)
    if args.summarize:
        return {"table": summarize(args.summarize)}
    torch.set_num_threads(args.threads)
    resnet = args.recipe == "resnet"
    if args.width is None:
        args.width = 4 if resnet and args.quick else 16 if resnet else 32
    if args.quick:
        epochs = [6] if resnet else [6, 12]
    else:
        epochs = [int(e) for e in (args.epochs or ("100" if resnet else "20,100")).split(",")]

    images, digits = C.digits_images(32 if resnet else 8)
    train_idx, _ = C.split_indices(digits, 0.25, args.seed)
    if args.quick:
        n_quick = 100 if resnet else 300
        train_idx = np.sort(np.random.default_rng(args.seed).choice(train_idx, n_quick, replace=False))
    labels, flag = C.shuffle_labels_array(digits[train_idx], args.fraction, 10, seed=51 + args.seed)
    x = C.to_tensor(images[train_idx])

    runs = []
    with C.Timer("memorization") as timer:
        for e in epochs:
            runs.append(run(e, x, labels, flag, args.seed, args.width, verbose=not args.quick, recipe=args.recipe))

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
    name = "digits_memorization_resnet" if resnet else "digits_memorization"
    path = os.path.join(C.ensure_dir(args.out), f"{name}.png")
    plot(runs, flag, path)
    print(f"plot: {path}")
    summary = {
        (r["epochs"], t, w): {"auroc": d["detect"].auroc, "p": d["ttest"].p_value, "t": d["ttest"].t}
        for r in runs
        for (t, w), d in r["rows"].items()
    }
    if resnet:  # one file per seed, for the mean (sd) over seeds in docs/results.md
        with open(os.path.join(args.out, f"{name}_seed{args.seed}.json"), "w") as f:
            json.dump(
                {
                    "seed": args.seed,
                    "width": args.width,
                    "n_shuffled": int(flag.sum()),
                    "n_train": len(flag),
                    "seconds": timer.seconds,
                    "rows": [
                        {"epochs": r[0], "target": r[1], "window": r[2]}
                        | {"auroc": float(r[9]), "auroc_raw": float(r[10]), "prec_k": float(r[11])}
                        for r in rows
                    ],
                    "fit_shuffled": {r["epochs"]: float(r["fit_shuffled"][-1]) for r in runs},
                    "fit_clean": {r["epochs"]: float(r["fit_clean"][-1]) for r in runs},
                },
                f,
                indent=1,
            )
    return {
        "summary": summary,
        "table": table,
        "plot": path,
        "fit_shuffled": {r["epochs"]: float(r["fit_shuffled"][-1]) for r in runs},
        "n_shuffled": int(flag.sum()),
    }


if __name__ == "__main__":
    main()
