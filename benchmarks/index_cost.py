#!/usr/bin/env python
"""What the index on each VoG score field costs, and what it buys, at N samples::

    python benchmarks/index_cost.py --n 1000000

In a throw-away database (its own mongod, under a temporary folder): N image samples, then
compute_vog's writer (``bulk_set``) writes ``vog`` and ``vog_raw`` without an index; the indexes
compute_vog creates are built (``indexes.index_fields``); the same write runs again with them
(what an ``overwrite=True`` rerun pays); and the App grid's first page sorted by VoG, highest first
(``sort_by("vog", reverse=True).limit(20)``), is timed with and without the index. Prints one
table; index sizes are MongoDB's ``collStats.indexSizes``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000, help="samples (default 1,000,000)")
    p.add_argument("--repeat", type=int, default=5, help="timed sorts per case (median; default 5)")
    args = p.parse_args()

    tmp = tempfile.mkdtemp(prefix="vog-index-")  # left behind: mongod may still be stopping at exit
    os.environ.pop("FIFTYONE_DATABASE_URI", None)
    os.environ["FIFTYONE_DATABASE_DIR"] = os.path.join(tmp, "db")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    import fiftyone as fo
    from bson import ObjectId

    from fiftyone_vog.core.indexes import index_fields
    from fiftyone_vog.core.writer import bulk_set

    n = args.n
    ds = fo.Dataset()
    ds.add_sample(fo.Sample(filepath="/nonexistent/0.png"))
    coll = ds._sample_collection
    proto = coll.find_one()
    coll.delete_many({})
    t = time.perf_counter()
    for lo in range(0, n, 50_000):  # raw copies of one FiftyOne sample document: fast to insert
        docs = []
        for i in range(lo, min(lo + 50_000, n)):
            d = dict(proto, _id=ObjectId(), filepath=f"/nonexistent/{i}.png", _rand=float(np.random.rand()))
            docs.append(d)
        coll.insert_many(docs, ordered=False)
    t_insert = time.perf_counter() - t
    ids = ds.values("id")
    assert len(ids) == n
    rng = np.random.default_rng(0)
    scores = {"vog": rng.normal(size=n), "vog_raw": rng.random(n)}
    for f in scores:
        ds.add_sample_field(f, fo.FloatField)

    def timed(fn):
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    def first_page():
        return ds.sort_by("vog", reverse=True).limit(20).values("id")

    rows = []
    t_write = timed(lambda: bulk_set(ds, ids, scores))
    sort_none = statistics.median(timed(first_page) for _ in range(args.repeat))
    t_index = timed(lambda: index_fields(ds, list(scores), "run:vog"))
    sizes = ds._dataset._sample_collection.database.command("collStats", coll.name)["indexSizes"]
    size = {k: v for k, v in sizes.items() if k.startswith("vog")}
    t_write_idx = timed(lambda: bulk_set(ds, ids, {k: v + 1 for k, v in scores.items()}))
    sort_idx = statistics.median(timed(first_page) for _ in range(args.repeat))
    assert first_page()  # not empty
    rows += [
        ("insert samples (setup)", f"{t_insert:.1f} s"),
        ("write vog + vog_raw, no index", f"{t_write:.2f} s"),
        ("create both indexes", f"{t_index:.2f} s"),
        (
            "index size vog + vog_raw",
            f"{sum(size.values()) / 2**20:.1f} MiB ({', '.join(f'{k} {v / 2**20:.1f}' for k, v in size.items())})",
        ),
        ("write vog + vog_raw, indexed", f"{t_write_idx:.2f} s"),
        (f"first page sorted by vog, no index (median of {args.repeat})", f"{sort_none * 1000:.0f} ms"),
        (f"first page sorted by vog, indexed (median of {args.repeat})", f"{sort_idx * 1000:.1f} ms"),
    ]
    print(f"N = {n:,} samples, fiftyone {fo.__version__}, {os.cpu_count()} cores")
    for k, v in rows:
        print(f"{k:<52}{v}")
    ds.delete()


if __name__ == "__main__":
    main()
