"""The memorization audit end to end through the FiftyOne API: shuffle → train → VoG → views → export.

scikit-learn's digits (1,797 images, 10 classes, upscaled to 16×16) become a FiftyOne dataset of
PNG files; ``fov.shuffle_labels`` gives 20% of them a wrong class; a network is trained on the
dataset's (now partly wrong) labels with one checkpoint per epoch, with a recipe that memorizes
them (``fiftyone_vog.options.MEMORIZING_RECIPE``: a ¼-width ResNet-18 with AdamW; the audit needs
the wrong labels fitted, see docs/results.md); ``fov.compute_vog`` scores
every sample; ``fov.save_vog_views`` saves the vog-* views; the flagged samples are compared with
the clean ones (Welch t-test, AUROC, their share of ``vog-high``); ``vog-shuffled-labels`` is
exported as a CSV manifest; the labels are restored.

    python examples/audit_workflow.py                 # writes out/examples/audit_workflow.json
    python examples/audit_workflow.py --epochs 5      # quicker, weaker memorization
    python examples/audit_workflow.py --size 28       # MNIST-sized images

Runs against its own FiftyOne database under the output directory unless FIFTYONE_DATABASE_DIR
is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "out", "examples"))
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--epochs", type=int, default=None, help="default: the memorizing recipe's (30)")
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=51)
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    os.environ.setdefault("FIFTYONE_DATABASE_DIR", os.path.join(out, "audit_workflow_db"))
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")

    import fiftyone as fo
    import numpy as np
    import torch
    from PIL import Image

    import fiftyone_vog as fov
    from fiftyone_vog import analysis
    from fiftyone_vog.inputs.checkpoints import import_callable
    from fiftyone_vog.inputs.training import CheckpointSaver, train_classifier
    from fiftyone_vog.options import MEMORIZING_RECIPE as RECIPE

    sys.path.insert(0, HERE)
    from _common import digits_images  # noqa: E402

    t0 = time.perf_counter()
    images, labels = digits_images(args.size)
    img_dir = os.path.join(out, "audit_workflow_images")
    os.makedirs(img_dir, exist_ok=True)
    paths = []
    for i, im in enumerate(images):
        p = os.path.join(img_dir, f"digit_{i:04d}.png")
        if not os.path.exists(p):
            Image.fromarray(im).save(p)
        paths.append(p)

    name = "vog-audit-workflow"
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name)
    classes = [str(c) for c in range(10)]
    ds.add_samples(
        [fo.Sample(filepath=p, ground_truth=fo.Classification(label=classes[y])) for p, y in zip(paths, labels)]
    )
    ds.classes["ground_truth"] = classes
    ds.save()

    # 1. the audit: a seeded 20% of the labels replaced with another class, flagged
    summary = fov.shuffle_labels(ds, fraction=args.fraction, seed=args.seed)
    print(f"shuffled {summary['shuffled']} of {summary['labeled']} labels")

    # 2. train on the dataset's labels as they now are, one checkpoint per epoch, until they are fitted
    if args.epochs is None:
        args.epochs = RECIPE["epochs"]

    def factory():
        return import_callable(RECIPE["model"])(num_classes=10, in_channels=1, width=RECIPE["width"])

    filepaths, train_labels = ds.values(["filepath", "ground_truth.label"])
    x = (
        torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("L")) for p in filepaths]))
        .float()
        .div(255)[:, None]
    )
    y = torch.tensor([classes.index(c) for c in train_labels])
    ckpt_dir = os.path.join(out, "audit_workflow_ckpts")
    torch.manual_seed(0)
    accs = []
    model = factory()
    train_classifier(
        model,
        x,
        y,
        epochs=args.epochs,
        saver=CheckpointSaver(ckpt_dir),
        optimizer=RECIPE["optimizer"],
        lr=RECIPE["lr"],
        batch_size=RECIPE["batch_size"],
        log=lambda e, loss, acc: accs.append(acc),
    )
    with torch.no_grad():  # in eval mode, as VoG sees the model (training accuracy is in train mode)
        fits = torch.cat([model(x[i : i + 512]).argmax(1) for i in range(0, len(x), 512)]) == y
    flagged = torch.tensor([bool(v) for v in ds.values("label_shuffled")])
    print(
        f"trained {args.epochs} epochs; final train accuracy on the shuffled labels {accs[-1]:.3f}; the trained "
        f"model fits {fits[flagged].float().mean():.1%} of the shuffled and {fits[~flagged].float().mean():.1%} "
        "of the clean labels"
    )

    # 3. VoG over the checkpoints, on the labels the model was trained with
    ckpts = [os.path.join(ckpt_dir, f"epoch_{e}.pt") for e in range(1, args.epochs + 1)]
    res = fov.compute_vog(ds, ckpts, model=factory, transform="gray", overwrite=True, batch_size=256)

    # 4. the saved views and the statistics of the audit
    views = fov.save_vog_views(ds, percentile=10)
    counts = views.counts()  # now: the views are queries, and restore_labels below removes the flag
    high = views["vog-high"]
    flagged_in_high = high.values("label_shuffled").count(True)
    tt = analysis.welch_ttest_from_view(ds, "vog", flag_field="label_shuffled")
    det = analysis.detection_metrics_from_view(ds, "vog", flag_field="label_shuffled", ks=(50, 180))
    csv_path = fov.export_vog_subset(
        "vog-shuffled-labels",
        os.path.join(out, "audit_workflow_export"),
        dataset=ds,
        dataset_type="csv",
        overwrite=True,
    )
    fov.restore_labels(ds)

    result = {
        "command": "python examples/audit_workflow.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "samples": len(ds),
        "shuffled": summary["shuffled"],
        "epochs": args.epochs,
        "final_train_accuracy": accs[-1],
        "fits_shuffled": float(fits[flagged].float().mean()),
        "fits_clean": float(fits[~flagged].float().mean()),
        "views": counts,
        "vog_high_share_shuffled": flagged_in_high / len(high),
        "base_rate": summary["shuffled"] / summary["labeled"],
        "welch": tt.to_dict(),
        "auroc": det.auroc,
        "auprc": det.auprc,
        "precision_at_k": det.precision_at_k,
        "csv": csv_path,
        "vog_seconds": res.timings["total"],
        "total_seconds": time.perf_counter() - t0,
    }
    with open(os.path.join(out, "audit_workflow.json"), "w") as f:
        json.dump(analysis.to_jsonable(result), f, indent=2)
    print(
        f"VoG shuffled μ={tt.mean_flagged:.3f} σ={tt.std_flagged:.3f} (N={tt.n_flagged}) vs clean "
        f"μ={tt.mean_other:.3f} σ={tt.std_other:.3f} (N={tt.n_other}); Welch t={tt.t:.2f}, p={tt.p_value:.2g}\n"
        f"AUROC {det.auroc:.3f}, AUPRC {det.auprc:.3f} (base rate {result['base_rate']:.3f}); "
        f"vog-high holds {flagged_in_high}/{len(high)} shuffled samples\n"
        f"total {result['total_seconds']:.0f}s"
    )
    ds.delete()
    return result


if __name__ == "__main__":
    main()
