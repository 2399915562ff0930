"""Fig. 6 (right) of the paper: out-of-distribution samples over-index in the highest VoG percentiles.

scikit-learn's digits at 8×8: a SmallCNN (width 32) is trained on digits 0–7 (75% split), one
checkpoint per epoch. VoG is then computed for the held-out 25% of digits 0–7 together with every
8 and 9 (the out-of-distribution samples, which the network never saw). The OOD samples have no
label, so VoG is taken on the model's prediction — ``label_mode="predicted"`` for all samples (the
fair, fully unsupervised setting) and ``"auto"`` (true label for in-distribution samples) — and for
several checkpoint windows. Reported: OOD share per VoG decile, the top decile's over-index
(share / overall share), AUROC of VoG as an OOD detector, and for comparison the standard
baseline of one minus the maximum softmax probability (MSP) of the trained model.

    python examples/digits_ood.py            # 3 seeds; out/examples/digits_ood.png
    python examples/digits_ood.py --quick    # a reduced run for the tests
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

OOD_DIGITS = (8, 9)
MODES = ("predicted", "auto")
TARGETS = ("logit", "probability")


def run_seed(seed: int, epochs: int, width: int, subsample: int | None, verbose: bool) -> dict:
    images, digits = C.digits_images(8)
    rng = np.random.default_rng(seed)
    idx = np.arange(len(digits)) if subsample is None else np.sort(rng.choice(len(digits), subsample, replace=False))
    ood = idx[np.isin(digits[idx], OOD_DIGITS)]
    ind = idx[~np.isin(digits[idx], OOD_DIGITS)]
    tr, te = C.split_indices(digits[ind], 0.25, seed)
    train_idx, test_idx = ind[tr], ind[te]
    factory = lambda: SmallCNN(num_classes=8, in_channels=1, width=width)  # noqa: E731
    model, saver = C.train_with_snapshots(
        factory,
        C.to_tensor(images[train_idx]),
        torch.from_numpy(digits[train_idx]),
        epochs,
        seed=seed,
        lr=0.05,
        batch_size=32,
        log_every=max(1, epochs // 3) if verbose else 0,
    )
    models = saver.models(factory)
    eval_idx = np.concatenate([test_idx, ood])
    is_ood = np.isin(digits[eval_idx], OOD_DIGITS)
    x = C.to_tensor(images[eval_idx])
    labels = np.where(is_ood, -1, digits[eval_idx])
    pred, probs = C.predict(model, x)
    k = len(models)
    wins = {"early": list(range(k // 3)), "late": list(range(k - k // 3, k)), "all": list(range(k))}
    out = {
        "test_acc": float((pred[~is_ood] == labels[~is_ood]).mean()),
        "is_ood": is_ood,
        "rows": {},
        "msp": A.detection_metrics(1 - probs.max(1), is_ood, ks=()),
    }
    for target in TARGETS:
        for mode in MODES:
            v = C.vog_on_tensors(
                models,
                x,
                labels,
                wins,
                label_mode=mode,
                target=target,
                companions=(target, mode) == (TARGETS[0], "auto"),
            )
            for c in ("maxprob", "energy", "loss", "margin") if v["companions"] else ():
                # companions of the same pass (all checkpoints; maxprob / energy at the last), signed: high flags
                s = A.score_direction(c) * v["companions"][f"all:{c}"]
                out["rows"]["companion", mode, c] = {
                    "detect": A.detection_metrics(s, is_ood, ks=()),
                    "share": A.share_by_percentile(s, is_ood, bins=10),
                    "auroc_raw": float("nan"),
                }
            for w in wins:
                out["rows"][target, mode, w] = {
                    "detect": A.detection_metrics(v["score"][w], is_ood, ks=()),
                    "share": A.share_by_percentile(v["score"][w], is_ood, bins=10),
                    "auroc_raw": A.detection_metrics(v["raw"][w], is_ood, ks=()).auroc,
                }
    return out


def plot(runs: list[dict], path: str) -> None:
    plt = C.pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8), constrained_layout=True)
    share = np.array([r["rows"]["logit", "predicted", "all"]["share"].share for r in runs])
    overall = np.mean([r["rows"]["logit", "predicted", "all"]["share"].overall_share for r in runs])
    labels = runs[0]["rows"]["logit", "predicted", "all"]["share"].labels
    ax.bar(range(10), share.mean(0), yerr=share.std(0) if len(runs) > 1 else None, color="tab:orange", capsize=3)
    ax.axhline(overall, color="k", ls="--", lw=1, label=f"overall OOD share {overall:.2f}")
    ax.set_xticks(range(10), labels, rotation=30, fontsize=8)
    ax.set_xlabel("VoG percentile bin (logit, label_mode='predicted', all checkpoints)")
    ax.set_ylabel("share of held-out digits 8/9")
    ax.set_title(
        f"Digits OOD: share of out-of-distribution samples per VoG decile (mean over {len(runs)} seeds)", fontsize=9
    )
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="independent splits + trainings (default 3)")
    ap.add_argument("--epochs", type=int, default=30, help="training epochs, one checkpoint each (default 30)")
    ap.add_argument("--width", type=int, default=32, help="SmallCNN width (default 32)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--out", default="out/examples", help="folder for the plot")
    ap.add_argument("--quick", action="store_true", help="1 seed, 500 images, 6 epochs (for the tests)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds, epochs, subsample = (1, 6, 500) if args.quick else (args.seeds, args.epochs, None)

    with C.Timer("OOD"):
        runs = [run_seed(s, epochs, args.width, subsample, verbose=s == 0 and not args.quick) for s in range(seeds)]
    n_ood, n = int(runs[0]["is_ood"].sum()), len(runs[0]["is_ood"])
    rows, summary = [], {}
    for key in runs[0]["rows"]:
        au = np.array([r["rows"][key]["detect"].auroc for r in runs])
        au_raw = np.array([r["rows"][key]["auroc_raw"] for r in runs])
        top = np.array([r["rows"][key]["share"].over_index[-1] for r in runs])
        bottom = np.array([r["rows"][key]["share"].over_index[0] for r in runs])
        prec = np.array([r["rows"][key]["detect"].r_precision for r in runs])
        summary[key] = {"auroc": float(au.mean()), "top_over_index": float(top.mean())}
        rows.append([*key, au.mean(), au.std(), au_raw.mean(), top.mean(), bottom.mean(), prec.mean()])
    msp = np.array([r["msp"].auroc for r in runs])
    msp_prec = np.array([r["msp"].r_precision for r in runs])
    rows.append(
        [
            "",
            "(baseline)",
            "1 - max softmax",
            msp.mean(),
            msp.std(),
            float("nan"),
            float("nan"),
            float("nan"),
            msp_prec.mean(),
        ]
    )
    summary["msp"] = {"auroc": float(msp.mean())}
    acc = np.mean([r["test_acc"] for r in runs])
    table = C.print_table(
        ["target", "label_mode", "window", "auroc", "sd", "auroc_raw", "top10%_over", "bottom10%_over", "prec@k"],
        rows,
        title=f"VoG as an OOD detector: {n_ood} held-out 8/9 among {n} samples (share {n_ood / n:.2f}), "
        f"{len(runs)} seed(s); in-distribution test accuracy {acc:.3f}",
    )
    shares = np.array([r["rows"]["logit", "predicted", "all"]["share"].share for r in runs]).mean(0)
    labels = runs[0]["rows"]["logit", "predicted", "all"]["share"].labels
    C.print_table(
        labels,
        [shares],
        title="OOD share per VoG decile (logit, label_mode='predicted', all checkpoints), lowest VoG first",
    )
    path = os.path.join(C.ensure_dir(args.out), "digits_ood.png")
    plot(runs, path)
    print(f"plot: {path}")
    return {"summary": summary, "table": table, "plot": path, "shares": shares.tolist(), "test_accuracy": float(acc)}


if __name__ == "__main__":
    main()
