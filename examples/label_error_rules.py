"""How well does each rule for the size of ``vog-label-errors`` find the shuffled labels?

Reads a dataset that ``examples/demo_digits.py`` (``make demo``) built and scored — its training
split has 20% shuffled labels (flag ``label_shuffled``) and the run's companions — and prints, per
rule, how many samples it selects and their precision and recall against the shuffled flags:

- ``even-odds`` (``save_vog_views``' default): mean loss of the used label above ln 2;
- ``percentile``: the top ``--percentile``% by mean loss (the earlier fixed size);
- two rules considered and not chosen: mean margin below 0 (AUM's sign) and mean loss above
  ln C (worse than a uniform guess over the C classes).

The two rules the API offers are computed by its own :func:`~fiftyone_vog.audit.views.label_error_threshold`.
Reads only; writes nothing to the dataset.

    python examples/demo_digits.py --seed 1 --dataset-name vog-digits-s1 --out out/s1   # one per seed
    python examples/label_error_rules.py --dataset vog-digits vog-digits-s1
"""

from __future__ import annotations

import argparse
import math
import os

import numpy as np

os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")

RULES = ("even-odds", "percentile", "margin < 0", "loss > ln C")


def measure(samples, vog_field="vog", flag_field="label_shuffled", percentile=10.0) -> dict[str, dict]:
    """``{rule: {"n", "precision", "recall"}}`` of each of :data:`RULES` on ``samples``."""
    from fiftyone_vog.audit.views import label_error_threshold
    from fiftyone_vog.core.naming import score_fields

    beside = score_fields(samples, vog_field)
    fields = beside.companions
    if "loss" not in fields or "margin" not in fields:
        raise SystemExit(f"the run {vog_field!r} has no loss and margin companions: compute it with companions=True")
    loss, margin, flag = samples.values([fields["loss"], fields["margin"], flag_field])
    keep = [lo is not None and f is not None for lo, f in zip(loss, flag)]
    loss = np.array([v for v, k in zip(loss, keep) if k], dtype=float)
    margin = np.array([v for v, k in zip(margin, keep) if k], dtype=float)
    flag = np.array([v for v, k in zip(flag, keep) if k], dtype=bool)
    classes = len(set(samples.distinct("ground_truth.label")))
    selected = {
        "even-odds": loss >= label_error_threshold(loss, "even-odds", percentile),
        "percentile": loss >= label_error_threshold(loss, "percentile", percentile),
        "margin < 0": margin < 0,
        "loss > ln C": loss > math.log(classes),
    }
    out = {}
    for rule, sel in selected.items():
        tp = int((sel & flag).sum())
        out[rule] = {
            "n": int(sel.sum()),
            "precision": tp / sel.sum() if sel.any() else float("nan"),
            "recall": tp / flag.sum() if flag.any() else float("nan"),
            "flagged": int(flag.sum()),
            "samples": int(flag.size),
        }
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", nargs="+", default=["vog-digits"], help="datasets built by demo_digits.py")
    ap.add_argument("--tag", default="train", help="the split with shuffled labels (default: train)")
    ap.add_argument("--vog-field", default="vog", help="the run scored on that split (default: vog)")
    ap.add_argument("--flag-field", default="label_shuffled")
    ap.add_argument("--percentile", type=float, default=10.0, help="the percentile rule's size (default: 10)")
    args = ap.parse_args(argv)
    import fiftyone as fo

    results = {}
    print("| dataset | rule | samples selected | precision | recall |")
    print("|---|---|---|---|---|")
    for name in args.dataset:
        samples = fo.load_dataset(name).match_tags(args.tag)
        results[name] = measure(samples, args.vog_field, args.flag_field, args.percentile)
        for rule, m in results[name].items():
            shown = f"top {args.percentile:g}%" if rule == "percentile" else rule
            print(
                f"| {name} | {shown} | {m['n']} of {m['samples']} ({m['flagged']} shuffled) | {m['precision']:.3f} | {m['recall']:.3f} |"
            )
    return results


if __name__ == "__main__":
    main()
