"""Fig. 1 of the paper: on a 2-D toy problem, VoG is highest near the decision boundary.

Two isotropic Gaussian clusters, 500 points, 90/10 train/test split; an MLP with one hidden layer
of 10 units trained with SGD for 15 epochs, one checkpoint per epoch. VoG is computed with the
package's engine for the stages early = epochs [0, 5), middle = [5, 10), late = [10, 15) (each
stage is a window with its own mean), for the logit and the probability target, and compared
(Spearman) with each point's perpendicular distance to the *final* model's decision boundary.
A negative correlation means "closer to the boundary → higher VoG", the paper's claim.

    python examples/toy_gaussians.py            # 10 seeds, writes out/examples/toy_gaussians.png
    python examples/toy_gaussians.py --quick    # 2 seeds, for the tests

The points are 2-D vectors, not images: they go to the engine as (B, 1, 1, 2) "images" and the MLP
flattens them, so the pixel mean in VoG is a mean over the two coordinates.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fiftyone_vog.models import MLP  # noqa: E402

import _common as C  # noqa: E402

STAGES = {"early": list(range(0, 5)), "middle": list(range(5, 10)), "late": list(range(10, 15))}
TARGETS = ("logit", "probability")


def boundary_distance(model: torch.nn.Module, points: np.ndarray, resolution: int = 1000) -> tuple[np.ndarray, tuple]:
    """Euclidean distance from each point to the model's decision boundary (logit_1 = logit_0).

    The boundary is located on a ``resolution``² grid around the points as the linearly
    interpolated zero crossings of the logit difference between neighbouring grid nodes; the
    distance is to the nearest crossing (accurate to about one grid step / 10).
    Returns ``(distances, (xx, yy, margin))`` — the grid is kept for plotting.
    """
    from scipy.spatial import cKDTree

    lo, hi = points.min(0) - 1.0, points.max(0) + 1.0
    xs, ys = np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    xx, yy = np.meshgrid(xs, ys)
    grid = torch.from_numpy(np.stack([xx.ravel(), yy.ravel()], 1).astype(np.float32))[:, None, None, :]
    with torch.no_grad():
        out = model.eval()(grid)
    margin = (out[:, 1] - out[:, 0]).numpy().reshape(xx.shape).astype(np.float64)
    crossings = []
    for axis in (0, 1):  # vertical and horizontal neighbours
        a = margin.take(range(resolution - 1), axis=axis)
        b = margin.take(range(1, resolution), axis=axis)
        pa_x, pa_y = xx.take(range(resolution - 1), axis=axis), yy.take(range(resolution - 1), axis=axis)
        pb_x, pb_y = xx.take(range(1, resolution), axis=axis), yy.take(range(1, resolution), axis=axis)
        m = np.sign(a) != np.sign(b)
        t = a[m] / (a[m] - b[m])
        crossings.append(np.stack([pa_x[m] + t * (pb_x[m] - pa_x[m]), pa_y[m] + t * (pb_y[m] - pa_y[m])], 1))
    crossings = np.concatenate(crossings)
    if len(crossings) == 0:
        raise RuntimeError("the model has no decision boundary inside the plotted area")
    dist, _ = cKDTree(crossings).query(points)
    return dist, (xx, yy, margin)


def run_seed(seed: int, epochs: int = 15, resolution: int = 1000, verbose: bool = False) -> dict:
    x_np, y_np = C.gaussian_clusters(500, seed=seed)
    train_idx, test_idx = C.split_indices(y_np, 0.1, seed)
    x = torch.from_numpy(x_np)[:, None, None, :]  # (B, 1, 1, 2): the engine's B×C×H×W
    y = torch.from_numpy(y_np)
    model, saver = C.train_with_snapshots(
        lambda: MLP(in_features=2, hidden=10, num_classes=2),
        x[train_idx],
        y[train_idx],
        epochs=epochs,
        seed=seed,
        lr=0.1,
        momentum=0.0,
        batch_size=32,
        log_every=5 if verbose else 0,
    )
    models = saver.models(lambda: MLP(in_features=2, hidden=10, num_classes=2))
    dist, grid = boundary_distance(model, x_np, resolution)
    pred, _ = C.predict(model, x)
    result = {
        "seed": seed,
        "x": x_np,
        "y": y_np,
        "test_idx": test_idx,
        "dist": dist,
        "grid": grid,
        "test_acc": float((pred[test_idx] == y_np[test_idx]).mean()),
        "vog": {},
        "rho": {},
        "rho_test": {},
    }
    for target in TARGETS:
        v = C.vog_on_tensors(models, x, y_np, STAGES, target=target, label_mode="true")
        for stage in STAGES:
            s = v["score"][stage]
            result["vog"][target, stage] = s
            result["rho"][target, stage] = C.spearman(s, dist)
            result["rho_test"][target, stage] = C.spearman(s[test_idx], dist[test_idx])
    return result


def plot(result: dict, path: str) -> None:
    plt = C.pyplot()
    xx, yy, margin = result["grid"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), constrained_layout=True)
    for ax, stage in zip(axes, STAGES):
        s = result["vog"]["logit", stage]
        order = np.argsort(s)  # high VoG drawn on top
        sc = ax.scatter(
            *result["x"][order].T,
            c=s[order],
            cmap="viridis",
            s=14,
            marker="o",
            edgecolors=np.where(result["y"][order] == 1, "k", "none"),
            linewidths=0.4,
        )
        ax.contour(xx, yy, margin, levels=[0], colors="red", linewidths=1.5)
        ax.set_title(
            f"{stage} epochs {STAGES[stage][0]}–{STAGES[stage][-1] + 1}: "
            f"Spearman(VoG, distance) = {result['rho']['logit', stage]:.2f}",
            fontsize=9,
        )
        ax.set_xlim(result["x"][:, 0].min() - 0.3, result["x"][:, 0].max() + 0.3)
        ax.set_ylim(result["x"][:, 1].min() - 0.3, result["x"][:, 1].max() + 0.3)
        ax.set_aspect("equal")
        fig.colorbar(sc, ax=ax, shrink=0.8, label="VoG (class z-score)")
    fig.suptitle(
        f"Toy Gaussians (seed {result['seed']}): VoG per stage; red = final decision boundary, black rim = class 1",
        fontsize=10,
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, default=10, help="independent datasets + trainings (default 10)")
    ap.add_argument("--out", default="out/examples", help="folder for the plot (default out/examples)")
    ap.add_argument("--quick", action="store_true", help="2 seeds and a coarser grid (for the tests)")
    args = ap.parse_args(argv)
    seeds = 2 if args.quick else args.seeds
    resolution = 300 if args.quick else 1000

    results = []
    with C.Timer("toy Gaussians"):
        for seed in range(seeds):
            results.append(run_seed(seed, resolution=resolution, verbose=seed == 0))
    rows = []
    summary = {}
    for target in TARGETS:
        for stage in STAGES:
            rho = np.array([r["rho"][target, stage] for r in results])
            rho_t = np.array([r["rho_test"][target, stage] for r in results])
            summary[target, stage] = {
                "mean": float(rho.mean()),
                "std": float(rho.std()),
                "negative": int((rho < 0).sum()),
                "test_mean": float(rho_t.mean()),
            }
            rows.append([target, stage, rho.mean(), rho.std(), f"{int((rho < 0).sum())}/{len(rho)}", rho_t.mean()])
    acc = np.mean([r["test_acc"] for r in results])
    table = C.print_table(
        ["target", "stage", "spearman", "sd", "negative", "spearman_test"],
        rows,
        title=f"Spearman(VoG, distance to final boundary) over {seeds} seeds, all 500 points "
        f"(spearman_test: the 50 test points); final test accuracy {acc:.3f}",
    )
    path = os.path.join(C.ensure_dir(args.out), "toy_gaussians.png")
    plot(results[0], path)
    print(f"plot: {path}")
    return {"summary": summary, "table": table, "plot": path, "test_accuracy": float(acc), "seeds": seeds}


if __name__ == "__main__":
    main()
