#!/usr/bin/env python
"""How long the Compute VoG form takes to resolve on the server, on a dataset like the demo's::

    python benchmarks/form_resolve.py

The App calls the operator's ``resolve_input`` after every change of the form (FiftyOne 1.22: at
most every 500 ms) and shows its errors after validating them (at most every 750 ms); time spent
here adds to both. In a throw-away database (its own mongod, under a temporary folder):
``make demo``'s ``vog-digits`` images and dataset (1,797 samples, 354 unlabeled), 80
``SmallCNN`` checkpoints (untrained: only their keys and shapes matter to the form), and the
form filled as the demo's closing text says (checkpoints glob, model SmallCNN, label mode auto,
output field vog_app). Prints the first resolve (the checkpoint is loaded) and the median of the
next ones (the cache hit a user gets while typing), and the slowest steps of one warm resolve.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=20, help="warm resolves timed (median; default 20)")
    p.add_argument("--checkpoints", type=int, default=80, help="checkpoint files (default 80, the demo's)")
    args = p.parse_args()

    tmp = tempfile.mkdtemp(prefix="vog-form-")  # left behind: mongod may still be stopping at exit
    os.environ.pop("FIFTYONE_DATABASE_URI", None)
    os.environ["FIFTYONE_DATABASE_DIR"] = os.path.join(tmp, "db")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples"))
    import demo_digits as demo
    import fiftyone.operators.types as types
    import torch
    from fiftyone.operators.executor import ExecutionContext, ValidationContext

    from fiftyone_vog.app.forms import compute_vog_form
    from fiftyone_vog.app.operators import ComputeVoG
    from fiftyone_vog.models import SmallCNN

    out = os.path.join(tmp, "out")
    ds = demo.build_dataset("vog-form-bench", demo.write_images(out, None))
    ckpts = os.path.join(out, "checkpoints")
    os.makedirs(ckpts)
    model = SmallCNN(num_classes=len(demo.IN_CLASSES))
    for k in range(1, args.checkpoints + 1):
        torch.save(model.state_dict(), os.path.join(ckpts, f"epoch_{k:03d}.pt"))
    params = {
        "checkpoints": os.path.join(ckpts, "epoch_*.pt"),
        "model": "SmallCNN",
        "label_mode": "auto",
        "vog_field": "vog_app",
    }
    op = ComputeVoG()
    logging.disable(logging.ERROR)  # "Cannot resolve secrets for unregistered operator": no plugin registry here
    os.chdir(tmp)  # the App roots: the launch directory and the folder above the media

    def resolve():
        ctx = ExecutionContext(request_params={"dataset_name": ds.name, "params": dict(params)})
        inputs = types.Object()
        compute_vog_form(ctx, inputs)
        validation = ValidationContext(ctx, types.Property(inputs), op)
        return inputs, validation

    t = time.perf_counter()
    inputs, validation = resolve()
    first = time.perf_counter() - t
    errors = [(e.path, e.reason) for e in validation.errors]
    assert not errors, errors
    times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        resolve()
        times.append(time.perf_counter() - t)
    print(f"{len(ds)} samples ({len(ds) - ds.count('ground_truth')} unlabeled), {args.checkpoints} checkpoints")
    print(
        f"resolve_input + validation: first {first * 1000:.0f} ms, then median {statistics.median(times) * 1000:.0f} ms"
    )
    prof = cProfile.Profile()
    prof.enable()
    resolve()
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(r"fiftyone_vog", 15)
    ds.delete()


if __name__ == "__main__":
    main()
