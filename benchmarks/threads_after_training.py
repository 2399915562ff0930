#!/usr/bin/env python
"""Score right after training, in the same process, with the default thread count.

The situation of a notebook or a training script that calls ``fov.compute_vog`` when training
ends: the 1-minute load average then counts this process's own training, and a thread count
taken from it leaves cores idle. In one process, per round:

1. train a SmallCNN on generated 32×32 images for ``--train-seconds`` (torch's default threads);
2. ``fov.compute_vog`` with its defaults (no ``num_threads``) on ``--n`` generated PNGs and
   ``--k`` checkpoints of ``--model`` (a SmallCNN, or a torchvision architecture such as
   resnet18), in a throw-away database: the scoring phase (decode + score,
   ``timings["score"]``), the thread count it chose and why;
3. the autograd floor (bench_vog.py's ``floor``: K × forward + backward to the input, on tensors
   already in memory) with every core, right before and right after step 2 (their mean: the drift
   of a shared machine within the round cancels); and the same floor fed by the loader that
   ``compute_vog`` uses, over the same PNGs (the least an end-to-end job does: read, decode,
   K × forward + backward), also before and after;
4. with ``--old-rule``: train again, then ``compute_vog`` with the count the old rule (cores − the
   1-minute load average) gives at that moment.

Reported: scoring throughput ÷ the floor's (1.0 = as fast as the bare autograd loop with every
core; end to end includes decoding the PNGs), the same for the engine's compute alone, and the
scoring throughput ÷ the fed floor's (both decode the same images).
``OMP_NUM_THREADS`` must be unset.

    python benchmarks/threads_after_training.py --rounds 5 --old-rule --train-seconds 30
    python benchmarks/threads_after_training.py --rounds 3 --train-seconds 30 --model resnet18 --n 500
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from bench_vog import RESULTS_DIR, Batches, build_model, make_models, run_floor  # noqa: E402

from fiftyone_vog.core.threads import cpu_cores, torch_threads  # noqa: E402
from fiftyone_vog.inputs.training import train_classifier  # noqa: E402


def train_for(seconds: float, size: int, seed: int) -> float:
    """Train a SmallCNN on random images until ``seconds`` have passed; returns the seconds."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2048, 3, size, size, generator=g)
    y = torch.randint(0, 10, (2048,), generator=g)
    model = build_model("smallcnn", 10)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        train_classifier(model, x, y, epochs=1, batch_size=64, seed=seed)
    return time.perf_counter() - t0


def old_rule(cores: int) -> int:
    """The thread count of the old default: cores − the 1-minute load average, rounded down."""
    return max(1, min(torch.get_num_threads(), int(cores - os.getloadavg()[0])))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000, help="PNGs scored (default 2000)")
    p.add_argument("--k", type=int, default=5, help="checkpoints (default 5)")
    p.add_argument("--size", type=int, default=32, help="image side (default 32)")
    p.add_argument(
        "--model", default="smallcnn", help="the scored model: smallcnn (default) or a torchvision name, e.g. resnet18"
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--train-seconds", type=float, default=40.0, help="training before each scoring (default 40)")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--strategy", default="auto", help="compute_vog's strategy (default auto: the loop)")
    p.add_argument("--old-rule", action="store_true", help="also score with the old rule's count after training")
    p.add_argument("--out", default=RESULTS_DIR)
    args = p.parse_args(argv)
    if os.environ.get("OMP_NUM_THREADS"):
        raise SystemExit("unset OMP_NUM_THREADS: this benchmark measures the default thread count")
    tmp = tempfile.mkdtemp(prefix="vog-threads-bench-")
    os.environ.setdefault("FIFTYONE_DATABASE_DIR", os.path.join(tmp, "db"))
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    import fiftyone as fo
    from PIL import Image

    import fiftyone_vog as fov

    cores = cpu_cores()
    rng = np.random.default_rng(0)
    classes = [str(c) for c in range(10)]
    os.makedirs(os.path.join(tmp, "images"))
    samples = []
    for i in range(args.n):
        path = os.path.join(tmp, "images", f"{i:06d}.png")
        Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)).save(path)
        samples.append(fo.Sample(filepath=path, ground_truth=fo.Classification(label=classes[i % 10])))
    ds = fo.Dataset()
    ds.add_samples(samples, progress=False)
    ds.classes["ground_truth"] = classes
    ds.save()
    models = make_models(args.model, args.k, 10)
    ckpts = []
    for i, m in enumerate(models):
        ckpts.append(os.path.join(tmp, f"epoch_{i + 1}.pt"))
        torch.save(m.state_dict(), ckpts[-1])
    batches = Batches(args.n, args.batch_size, args.size, 10, torch.device("cpu"))
    from fiftyone_vog.inputs.images import ImageDataset, make_loader

    pngs = ImageDataset([s.id for s in ds], [s.filepath for s in ds], [i % 10 for i in range(args.n)], transform="rgb")
    work = args.n * args.k  # sample-checkpoints

    def score(key: str, num_threads=None) -> dict:
        res = fov.compute_vog(
            ds, ckpts, model=lambda: build_model(args.model, 10), device="cpu", vog_field=key,
            num_threads=num_threads, progress=False, overwrite=True, companions=False, strategy=args.strategy,
        )  # fmt: skip
        t = res.timings
        cfg = res.config
        return {
            "threads": cfg["num_threads"],
            "why": cfg.get("num_threads_why"),
            "strategy": cfg["engine"]["strategy"],
            "batchnorm_folded": cfg["engine"].get("batchnorm_folded"),
            "channels_last": cfg["engine"].get("channels_last"),
            **t,
        }

    def floor(fed: bool = False) -> float:
        """Seconds of the autograd floor with every core (torch's thread count restored after), on
        the tensors in memory or, ``fed``, on the batches of the loader over the PNGs."""
        with torch_threads(cores):
            t = time.perf_counter()
            run_floor(models, make_loader(pngs, batch_size=args.batch_size) if fed else batches)
            return time.perf_counter() - t

    rounds = []
    for r in range(args.rounds):
        row = {"trained_s": train_for(args.train_seconds, args.size, seed=r), "load_1min": os.getloadavg()[0]}
        before_s, fed_before_s = floor(), floor(fed=True)  # the floors right before and right after the
        row["default"] = score("vog")  # scoring: their mean, so that a shared machine's drift within the round cancels
        row["floor_around_s"] = (before_s, floor())
        row["fed_floor_around_s"] = (fed_before_s, floor(fed=True))
        row["fed_floor_s"] = statistics.mean(row["fed_floor_around_s"])
        row["ratio_default_fed"] = row["fed_floor_s"] / row["default"]["score"]
        row["floor_s"] = statistics.mean(row["floor_around_s"])
        row["ratio_default"] = row["floor_s"] / row["default"]["score"]
        row["ratio_default_compute"] = row["floor_s"] / row["default"]["compute"]
        line = (
            f"round {r + 1}: trained {row['trained_s']:.0f}s (load {row['load_1min']:.2f}); default: "
            f"{row['default']['threads']} threads ({row['default']['why']}), strategy {row['default']['strategy']}, BatchNorm folded {row['default']['batchnorm_folded']}, NHWC {row['default']['channels_last']}, scoring {row['default']['score']:.2f}s "
            f"(waiting for images {row['default']['data_wait']:.2f}s); floor with {cores} threads "
            f"{row['floor_around_s'][0]:.2f}s before, {row['floor_around_s'][1]:.2f}s after; throughput ÷ floor "
            f"{row['ratio_default']:.2f} (compute only {row['ratio_default_compute']:.2f}); fed floor "
            f"{row['fed_floor_around_s'][0]:.2f}s, {row['fed_floor_around_s'][1]:.2f}s: ÷ fed floor {row['ratio_default_fed']:.2f}"
        )
        if args.old_rule:
            train_for(args.train_seconds, args.size, seed=r)
            n_old = old_rule(cores)
            row["old_rule"] = score("vog_old", num_threads=n_old)
            row["ratio_old_rule"] = row["floor_s"] / row["old_rule"]["score"]
            line += f"; old rule: {n_old} threads, ÷ floor {row['ratio_old_rule']:.2f}"
        print(line, flush=True)
        rounds.append(row)
    summary = {
        "ratio_default_median": statistics.median(r["ratio_default"] for r in rounds),
        "ratio_default_compute_median": statistics.median(r["ratio_default_compute"] for r in rounds),
        "ratio_default_fed_median": statistics.median(r["ratio_default_fed"] for r in rounds),
    }
    if args.old_rule:
        summary["ratio_old_rule_median"] = statistics.median(r["ratio_old_rule"] for r in rounds)
    print(
        f"median throughput ÷ floor ({args.rounds} rounds, {work} sample-checkpoints, {cores} cores): "
        + ", ".join(f"{k.removeprefix('ratio_').removesuffix('_median')} {v:.2f}" for k, v in summary.items())
    )
    ds.delete()
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"threads_after_training_{time.strftime('%Y%m%d-%H%M%S')}.json")
    with open(path, "w") as f:
        json.dump({"args": vars(args), "cores": cores, "rounds": rounds, **summary}, f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
