#!/usr/bin/env python
"""What an export of N small images costs, new and with Overwrite::

    python benchmarks/export_cost.py --n 3000

In a throw-away database (its own mongod, under a temporary folder): N 8x8 PNGs in four classes,
then ``fov.export_vog_subset`` as a class-folder tree into a new directory, the same export again
with ``overwrite=True`` over the first one (the earlier export's files removed, the new ones
moved in), and the CSV manifest. Each is timed ``--repeat`` times (median, seconds). Run it with
another checkout first on ``PYTHONPATH`` to compare versions (it uses only the public API).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=3000, help="images (default 3000)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per case (median; default 3)")
    args = p.parse_args()

    tmp = tempfile.mkdtemp(prefix="vog-export-")  # left behind: mongod may still be stopping at exit
    if "FIFTYONE_DATABASE_URI" not in os.environ:
        os.environ["FIFTYONE_DATABASE_DIR"] = os.path.join(tmp, "db")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
    import fiftyone as fo
    import numpy as np
    from PIL import Image

    import fiftyone_vog as fov

    media = os.path.join(tmp, "media")
    os.makedirs(media)
    rng = np.random.default_rng(0)
    classes = ["a", "b", "c", "d"]
    samples = []
    for i in range(args.n):
        path = os.path.join(media, f"{i:06d}.png")
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
        samples.append(fo.Sample(filepath=path, ground_truth=fo.Classification(label=classes[i % 4])))
    ds = fo.Dataset()
    ds.add_samples(samples)
    ds.set_values("vog", rng.random(args.n).tolist())

    def timed(*a, **kw):
        t = time.perf_counter()
        fov.export_vog_subset(ds, *a, progress=False, **kw)
        return time.perf_counter() - t

    timed(os.path.join(tmp, "warm-up"), dataset_type="csv")  # imports (the CSV's run lookup loads torch)
    rows = {"new": [], "overwrite": [], "csv": []}
    for r in range(args.repeat):
        out = os.path.join(tmp, f"out{r}")
        rows["new"].append(timed(out))
        rows["overwrite"].append(timed(out, overwrite=True))
        rows["csv"].append(timed(out + "-csv", dataset_type="csv"))
        shutil.rmtree(out + "-csv")  # new each time, like the tree
    result = {"n": args.n, "fiftyone_vog": os.path.dirname(fov.__file__)}
    result.update({k: round(statistics.median(v), 3) for k, v in rows.items()})
    print(json.dumps(result))
    ds.delete()


if __name__ == "__main__":
    main()
