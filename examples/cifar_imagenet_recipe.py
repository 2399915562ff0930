"""Recipe: train on an image-folder dataset (CIFAR-10 / ImageNet style), save checkpoints, score VoG.

The data is a folder of class folders, ``ROOT/<class>/<image>``, or two of them, ``ROOT/train/<class>/…``
and ``ROOT/test/<class>/…`` (``ROOT/val`` is accepted for ``test``). CIFAR-10 as PNGs and ImageNet's
train/val folders have this layout. Nothing is downloaded: bring the data.

    python examples/cifar_imagenet_recipe.py --data-root ~/data/cifar10 --arch resnet18 --epochs 350
    python examples/cifar_imagenet_recipe.py --data-root ~/data/imagenet --arch resnet50 --preset imagenet \\
        --epochs 90 --every 10 --device cuda --num-workers 8
    python examples/cifar_imagenet_recipe.py --quick     # a tiny generated folder, for the tests

Steps: import the folders into FiftyOne (``fo.Dataset.from_dir(..., ImageClassificationDirectoryTree)``,
tags ``train``/``test``); train with SGD and the paper's schedule (lr 0.1, ×0.1 at 3/7 and 5/7 of
the epochs — 150 and 250 of 350 — momentum 0.9, weight decay 5e-4, random crop + flip), saving a
checkpoint every ``--every`` epochs with ``CheckpointSaver``; compute VoG on the training split
(true labels, field ``vog``) and on the test split (``vog_test``), both with early/middle/late
windows; store the final model's ``predictions``; save the views and write the reports.
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

import _common as C  # noqa: E402

SMALLCNN = "fiftyone_vog.models:SmallCNN"
TEST_DIRS = ("test", "val")


def splits(root: str) -> dict[str, str]:
    """``{"train": dir, "test": dir}`` for a train/test layout, else ``{"train": root}``."""
    found = {"train": os.path.join(root, "train")} if os.path.isdir(os.path.join(root, "train")) else {}
    for name in TEST_DIRS:
        if found and os.path.isdir(os.path.join(root, name)):
            found["test"] = os.path.join(root, name)
            break
    return found or {"train": root}


def import_dataset(root: str, name: str, persistent: bool):
    """One FiftyOne dataset with samples tagged by split; returns it and the sorted class list."""
    import fiftyone as fo

    if not os.path.isdir(root):
        raise SystemExit(
            f"--data-root {root!r} is not a folder; expected ROOT/<class>/<image> or ROOT/train/<class>/..."
        )
    if fo.dataset_exists(name):
        fo.delete_dataset(name)
    ds = fo.Dataset(name, persistent=persistent)
    for split, folder in splits(root).items():
        ds.add_dir(
            dataset_dir=folder,
            dataset_type=fo.types.ImageClassificationDirectoryTree,
            label_field="ground_truth",
            tags=[split],
        )
    train_dir = splits(root)["train"]
    classes = sorted(d for d in os.listdir(train_dir) if os.path.isdir(os.path.join(train_dir, d)))
    ds.classes["ground_truth"] = classes
    ds.classes["predictions"] = classes
    ds.save()
    return ds, classes


def transforms(preset: str):
    """(training transform with augmentation, the compute_vog preset); both normalize identically."""
    import torch
    from torchvision.transforms import v2 as T

    from fiftyone_vog.inputs.images import CIFAR_MEAN, CIFAR_STD, IMAGENET_MEAN, IMAGENET_STD

    to_float = [T.ToImage(), T.ToDtype(torch.float32, scale=True)]
    if preset == "cifar":
        train = T.Compose(
            [
                T.Resize((32, 32), antialias=True),
                T.RandomCrop(32, padding=4),
                T.RandomHorizontalFlip(),
                *to_float,
                T.Normalize(CIFAR_MEAN, CIFAR_STD),
            ]
        )
    else:
        train = T.Compose(
            [
                T.RandomResizedCrop(224, antialias=True),
                T.RandomHorizontalFlip(),
                *to_float,
                T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )
    return train, preset


def paper_lr(epoch: int, epochs: int, base: float = 0.1) -> float:
    """The paper's CIFAR schedule scaled to ``epochs``: ×0.1 after 3/7 and after 5/7 of training."""
    return base * (0.1 ** ((epoch > epochs * 3 / 7) + (epoch > epochs * 5 / 7)))


def train(
    ds,
    classes,
    arch: str,
    preset: str,
    epochs: int,
    every: int,
    out: str,
    batch_size: int,
    lr: float,
    device: str,
    num_workers: int,
    seed: int,
):
    """SGD over the ``train`` samples, one checkpoint every ``every`` epochs (and the last)."""
    import torch

    from fiftyone_vog.engine import resolve_device
    from fiftyone_vog.inputs.checkpoints import model_factory
    from fiftyone_vog.inputs.images import ImageDataset, make_loader, read_view
    from fiftyone_vog.inputs.training import CheckpointSaver

    dev = resolve_device(device)
    data = read_view(ds.match_tags("train"), "ground_truth", classes)
    train_tf, _ = transforms(preset)
    loader = make_loader(
        ImageDataset(data.ids, data.filepaths, data.labels, train_tf),
        batch_size=batch_size,
        num_workers=num_workers,
        shuffle=True,
        seed=seed,
        pin_memory=dev.type == "cuda",
    )
    torch.manual_seed(seed)
    model = model_factory(arch, num_classes=len(classes))().to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    ckpt_dir = os.path.join(out, "checkpoints")
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # stale checkpoints of an earlier run must not join this one
    saver = CheckpointSaver(ckpt_dir, every=every)
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        for group in opt.param_groups:
            group["lr"] = paper_lr(epoch, epochs, lr)
        model.train()
        seen = correct = 0
        loss_sum = 0.0
        for x, y, _ in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        saved = saver.save(model, epoch, force=epoch == epochs)
        print(
            f"  epoch {epoch}/{epochs}  lr {paper_lr(epoch, epochs, lr):.4g}  loss {loss_sum / seen:.3f}  "
            f"train accuracy {correct / seen:.3f}  ({time.perf_counter() - t0:.0f}s)"
            + (f"  → {os.path.basename(saved)}" if saved else ""),
            flush=True,
        )
    return model.eval(), saver.paths


def store_predictions(ds, model, classes, preset: str, device: str, batch_size: int) -> None:
    import fiftyone as fo
    import torch

    from fiftyone_vog.engine import resolve_device
    from fiftyone_vog.inputs.images import ImageDataset, make_loader, read_view

    dev = resolve_device(device)
    data = read_view(ds, "ground_truth", classes)
    values = {}
    with torch.no_grad():
        for x, _, ids in make_loader(
            ImageDataset(data.ids, data.filepaths, data.labels, preset), batch_size=batch_size
        ):
            probs = torch.softmax(model(x.to(dev)), 1).cpu()
            conf, pred = probs.max(1)
            values.update(
                {
                    i: fo.Classification(label=classes[p], confidence=float(c))
                    for i, p, c in zip(ids, pred.tolist(), conf.tolist())
                }
            )
    ds.set_values("predictions", values, key_field="id")


def make_tiny_folder(root: str, per_class: int = 12, test_per_class: int = 4, side: int = 32) -> str:
    """A CIFAR-like folder of generated 32×32 RGB images, three classes, train/ and test/."""
    from PIL import Image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side]
    shapes = {
        "disc": lambda cy, cx: (yy - cy) ** 2 + (xx - cx) ** 2 < 60,
        "bar": lambda cy, cx: np.abs(yy - cy) < 3,
        "cross": lambda cy, cx: (np.abs(yy - cy) < 2) | (np.abs(xx - cx) < 2),
    }
    for split, n in (("train", per_class), ("test", test_per_class)):
        for c, (name, shape) in enumerate(shapes.items()):
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                img = rng.uniform(0, 80, (side, side, 3))
                img[shape(*rng.uniform(8, side - 8, 2))] += np.array([170, 60 * c, 40])
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(folder, f"{i:03d}.png"))
    return root


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n")[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--data-root", help="ROOT/<class>/<image> or ROOT/{train,test}/<class>/<image>")
    ap.add_argument("--dataset-name", help="FiftyOne dataset to (re)create (default: vog-<folder name>)")
    ap.add_argument("--arch", default="resnet18", help="torchvision name (resnet18, resnet50, ...) or 'smallcnn'")
    ap.add_argument(
        "--preset",
        choices=["cifar", "imagenet"],
        default="cifar",
        help="cifar: 32×32, CIFAR normalization; imagenet: 224 crops, ImageNet normalization",
    )
    ap.add_argument("--epochs", type=int, default=350, help="training epochs (default 350, the paper's CIFAR run)")
    ap.add_argument("--every", type=int, default=10, help="save a checkpoint every N epochs (default 10, as the paper)")
    ap.add_argument("--lr", type=float, default=0.1, help="initial learning rate (default 0.1)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--num-workers", type=int, default=4)
    ap.add_argument("--device", help="cuda | cpu (default: cuda when available)")
    ap.add_argument("--out", default="out/recipe", help="folder for checkpoints and reports (default out/recipe)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="generate a tiny 3-class folder under OUT/tiny-folder and run SmallCNN for 6 epochs",
    )
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    if args.quick:
        args.data_root = make_tiny_folder(os.path.join(out, "tiny-folder"))
        args.arch, args.preset, args.epochs, args.every, args.lr = "smallcnn", "cifar", 6, 1, 0.05
        args.batch_size, args.num_workers = 12, 0
        args.dataset_name = args.dataset_name or "vog-recipe-quick"
    if not args.data_root:
        ap.error("--data-root is required (or --quick for a generated folder)")
    arch = SMALLCNN if args.arch.lower() == "smallcnn" else args.arch

    import fiftyone_vog as fov

    name = args.dataset_name or f"vog-{os.path.basename(os.path.normpath(args.data_root))}"
    print(f"importing {args.data_root} into FiftyOne dataset {name!r}", flush=True)
    ds, classes = import_dataset(os.path.expanduser(args.data_root), name, persistent=not args.quick)
    print(f"  {len(ds)} samples, {len(classes)} classes, tags {ds.count_sample_tags()}")

    print(f"training {args.arch} for {args.epochs} epochs, a checkpoint every {args.every}", flush=True)
    model, checkpoints = train(
        ds,
        classes,
        arch,
        args.preset,
        args.epochs,
        args.every,
        out,
        args.batch_size,
        args.lr,
        args.device,
        args.num_workers,
        args.seed,
    )
    store_predictions(ds, model, classes, args.preset, args.device, args.batch_size)

    common = dict(
        checkpoints=checkpoints,
        model=arch,
        classes=classes,
        transform=args.preset,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        progress=True,
        overwrite=True,
        windows="thirds" if len(checkpoints) >= 6 else None,
    )
    print("VoG of the training split → 'vog'", flush=True)
    results = {"vog": fov.compute_vog(ds.match_tags("train"), vog_field="vog", **common)}
    fields = [("vog", ds.match_tags("train"))]
    if "test" in ds.count_sample_tags():
        print("VoG of the test split → 'vog_test'", flush=True)
        results["vog_test"] = fov.compute_vog(ds.match_tags("test"), vog_field="vog_test", **common)
        fields.append(("vog_test", ds.match_tags("test")))
    views = fov.save_vog_views(ds.match_tags("train"), vog_field="vog")
    reports = {
        f: fov.vog_report(
            view, os.path.join(out, "report", f), vog_field=f, pred_field="predictions", per_class=len(classes) <= 20
        )["html"]
        for f, view in fields
    }
    rows = []
    for f, view in fields:
        ok = {i: g == p for i, g, p in zip(*view.values(["id", "ground_truth.label", "predictions.label"]))}
        correct = np.array([ok[i] for i in results[f].ids])  # aligned with the scores
        err = fov.analysis.error_by_bin(results[f].scores[f], correct, bins=min(10, len(view)))
        rows.append([f, len(view), err.overall_error, err.error_rate[0], err.error_rate[-1]])
    table = C.print_table(
        ["field", "samples", "error", "error_lowest_bin", "error_highest_bin"],
        rows,
        title="Error of the final model by VoG bin (deciles when there are ≥10 samples)",
    )
    print(f"views: {views.counts()}\nreports: {', '.join(reports.values())}\nopen the App: fiftyone app launch {name}")
    return {
        "dataset": name,
        "checkpoints": [str(p) for p in checkpoints],
        "reports": reports,
        "table": table,
        "views": views.counts(),
    }


if __name__ == "__main__":
    main()
