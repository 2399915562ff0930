"""The fiftyone-vog demo (``make demo``): a VoG audit of scikit-learn's digits, end to end, offline.

What it does, in order (each step prints what it did):

 1. writes the 1,797 digit images as 8×8 grayscale PNG files (their native resolution; the App
    scales them up) under ``OUT/images/``;
 2. builds the persistent FiftyOne dataset ``vog-digits`` (replacing an earlier one): digits 0–7
    split 75/25 into samples tagged ``train`` and ``test`` with a ``ground_truth`` label; digits
    8 and 9 are held out as out-of-distribution samples tagged ``ood``, with no label (their true
    digit is kept in the ``digit`` field);
 3. shuffles 20% of the training labels with ``fov.shuffle_labels`` (flag ``label_shuffled``,
    original in ``ground_truth_original``) — the paper's memorization audit;
 4. trains on the (partly wrong) training labels until it has memorized them, as in the paper,
    saving a checkpoint each epoch with ``CheckpointSaver`` into ``OUT/checkpoints/``: at the
    digits' own 8×8, ``fiftyone_vog.models.SmallCNN`` with SGD for 80 epochs; at any other
    ``--image-size`` (28: MNIST's), the memorizing recipe — ``CifarResNet18W16`` with AdamW for 30
    epochs (``fiftyone_vog.options.MEMORIZING_RECIPE``), since SmallCNN fits only 7% of the
    shuffled labels at 28×28 (``--recipe`` chooses; the demo says when they are not fitted);
 5. computes VoG: ``vog`` on the training split with its (shuffled) labels, ``vog_test`` on test +
    OOD with ``label_mode="auto"`` (true label where there is one, else the model's prediction),
    both with early / middle / late windows and the softmax-probability target (``--target``; on
    digits it separates memorized and OOD samples, the logit does not — see docs/results.md);
    stores the last checkpoint's predictions in ``predictions``;
 6. saves the views ``vog-high``, ``vog-low``, ``vog-shuffled-labels``, ``vog-label-errors``
    (training split, ``vog``) and ``vog-test-high``, ``vog-test-low``, ``vog-ood``,
    ``vog-likely-ood`` (test + OOD, ``vog_test``, with ``save_vog_views(..., name_prefix="vog-test",
    names={"ood": "vog-ood", "likely-ood": "vog-likely-ood", ...})``);
 7. writes the reports ``OUT/report/train/report.html`` and ``OUT/report/test/report.html``, and
    prints their summaries: the detectors side by side, best first, and which field to open;
 8. exports the ``vog-high`` subset as a class-folder tree to ``OUT/export/vog-high/``;
 9. prints what to look at and how to open the App.

    python examples/demo_digits.py                 # the full demo, a few minutes on 2 CPU cores
    python examples/demo_digits.py --size small    # a reduced run (tests): 320 images, 6 epochs
    python examples/demo_digits.py --image-size 28 # MNIST-sized images, the memorizing recipe

Everything the demo writes lives under ``--out`` (default ``out/``); the dataset's media are the
PNGs there, so ``make clean`` (which deletes ``out/``) leaves the dataset without images until the
demo is run again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")

from fiftyone_vog.options import MEMORIZING_RECIPE  # noqa: E402

import _common as C  # noqa: E402

IN_CLASSES = [str(d) for d in range(8)]  # digits 8 and 9 are the out-of-distribution samples
OOD_DIGITS = (8, 9)
SIZES = {
    # images per class (None: all), training epochs (None: the recipe's)
    "full": dict(per_class=None, epochs=None),
    "small": dict(per_class=32, epochs=6),
}
#: Training recipes, measured to fit the shuffled labels (docs/results.md, *Can the network
#: memorize?*; examples/memorization_fit.py): SmallCNN with SGD at the digits' own 8×8 (96.7%
#: fitted), but only 7% at 28×28, where the ¼-width ResNet-18 with AdamW fits 98.9%. ``--recipe
#: auto`` takes the first at 8×8 and the second at any other size. Models are named by import path,
#: so the App and the CLI can score the checkpoints again.
RECIPES = {
    "smallcnn": dict(
        model="fiftyone_vog.models:SmallCNN", label="SmallCNN", optimizer="sgd", lr=0.05, batch_size=32, epochs=80
    ),
    "memorizing": dict(
        model=MEMORIZING_RECIPE["name"],
        label="CifarResNet18W16",
        optimizer=MEMORIZING_RECIPE["optimizer"],
        lr=MEMORIZING_RECIPE["lr"],
        batch_size=MEMORIZING_RECIPE["batch_size"],
        epochs=MEMORIZING_RECIPE["epochs"],
    ),
}
#: Below this share of shuffled labels fitted, the demo says the audit has nothing to find.
MEMORIZED = 0.9


def choose_recipe(name: str, image_size: int) -> str:
    """``--recipe``: ``auto`` is ``smallcnn`` at the digits' own 8×8 and ``memorizing`` otherwise."""
    if name != "auto":
        return name
    return "smallcnn" if image_size == 8 else "memorizing"


SUBDIRS = ("images", "checkpoints", "report", "export")


def step(n: int, text: str) -> None:
    print(f"\n[{n}/9] {text}", flush=True)


def write_images(out: str, per_class: int | None, side: int = 8, seed: int = 0) -> list[dict]:
    """Write the digits as PNGs; return one record per image (path, digit, split)."""
    from PIL import Image

    images, digits = C.digits_images(side)
    rng = np.random.default_rng(seed)
    keep = np.arange(len(digits))
    if per_class is not None:  # a class-balanced subsample for the small size
        keep = np.sort(np.concatenate([rng.permutation(np.flatnonzero(digits == d))[:per_class] for d in range(10)]))
    in_dist = keep[~np.isin(digits[keep], OOD_DIGITS)]
    train_idx, test_idx = C.split_indices(digits[in_dist], 0.25, seed)
    split = {int(i): "ood" for i in keep if digits[i] in OOD_DIGITS}
    split.update({int(in_dist[i]): "train" for i in train_idx})
    split.update({int(in_dist[i]): "test" for i in test_idx})
    records = []
    for i in keep:
        folder = os.path.join(out, "images", split[int(i)])
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"digit{digits[i]}_{i:04d}.png")
        Image.fromarray(images[i]).save(path)
        records.append({"filepath": os.path.abspath(path), "digit": int(digits[i]), "split": split[int(i)]})
    return records


def build_dataset(name: str, records: list[dict]):
    import fiftyone as fo

    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name, persistent=True)
    samples = []
    for r in records:
        label = None if r["split"] == "ood" else fo.Classification(label=str(r["digit"]))
        samples.append(fo.Sample(filepath=r["filepath"], tags=[r["split"]], ground_truth=label, digit=r["digit"]))
    ds.add_samples(samples, progress=True)
    ds.classes["ground_truth"] = list(IN_CLASSES)
    ds.classes["predictions"] = list(IN_CLASSES)
    ds.info["description"] = (
        "scikit-learn digits for the fiftyone-vog demo: digits 0-7 train/test, 8-9 held out as "
        "out-of-distribution (tag 'ood'), 20% of training labels shuffled"
    )
    ds.save()
    return ds


def read_tensors(view, label_field="ground_truth"):
    """Images of ``view`` as a float tensor (same decoding as compute_vog's default transform)."""
    import torch

    from fiftyone_vog.inputs.images import ImageDataset, read_view

    data = read_view(view, label_field, IN_CLASSES, require_labels=False)
    images = ImageDataset(data.ids, data.filepaths, data.labels)  # transform "rgb": [0, 1] RGB
    x = torch.stack([images[i][0] for i in range(len(images))])
    return data.ids, x, torch.from_numpy(data.labels)


def train(ds, out: str, epochs: int, seed: int, recipe: dict):
    import torch

    from fiftyone_vog.inputs.checkpoints import import_callable
    from fiftyone_vog.inputs.training import CheckpointSaver, train_classifier

    train_view = ds.match_tags("train")
    ids, x, y = read_tensors(train_view)
    shuffled = np.array(train_view.values("label_shuffled"), dtype=bool)
    ckpt_dir = os.path.join(out, "checkpoints")
    saver = CheckpointSaver(ckpt_dir, every=1)
    torch.manual_seed(seed)
    model = import_callable(recipe["model"])(num_classes=len(IN_CLASSES))
    t0 = time.perf_counter()

    def log(epoch, loss, acc):
        print(
            f"  epoch {epoch:3d}/{epochs}  loss {loss:.3f}  train accuracy {acc:.3f}  "
            f"({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )

    train_classifier(
        model,
        x,
        y,
        epochs=epochs,
        saver=saver,
        optimizer=recipe["optimizer"],
        lr=recipe["lr"],
        batch_size=recipe["batch_size"],
        seed=seed,
        log=log,
    )
    with torch.no_grad():
        model.eval()
        fit = torch.cat([model(x[i : i + 512]).argmax(1) for i in range(0, len(x), 512)]) == y
        fit = fit.numpy()
    print(
        f"  the trained model fits {fit[~shuffled].mean():.1%} of the clean and {fit[shuffled].mean():.1%} "
        f"of the shuffled training labels"
    )
    if fit[shuffled].mean() < MEMORIZED:
        print(
            f"  note: under {MEMORIZED:.0%} of the shuffled labels are fitted, so the shuffled-label audit "
            "(vog-shuffled-labels) has little to find: the network has not memorized them. Train longer "
            "(--epochs) or with the memorizing recipe (--recipe memorizing; docs/results.md)"
        )
    return model, saver.paths


def store_predictions(ds, model) -> None:
    """The trained model's prediction for every sample, as a ``predictions`` Classification."""
    import fiftyone as fo
    import torch

    ids, x, _ = read_tensors(ds)
    with torch.no_grad():
        probs = torch.softmax(model.eval()(x), 1)
    conf, pred = probs.max(1)
    labels = [fo.Classification(label=IN_CLASSES[p], confidence=float(c)) for p, c in zip(pred.tolist(), conf.tolist())]
    ds.set_values("predictions", dict(zip(ids, labels)), key_field="id")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description="fiftyone-vog demo: a VoG audit of scikit-learn's digits",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1],
    )
    ap.add_argument("--size", choices=sorted(SIZES), default="full", help="full (default) or small (for tests)")
    ap.add_argument("--out", default="out", help="folder for images, checkpoints, report and export (default: out)")
    ap.add_argument("--dataset-name", default="vog-digits", help="FiftyOne dataset to (re)create (default: vog-digits)")
    ap.add_argument(
        "--epochs", type=int, help="training epochs, one checkpoint each (default: the recipe's, 80 or 30; small: 6)"
    )
    ap.add_argument(
        "--recipe",
        choices=["auto", *RECIPES],
        default="auto",
        help="training recipe: smallcnn (SmallCNN, SGD, 80 epochs), memorizing (¼-width ResNet-18, AdamW, "
        "30 epochs: fits shuffled labels on MNIST-sized images); default auto: smallcnn at 8×8, else memorizing",
    )
    ap.add_argument(
        "--image-size",
        type=int,
        default=8,
        help="side of the PNGs in pixels (default 8, the data's own; larger sizes are bilinear "
        "upscales and train more slowly)",
    )
    ap.add_argument(
        "--target",
        choices=["probability", "logit"],
        default="probability",
        help="score whose input gradient VoG takes (default probability, see docs/results.md)",
    )
    ap.add_argument("--seed", type=int, default=0, help="split, shuffle and training seed (default: 0)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: these small models gain nothing from more, and lose a lot "
        "when the cores are busy)",
    )
    args = ap.parse_args(argv)
    cfg = dict(SIZES[args.size])
    recipe = RECIPES[choose_recipe(args.recipe, args.image_size)]
    epochs = args.epochs or cfg["epochs"] or recipe["epochs"]
    if epochs < 2:
        ap.error("--epochs must be at least 2 (VoG needs two checkpoints)")
    out = os.path.abspath(args.out)
    t_start = time.perf_counter()

    import torch

    torch.set_num_threads(args.threads)
    import fiftyone as fo

    import fiftyone_vog as fov

    step(1, f"writing the digit images under {out}/images")
    os.makedirs(out, exist_ok=True)
    for sub in SUBDIRS:  # only the demo's own folders: --out may hold other things
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    records = write_images(out, cfg["per_class"], args.image_size, seed=args.seed)
    counts = {s: sum(r["split"] == s for r in records) for s in ("train", "test", "ood")}
    print(
        f"  {len(records)} images ({args.image_size}×{args.image_size} PNG): {counts['train']} train, {counts['test']} test, "
        f"{counts['ood']} out-of-distribution (digits 8, 9)"
    )

    step(2, f"building the FiftyOne dataset {args.dataset_name!r}")
    ds = build_dataset(args.dataset_name, records)
    print(f"  {len(ds)} samples, tags {ds.count_sample_tags()}")

    step(3, "shuffling 20% of the training labels (fov.shuffle_labels)")
    info = fov.shuffle_labels(ds.match_tags("train"), fraction=0.2, seed=51 + args.seed)
    print(
        f"  {info['shuffled']} of {info['labeled']} training labels replaced by a wrong class; flag "
        f"'{info['flag_field']}', originals in '{info['original_field']}'"
    )

    step(
        4,
        f"training {recipe['label']} ({recipe['optimizer']}, lr {recipe['lr']}) for {epochs} epochs, one checkpoint "
        "per epoch (CheckpointSaver)",
    )
    model, checkpoints = train(ds, out, epochs, args.seed, recipe)
    print(f"  checkpoints: {out}/checkpoints/epoch_1.pt … epoch_{epochs}.pt")

    step(5, f"computing VoG over the checkpoints (fov.compute_vog, target={args.target!r})")
    windows = "thirds" if epochs >= 6 else None
    common = dict(
        checkpoints=checkpoints,
        model=recipe["model"],
        windows=windows,
        target=args.target,
        progress=True,
        overwrite=True,
    )
    print("  training split, true (partly shuffled) labels → field 'vog'")
    res_train = fov.compute_vog(ds.match_tags("train"), label_mode="true", vog_field="vog", **common)
    print("  test + OOD, label_mode='auto' (OOD samples scored on the model's prediction) → field 'vog_test'")
    res_test = fov.compute_vog(ds.match_tags(["test", "ood"]), label_mode="auto", vog_field="vog_test", **common)
    store_predictions(ds, model)
    test = ds.match_tags("test")
    acc = np.mean([g == p for g, p in zip(*test.values(["ground_truth.label", "predictions.label"]))])
    print(
        f"  {len(res_train.ids)} + {len(res_test.ids)} samples scored in "
        f"{res_train.timings['total'] + res_test.timings['total']:.1f}s; test accuracy of the last checkpoint {acc:.3f}"
    )

    step(6, "saving the views (fov.save_vog_views)")
    # the training split by `vog`: vog-high, vog-low, vog-shuffled-labels, vog-label-errors (by vog_loss;
    # it holds no OOD sample)
    train_views = fov.save_vog_views(
        ds.match_tags("train"), vog_field="vog", percentile=10, names={"ood": None, "likely-ood": None}
    )
    # test + OOD by `vog_test`: vog-test-high, vog-test-low, vog-ood (the tagged 8s and 9s) and
    # vog-likely-ood (every sample, ranked as if nobody had tagged them; no label is shuffled there)
    test_views = fov.save_vog_views(
        ds.match_tags(["test", "ood"]),
        vog_field="vog_test",
        percentile=10,
        name_prefix="vog-test",
        names={"ood": "vog-ood", "likely-ood": "vog-likely-ood", "shuffled-labels": None, "label-errors": None},
    )
    view_counts = {**train_views.counts(), **test_views.counts()}
    for name, n in view_counts.items():
        print(f"  {name:22s} {n:5d} samples — {ds.get_saved_view_info(name)['description']}")

    step(7, f"writing the reports under {out}/report (fov.vog_report)")
    rep_train = fov.vog_report(
        ds.match_tags("train"),
        os.path.join(out, "report", "train"),
        vog_field="vog",
        pred_field="predictions",
        per_class=args.size == "full",
    )
    rep_test = fov.vog_report(
        ds.match_tags(["test", "ood"]),
        os.path.join(out, "report", "test"),
        vog_field="vog_test",
        pred_field="predictions",
        per_class=args.size == "full",
    )

    step(8, "exporting the vog-high subset (fov.export_vog_subset)")
    export_dir = fov.export_vog_subset("vog-high", os.path.join(out, "export", "vog-high"), dataset=ds, overwrite=True)
    print(f"  {view_counts['vog-high']} images in class folders under {export_dir}")

    step(9, "done")
    seconds = time.perf_counter() - t_start
    shuffled_in_high = len(ds.load_saved_view("vog-high").match(fo.ViewField("label_shuffled") == True))  # noqa: E712
    ood_in_test_high = len(ds.load_saved_view("vog-test-high").match_tags("ood"))
    label_errors = ds.load_saved_view("vog-label-errors")
    errors_shuffled = len(label_errors.match(fo.ViewField("label_shuffled") == True))  # noqa: E712
    likely_ood = ds.load_saved_view("vog-likely-ood")
    first = counts["ood"]  # as many as there are held-out digits: R-precision
    ood_first = len(likely_ood.limit(first).match_tags("ood"))
    verdicts = [
        next(x.strip() for x in r["summary"].splitlines() if "Which score:" in x) for r in (rep_train, rep_test)
    ]
    print(f"""
Finished in {seconds:.0f}s. What to look at:
  * {shuffled_in_high} of the {view_counts["vog-high"]} samples in 'vog-high' (top 10% VoG of the training split) have a
    shuffled label, against {info["shuffled"] / info["labeled"]:.0%} of the training split overall; open 'vog-shuffled-labels' to see them all.
  * {ood_in_test_high} of the {view_counts["vog-test-high"]} samples in 'vog-test-high' (top 10% of test + OOD) are held-out digits
    8/9, against {counts["ood"] / (counts["ood"] + counts["test"]):.0%} of test + OOD overall; 'vog-ood' lists them by raw VoG (vog_test_raw).
  * 'vog-label-errors' holds the {view_counts["vog-label-errors"]} training samples whose label had less than even odds
    (mean loss above ln 2): {errors_shuffled} of them are shuffled ({errors_shuffled / max(1, view_counts["vog-label-errors"]):.0%} precision, {errors_shuffled / info["shuffled"]:.0%} recall).
  * 'vog-likely-ood' ranks all of test + OOD without looking at the tags, by {test_views.sorted_by["vog-likely-ood"]}:
    {ood_first} of its first {first} are held-out digits.
  * 'vog-low' holds the most prototypical, easy training digits.
  * Which score to open (from the reports' detector tables):
      training split: {verdicts[0]}
      test + OOD:     {verdicts[1]}
  * Reports: {rep_train["html"]}
             {rep_test["html"]}
  * Export of vog-high: {export_dir}

Open the App (the plugin adds the VoG panel and operators):
  fiftyone-vog install-plugin        # once
  fiftyone app launch {args.dataset_name}
then pick a saved view (vog-high, vog-shuffled-labels, vog-ood, ...) in the view bar, or sort by 'vog'.

To score it again from the App: press ` (the operator browser), choose "Compute VoG", and fill in
  Checkpoints   {os.path.join(os.path.abspath(out), "checkpoints", "epoch_*.pt")}
  Model         {recipe["label"]}  (pick it from the list: this package's architectures need no server switch)
  Label mode    auto  (the OOD samples have no label)
  Target        {args.target}
  Output field  a new name, e.g. vog_app
and press Execute.""")
    return {
        "dataset": ds.name,
        "out": out,
        "checkpoints": [str(p) for p in checkpoints],
        "views": view_counts,
        "reports": [rep_train["html"], rep_test["html"]],
        "export": export_dir,
        "seconds": seconds,
        "shuffled": info["shuffled"],
        "test_accuracy": float(acc),
        "shuffled_in_high": shuffled_in_high,
        "ood_in_test_high": ood_in_test_high,
        "label_errors_shuffled": errors_shuffled,
        "likely_ood_first": ood_first,
        "verdicts": verdicts,
    }


if __name__ == "__main__":
    main()
