#!/usr/bin/env python
"""ImageNet-shaped data: can image decoding keep the model busy?

On ``--n`` generated JPEGs of ``--size``² pixels (default 224², quality 90), with the
``imagenet`` preset (resize 256, center crop 224, ImageNet normalization) and a torchvision model
(``--arch resnet18``; ``timm:NAME`` when timm is installed), measured in interleaved rounds
(medians):

- ``data``: :class:`fiftyone_vog.inputs.images.ImageDataset` through ``make_loader`` — header
  check, decode, transform, collate — for each ``--workers`` count, images/s; and, in this
  process, where one image's time goes (reading the file, header check, decode, transform);
- ``model``: one checkpoint's forward + backward to the input on tensors already on the device
  (the autograd floor per checkpoint), images/s; a run over K checkpoints needs images at 1/K of it;
- ``vog``: the engine over ``--k`` checkpoints fed by that loader (``score_batches``, as
  ``compute_vog`` does), images/s and the share of its time spent waiting for images
  (``data_wait``), for each ``--workers`` count, on the first ``--vog-n`` images (default 512:
  on a CPU the engine scores a few images a second).

    python benchmarks/data_path.py                                    # CPU, 512 JPEGs
    python benchmarks/data_path.py --n 5000 --arch resnet50 --device cuda --workers 0 4 8 16

Prints a table and writes JSON to ``benchmarks/results/`` (or ``--out``). Needs torch,
torchvision and PIL, no FiftyOne.
"""

from __future__ import annotations

import argparse
import copy
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

from fiftyone_vog.engine import VoGEngine, score_batches  # noqa: E402
from fiftyone_vog.inputs.images import ImageDataset, make_loader  # noqa: E402

RESULTS_DIR = os.path.join(HERE, "results")


def write_jpegs(folder: str, n: int, size: int, seed: int = 0) -> list[str]:
    """``n`` photo-like JPEGs (smooth colour fields plus grain: realistic file sizes and decode
    cost, unlike pure noise); files already there are reused."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = os.path.join(folder, f"{i:06d}.jpg")
        paths.append(path)
        if os.path.exists(path):
            continue
        low = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize((size, size), Image.BICUBIC)
        img = np.asarray(low, dtype=np.int16) + rng.normal(0, 12, (size, size, 3)).astype(np.int16)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, quality=90)
    return paths


def build_model(arch: str, num_classes: int) -> torch.nn.Module:
    if arch.startswith("timm:"):
        import timm

        return timm.create_model(arch[5:], pretrained=False, num_classes=num_classes)
    import torchvision

    return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)


def make_models(arch: str, k: int, num_classes: int, device) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    models = []
    for _ in range(k):
        m = build_model(arch, num_classes).eval().to(device)
        for p in m.parameters():
            p.requires_grad_(False)
        models.append(m)
    return models


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_data(dataset, batch_size: int, workers: int, device) -> float:
    """Seconds for one pass of the loader, batches moved to the device."""
    loader = make_loader(dataset, batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda")
    t = time.perf_counter()
    for x, _, _ in loader:
        x.to(device, non_blocking=True)
    sync(device)
    return time.perf_counter() - t


def time_stages(dataset, n: int) -> dict[str, float]:
    """Seconds per image of reading the file, the header check, the decode and the transform, in
    this process."""
    out = {"read": 0.0, "check": 0.0, "decode": 0.0, "transform": 0.0}
    for i in range(n):
        path = dataset.filepaths[i]
        tr = time.perf_counter()
        with open(path, "rb") as f:
            data = f.read()
        t0 = time.perf_counter()
        dataset._check_size(data, path)
        t1 = time.perf_counter()
        img = dataset._read(data, path)
        t2 = time.perf_counter()
        dataset.transform(img)
        t3 = time.perf_counter()
        out["read"] += t0 - tr
        out["check"] += t1 - t0
        out["decode"] += t2 - t1
        out["transform"] += t3 - t2
    return {k: v / n for k, v in out.items()}


def time_model(model, batch_size: int, n: int, num_classes: int, device) -> float:
    """Seconds for forward + backward to the input of ``n`` images (random, already on the device)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch_size, 3, 224, 224, generator=g).to(device)
    y = torch.randint(0, num_classes, (batch_size,), generator=g).to(device)
    done = 0
    sync(device)
    t = time.perf_counter()
    while done < n:
        xx = x.detach().requires_grad_(True)
        out = model(xx)
        torch.autograd.grad(out.gather(1, y[:, None]).sum(), xx)
        done += batch_size
    sync(device)
    return (time.perf_counter() - t) * n / done


def time_vog(engine, data, batch_size: int, workers: int, device) -> tuple[float, dict]:
    """Seconds of the engine fed by the loader over ``data`` (a ``Subset`` of the dataset), and its stats."""
    loader = make_loader(data, batch_size=batch_size, num_workers=workers, pin_memory=device.type == "cuda")
    sync(device)
    t = time.perf_counter()
    raw = score_batches(engine, loader, [data.dataset.ids[i] for i in data.indices])
    sync(device)
    return time.perf_counter() - t, raw.stats


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=512, help="JPEGs (default 512; e.g. 5000 on a GPU box)")
    p.add_argument("--size", type=int, default=224, help="side of the generated JPEGs (default 224)")
    p.add_argument("--arch", default="resnet18", help="a torchvision model name, or timm:NAME (default resnet18)")
    p.add_argument("--k", type=int, default=2, help="checkpoints for the vog rows (default 2)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers to compare")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default torch's)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--model-n", type=int, default=None, help="images for the model row (default min(n, 256))")
    p.add_argument("--vog-n", type=int, default=None, help="images for the engine rows (default min(n, 512))")
    p.add_argument("--no-vog", action="store_true", help="skip the engine rows")
    p.add_argument("--dir", default=None, help="folder for the JPEGs (default: a temporary one; reused if given)")
    p.add_argument("--out", default=RESULTS_DIR)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    folder = args.dir or tempfile.mkdtemp(prefix="vog-jpegs-")
    t = time.perf_counter()
    paths = write_jpegs(folder, args.n, args.size)
    mb = sum(os.path.getsize(q) for q in paths) / 2**20
    print(
        f"{args.n} JPEGs {args.size}² in {folder} ({mb:.1f} MiB), ready in {time.perf_counter() - t:.1f}s", flush=True
    )
    num_classes = 1000
    labels = [i % num_classes for i in range(args.n)]
    dataset = ImageDataset([str(i) for i in range(args.n)], paths, labels, transform="imagenet")
    models = make_models(args.arch, max(2, args.k), num_classes, device)
    # the engine may switch its modules to NHWC in place (the CPU's default): the model row keeps its own
    engine = VoGEngine(copy.deepcopy(models[: args.k]), {"all": list(range(args.k))}, device=device)
    model_n = args.model_n or min(args.n, 256)
    vog_data = torch.utils.data.Subset(dataset, range(min(args.n, args.vog_n or 512)))

    stages = time_stages(dataset, min(args.n, 200))
    rows = {f"data, {w} workers": [] for w in args.workers}
    rows["model fwd+bwd, 1 checkpoint"] = []
    vog = {w: [] for w in args.workers} if not args.no_vog else {}
    time_data(dataset, args.batch_size, 0, device)  # warm the page cache and torchvision's imports
    for _ in range(args.rounds):
        for w in args.workers:
            rows[f"data, {w} workers"].append(args.n / time_data(dataset, args.batch_size, w, device))
        rows["model fwd+bwd, 1 checkpoint"].append(
            model_n / time_model(models[0], args.batch_size, model_n, num_classes, device)
        )
        for w in vog:
            s, stats = time_vog(engine, vog_data, args.batch_size, w, device)
            vog[w].append((len(vog_data) / s, stats["data_wait"] / max(1e-9, stats["data_wait"] + stats["compute"])))
    table = {name: statistics.median(v) for name, v in rows.items()}
    for w, v in vog.items():
        table[f"vog, K={args.k}, {w} workers"] = statistics.median(a for a, _ in v)
        table[f"vog, K={args.k}, {w} workers: waiting for images"] = statistics.median(b for _, b in v)
    print(
        f"\n{args.arch} on {device} ({torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs), "
        f"batch {args.batch_size}, medians of {args.rounds} rounds"
    )
    print(
        "one image in this process: "
        + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in stages.items())
        + f" (= {1 / sum(stages.values()):.0f} images/s)"
    )
    for name, v in table.items():
        print(f"  {name:<45} {v:.0%}" if name.endswith("images") else f"  {name:<45} {v:8.1f} images/s")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(
        args.out, f"data_path_{args.arch.replace(':', '_')}_{device.type}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    )
    with open(path, "w") as f:
        json.dump(
            {
                "args": vars(args),
                "stages_s": stages,
                "table": table,
                "rounds": {**rows, **{f"vog {w}": v for w, v in vog.items()}},
            },
            f,
            indent=1,
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
