#!/usr/bin/env python
"""VoG speed and memory: the autograd floor, our engine and the naive way, side by side.

Engine level (needs only torch, torchvision and numpy)::

    python benchmarks/bench_vog.py --model smallcnn --n 1000 4000 --k 5
    python benchmarks/bench_vog.py --model resnet18 --size 32 --n 256 --k 5 --batch-size 64
    python benchmarks/bench_vog.py --model resnet50 --size 224 --n 1000 10000 100000 --device cuda

For each N, in one process and on the same random batches:

- ``floor``: K × (forward + backward to the input, parameters frozen), nothing else;
- ``ours[...]``: ``fiftyone_vog.engine`` (each ``--variants`` entry: loop, split, vmap, bf16, fp16, channels_last, ...);
- ``naive``: the authors' released-code way — for each checkpoint compute and keep every
  sample's gradient map, then stack (K, N, H, W) and reduce.

The methods run in interleaved rounds (floor, ours, naive, floor, ...) so that drift of a shared
machine hits all of them alike; a ratio is the median of the per-round ratios. Peak memory is the
largest resident-set growth seen while the method ran (sampled every 2 ms, freed heap returned to the
OS first) and, on CUDA, ``torch.cuda.max_memory_allocated`` growth.

End to end from a FiftyOne dataset (``--e2e``): generated PNGs in a throw-away database, timed
``fov.compute_vog`` (decode + score + write) and, separately, a bulk ``set_values`` of
``--write-n`` scores (default one million).

Prints one table and writes JSON to ``benchmarks/results/`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import atexit
import copy
import ctypes
import gc
import inspect
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fiftyone_vog.engine import VoGEngine, score_batches  # noqa: E402  (imports no FiftyOne)
from fiftyone_vog.models import SmallCNN  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

#: Engine configurations ``--variants`` may name; keys the engine does not accept are skipped.
NCHW = {"channels_last": False}  # the layout the variants below were first measured in (the CPU's default checks NHWC)
VARIANTS = {
    "default": {},  # the engine's own defaults (on the CPU: NHWC when the first batch's check passes)
    "compute_vog": {"fold_batchnorm": True},  # what compute_vog asks of the engine by default
    "loop": {"strategy": "loop", **NCHW},
    "split": {"strategy": "split", **NCHW},  # CPU: the batch in parts, one per torch thread, the threads shared out
    "fold": {"fold_batchnorm": True, **NCHW},  # BatchNorm folded into the conv before it
    "split+fold": {"strategy": "split", "fold_batchnorm": True, **NCHW},
    "vmap": {"strategy": "vmap", **NCHW},
    "bf16": {"autocast": "bf16"},
    "fp16": {"autocast": "fp16"},
    "bf16-all": {"autocast": "bf16", "fp32_input_layer": False},  # input layer in half precision too
    "fp16-all": {"autocast": "fp16", "fp32_input_layer": False},
    "bf16+channels_last": {"autocast": "bf16", "channels_last": True},
    "fp16+channels_last": {"autocast": "fp16", "channels_last": True},
    "channels_last": {"channels_last": True},
    "fold+channels_last": {"fold_batchnorm": True, "channels_last": True},
    "split+fold+channels_last": {"strategy": "split", "fold_batchnorm": True, "channels_last": True},
    "vmap+channels_last": {"strategy": "vmap", "channels_last": True},
    "companions": {"companions": True, **NCHW},  # + loss, margin, maxprob, energy from the same forward passes
    "vmap+companions": {"strategy": "vmap", "companions": True, **NCHW},
}


# -- models and data -------------------------------------------------------------
def build_model(name: str, num_classes: int) -> torch.nn.Module:
    if name == "smallcnn":
        return SmallCNN(num_classes=num_classes, in_channels=3, width=16)
    import torchvision

    return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)


def make_models(name: str, k: int, num_classes: int, seed: int = 0) -> list[torch.nn.Module]:
    """K random-weight checkpoints with non-trivial BatchNorm statistics (timing only)."""
    torch.manual_seed(seed)
    models = []
    for _ in range(k):
        m = build_model(name, num_classes).eval()
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.8, 1.2)
        for p in m.parameters():
            p.requires_grad_(False)
        models.append(m)
    return models


class Batches:
    """N samples as a cycle over a small pool of random batches: inputs cost no memory as N grows."""

    def __init__(self, n: int, batch_size: int, size: int, num_classes: int, device, pool: int = 4, seed: int = 1):
        g = torch.Generator().manual_seed(seed)
        self.n, self.batch_size = n, batch_size
        self.pool = [
            (
                torch.randn(batch_size, 3, size, size, generator=g).to(device),
                torch.randint(0, num_classes, (batch_size,), generator=g).to(device),
            )
            for _ in range(pool)
        ]
        self.ids = [f"s{i}" for i in range(n)]

    def __iter__(self):
        for j, start in enumerate(range(0, self.n, self.batch_size)):
            x, y = self.pool[j % len(self.pool)]
            b = min(self.batch_size, self.n - start)
            yield x[:b], y[:b], self.ids[start : start + b]


# -- memory ------------------------------------------------------------------------
def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource  # ru_maxrss: a monotonic high-water mark, the best there is off Linux

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r if sys.platform == "darwin" else r * 1024


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _heap_reader():
    """A function returning the bytes of heap in use (glibc's mallinfo2: allocated chunks plus
    mmapped blocks), or None off glibc ≥ 2.33. Unlike the resident set, it does not count
    memory that malloc keeps cached in its arenas, so it measures what the code allocates."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2

    def read():
        m = fn()
        return m.uordblks + m.hblkhd

    return read


_heap = _heap_reader()


def _release_heap():
    gc.collect()
    try:  # give freed heap back to the OS, so a method's RSS growth is its own
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Context manager: peak RSS growth (sampled) and peak CUDA allocation growth, in bytes."""

    def __init__(self, device: torch.device, interval: float | None = 0.002):
        self.device, self.interval = device, interval  # None: no sampling thread (start and end only)

    def __enter__(self):
        _release_heap()
        self.base = self.peak = _rss()
        self.heap_base = self.heap_peak = _heap() if _heap else None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.cuda_base = torch.cuda.memory_allocated(self.device)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True) if self.interval else None
        if self._thread is not None:
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.poke()

    def poke(self):
        self.peak = max(self.peak, _rss())
        if _heap:
            self.heap_peak = max(self.heap_peak, _heap())

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.poke()
        self.rss = self.peak - self.base
        self.heap = None if self.heap_base is None else self.heap_peak - self.heap_base
        self.cuda = None
        if self.device.type == "cuda":
            self.cuda = torch.cuda.max_memory_allocated(self.device) - self.cuda_base
        return False


# -- the three methods ----------------------------------------------------------------
def run_floor(models, batches, mem=None):
    """K × (forward + backward to the input) per batch, nothing else."""
    for x, y, _ in batches:
        for m in models:
            xx = x.detach().requires_grad_(True)
            out = m(xx)
            torch.autograd.grad(out.gather(1, y[:, None]).sum(), xx)
    return None


def run_ours(engine, batches, mem=None):
    return score_batches(engine, batches, batches.ids).raw["all"]


def run_naive(models, batches, mem=None):
    """The released code's way: every checkpoint's gradient map of every sample kept, then reduced."""
    per_ckpt = []
    for m in models:
        maps = []
        for x, y, _ in batches:
            xx = x.detach().requires_grad_(True)
            out = m(xx)
            (g,) = torch.autograd.grad(out.gather(1, y[:, None]).sum(), xx)
            maps.append(g.sum(dim=1).cpu().numpy())
        per_ckpt.append(np.concatenate(maps))  # (N, H, W)
    stacked = np.stack(per_ckpt)  # (K, N, H, W)
    del per_ckpt
    if mem is not None:
        mem.poke()
    mu = stacked.mean(axis=0)
    var = ((stacked - mu) ** 2).mean(axis=0)
    if mem is not None:
        mem.poke()
    return var.mean(axis=(1, 2))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, clock, *args, sample_memory: bool = True):
    """(seconds on ``clock``, result, PeakMemory); ``clock`` is time.perf_counter or time.process_time."""
    with PeakMemory(device, 0.002 if sample_memory else None) as mem:
        _sync(device)
        t = clock()
        out = fn(*args, mem)
        _sync(device)
        dt = clock() - t
    return dt, out, mem


def spearman(a, b) -> float:
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])


def engine_kwargs(variant: str) -> dict | None:
    """The variant's engine keywords, or None when this engine does not offer them."""
    kw = VARIANTS[variant]
    accepted = inspect.signature(VoGEngine).parameters
    return kw if all(k in accepted for k in kw) else None


# -- engine-level benchmark ---------------------------------------------------------------
def bench_engine(args) -> dict:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m.to(device) for m in make_models(args.model, args.k, args.num_classes)]
    engines = {}
    for v in args.variants:
        kw = engine_kwargs(v)
        if kw is None:
            print(f"(variant {v!r} skipped: this engine has no {list(VARIANTS[v])})", file=sys.stderr)
            continue
        # folding and the NHWC layout change the modules in place (the floor's too, were they shared):
        # those variants get their own copies
        own = (
            copy.deepcopy(models) if kw.get("fold_batchnorm") or kw.get("channels_last", None) is not False else models
        )
        engines[v] = VoGEngine(own, {"all": list(range(args.k))}, device=device, **kw)
    reference = next(iter(engines))
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    rows = []
    for n in args.n:
        batches = Batches(n, args.batch_size, args.size, args.num_classes, device)
        methods = {"floor": (run_floor, models)} if "floor" in args.methods else {}
        if "ours" in args.methods:
            methods.update({f"ours[{v}]": (run_ours, e) for v, e in engines.items()})
        if "naive" in args.methods and not args.no_naive and n <= args.naive_max_n:
            methods["naive"] = (run_naive, models)
        warm = Batches(min(n, args.batch_size), args.batch_size, args.size, args.num_classes, device)
        for fn, obj in methods.values():
            fn(obj, warm)
        times = {m: [] for m in methods}
        mems, outs = {}, {}
        for _ in range(args.rounds):
            for name, (fn, obj) in methods.items():
                dt, out, mem = timed(fn, device, clock, obj, batches, sample_memory=not args.no_memory_sampling)
                times[name].append(dt)
                outs[name] = out
                prev = mems.get(name)
                mems[name] = (
                    max(mem.rss, prev[0]) if prev else mem.rss,
                    None if mem.cuda is None else max(mem.cuda, prev[1] if prev else 0),
                    None if mem.heap is None else max(mem.heap, prev[2] if prev else 0),
                )
        ref_scores = outs.get(f"ours[{reference}]", outs.get("naive"))
        for name in methods:
            t = statistics.median(times[name])
            row = {
                "model": args.model,
                "size": args.size,
                "n": n,
                "k": args.k,
                "batch_size": args.batch_size,
                "method": name,
                "clock": args.clock,
                "seconds": t,
                "throughput": n * args.k / t,
                "vs_floor": (
                    statistics.median(f / s for f, s in zip(times["floor"], times[name])) if "floor" in times else None
                ),
                "vs_naive": (
                    statistics.median(nv / s for nv, s in zip(times["naive"], times[name]))
                    if "naive" in times
                    else None
                ),
                "peak_rss_mib": mems[name][0] / 2**20,
                "peak_heap_mib": None if mems[name][2] is None else mems[name][2] / 2**20,
                "peak_cuda_mib": None if mems[name][1] is None else mems[name][1] / 2**20,
                "rounds": times[name],
            }
            if outs[name] is not None and ref_scores is not None:
                rel = np.abs(outs[name] - ref_scores) / np.abs(ref_scores)
                row["max_rel_diff"] = float(rel.max())
                row["spearman"] = spearman(outs[name], ref_scores)
            rows.append(row)
            print_row(row)
    return {"kind": "engine", "device": device_name(device), "rows": rows}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


HEADER = (
    f"{'method':<22}{'N':>8}{'K':>4}{'seconds':>9}{'samp-ckpt/s':>13}{'÷floor':>8}{'÷naive':>8}"
    f"{'peak RSS MiB':>14}{'peak heap MiB':>15}{'peak CUDA MiB':>15}{'max rel':>10}{'spearman':>10}"
)


def print_row(r):
    def f(v, spec):
        return format(v, spec) if v is not None else "-"

    print(
        f"{r['method']:<22}{r['n']:>8}{r['k']:>4}{r['seconds']:>9.2f}{r['throughput']:>13.0f}"
        f"{f(r['vs_floor'], '.2f'):>8}{f(r.get('vs_naive'), '.2f'):>8}{r['peak_rss_mib']:>14.1f}"
        f"{f(r.get('peak_heap_mib'), '.1f'):>15}{f(r['peak_cuda_mib'], '.1f'):>15}{f(r.get('max_rel_diff'), '.1e'):>10}{f(r.get('spearman'), '.5f'):>10}",
        flush=True,
    )


# -- end to end from a FiftyOne dataset ---------------------------------------------------------
def bench_e2e(args) -> dict:
    """compute_vog on generated PNGs (decode + score + write), then a bulk write of write_n scores."""
    tmp = tempfile.mkdtemp(prefix="vog-bench-")
    # images and checkpoints are removed at exit; the database dir stays (its datasets are deleted),
    # since mongod may still be shutting down when atexit runs
    atexit.register(shutil.rmtree, os.path.join(tmp, "images"), ignore_errors=True)
    atexit.register(shutil.rmtree, os.path.join(tmp, "ckpts"), ignore_errors=True)
    os.environ.setdefault("FIFTYONE_DATABASE_DIR", os.path.join(tmp, "db"))
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    import fiftyone as fo
    from PIL import Image

    import fiftyone_vog as fov

    n = args.n[0]
    rng = np.random.default_rng(0)
    classes = [str(c) for c in range(args.num_classes)]
    samples = []
    img_dir = os.path.join(tmp, "images")
    os.makedirs(img_dir)
    for i in range(n):
        p = os.path.join(img_dir, f"{i:07d}.png")
        Image.fromarray(rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)).save(p)
        samples.append(fo.Sample(filepath=p, ground_truth=fo.Classification(label=classes[i % len(classes)])))
    ds = fo.Dataset()
    ds.add_samples(samples, progress=False)
    ds.classes["ground_truth"] = classes
    ds.save()
    ckpt_dir = os.path.join(tmp, "ckpts")
    os.makedirs(ckpt_dir)
    for i, m in enumerate(make_models(args.model, args.k, args.num_classes)):
        torch.save(m.state_dict(), os.path.join(ckpt_dir, f"epoch_{i + 1}.pt"))
    model = "fiftyone_vog.models:SmallCNN" if args.model == "smallcnn" else args.model
    kw = {"num_workers": args.num_workers, "batch_size": args.batch_size, "progress": False}
    if args.model == "smallcnn":
        model = lambda: build_model("smallcnn", args.num_classes)  # noqa: E731  (width 16, as above)
    t = time.perf_counter()
    res = fov.compute_vog(ds, os.path.join(ckpt_dir, "epoch_*.pt"), model=model, device=args.device, **kw)
    total = time.perf_counter() - t
    rows = [
        {
            "method": "compute_vog",
            "n": n,
            "k": args.k,
            "seconds": total,
            "throughput": n * args.k / total,
            "timings": res.timings,
        }
    ]
    print(
        f"compute_vog: {n} samples × {args.k} checkpoints in {total:.2f}s "
        f"({n * args.k / total:.0f} sample-checkpoints/s); phases: "
        + ", ".join(f"{k} {v:.2f}s" for k, v in res.timings.items()),
        flush=True,
    )
    ds.delete()

    if args.write_n:
        big = fo.Dataset()
        t = time.perf_counter()
        big.add_samples((fo.Sample(filepath=f"/nonexistent/{i}.png") for i in range(args.write_n)), progress=False)
        t_insert = time.perf_counter() - t
        ids = big.values("id")
        values = rng.random(args.write_n)
        big.add_sample_field("vog", fo.FloatField)
        t = time.perf_counter()
        big.set_values("vog", dict(zip(ids, values.tolist())), key_field="id")
        t_keyed = time.perf_counter() - t
        t = time.perf_counter()
        big.set_values("vog", values.tolist())
        t_ordered = time.perf_counter() - t
        assert np.allclose(big.values("vog"), values)
        # compute_vog's writer: every field of a sample in one $set, chunked, on 4 threads
        from fiftyone_vog.core.writer import bulk_set, write_run

        two = {"vog2": values, "vog2_raw": 2 * values}
        for f in two:
            big.add_sample_field(f, fo.FloatField)
        t = time.perf_counter()
        bulk_set(big, ids, two)
        t_bulk = time.perf_counter() - t
        assert np.allclose(big.values("vog2_raw"), 2 * values)
        # the whole all-or-nothing write of a run over existing fields (old values read first)
        t = time.perf_counter()
        write_run(big, ids, {f: v + 1 for f, v in two.items()}, "vog2", {"method": "bench"})
        t_overwrite = time.perf_counter() - t
        assert np.allclose(big.values("vog2"), values + 1)
        for name, fields, s in (
            ("set_values by id", 1, t_keyed),
            ("set_values in order", 1, t_ordered),
            ("bulk_set, 2 fields", 2, t_bulk),
            ("write_run overwriting 2 fields", 2, t_overwrite),
        ):
            scores = args.write_n * fields  # throughput in scores (sample × field) per second
            rows.append({"method": name, "n": args.write_n, "fields": fields, "seconds": s, "throughput": scores / s})
            print(
                f"{name}: {args.write_n} samples × {fields} field(s) in {s:.2f}s ({scores / s:.0f} scores/s)",
                flush=True,
            )
        print(f"(creating the {args.write_n}-sample dataset took {t_insert:.1f}s, not counted)")
        big.delete()
    return {
        "kind": "e2e",
        "device": device_name(torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))),
        "rows": rows,
    }


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model", default="smallcnn", help="smallcnn | resnet18 | resnet50 | any torchvision name")
    p.add_argument("--size", type=int, default=32, help="image side (default 32)")
    p.add_argument("--n", type=int, nargs="+", default=[1000, 4000], help="sample counts (default 1000 4000)")
    p.add_argument("--k", type=int, default=5, help="checkpoints (default 5)")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", help="cpu | cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument(
        "--no-memory-sampling",
        action="store_true",
        help="no thread sampling RSS every 2 ms (its wake-ups take the GIL from strategy=split's "
        "threads; peak memory is then read at the start and end of each method only)",
    )
    p.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall (default) or cpu: this process's CPU seconds, steadier on a shared machine",
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per N (default 3)")
    p.add_argument(
        "--variants",
        default="default",
        help=f"comma-separated engine configurations: {', '.join(VARIANTS)} (default: default)",
    )
    p.add_argument("--methods", default="floor,ours,naive", help="which of floor, ours, naive to run (default: all)")
    p.add_argument("--no-naive", action="store_true", help="skip the naive method")
    p.add_argument("--naive-max-n", type=int, default=10**9, help="skip naive above this N (its memory is O(N·K·H·W))")
    p.add_argument("--e2e", action="store_true", help="end to end from a FiftyOne dataset (needs fiftyone)")
    p.add_argument("--num-workers", type=int, default=0, help="--e2e: DataLoader workers")
    p.add_argument("--write-n", type=int, default=1_000_000, help="--e2e: scores in the bulk-write test (0: skip)")
    p.add_argument("--out", help="JSON path (default: benchmarks/results/<model>-<time>.json)")
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant {unknown[0]!r}; choose from {', '.join(VARIANTS)}")

    print(f"model={args.model} size={args.size} K={args.k} batch={args.batch_size} torch={torch.__version__}")
    if not args.e2e:
        print(HEADER)
    result = bench_e2e(args) if args.e2e else bench_engine(args)
    print(f"device: {result['device']}")
    result.update(
        config=vars(args),
        torch=torch.__version__,
        python=platform.python_version(),
        when=datetime.now().isoformat(timespec="seconds"),
    )
    out = args.out or os.path.join(
        RESULTS_DIR, f"{'e2e-' if args.e2e else ''}{args.model}-{args.size}-{datetime.now():%Y%m%d-%H%M%S}.json"
    )
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
