"""From a FiftyOne view to batches of ``(images, labels, sample_ids)``.

Only plain Python lists (ids, filepaths, label indices) are read from the
database, once; images are decoded in the loader's workers. Sample ids travel
with every batch, so the engine places scores by id whatever the loader order.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .engine import MISSING_LABEL, VoGError

# torchvision 0.29 deprecates its image decoders in favour of TorchCodec (not a dependency here) and
# warns on every call; they still work, decode straight to tensors, and PIL remains the fallback.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

#: Transform presets: name → (PIL mode, builder of the torchvision transform).
TRANSFORM_PRESETS = ("rgb", "gray", "cifar", "imagenet")


def build_transform(transform: str | Callable | None) -> tuple[str | None, Callable]:
    """Return ``(pil_mode, transform)`` for a preset name or a user callable.

    Presets:
        ``rgb`` (default): RGB, float in [0, 1], original size.
        ``gray``: one channel, float in [0, 1], original size.
        ``cifar``: RGB, resized to 32×32, CIFAR-10 mean/std normalization.
        ``imagenet``: RGB, resize 256, center crop 224, ImageNet mean/std normalization.
    A callable receives an RGB ``PIL.Image`` and must return a C×H×W float tensor.
    """
    from torchvision.transforms import v2 as T

    to_float = [T.ToImage(), T.ToDtype(torch.float32, scale=True)]
    if transform is None or transform == "rgb":
        return "RGB", T.Compose(to_float)
    if transform == "gray":
        return "L", T.Compose(to_float)
    if transform == "cifar":
        return "RGB", T.Compose([T.Resize((32, 32), antialias=True), *to_float, T.Normalize(CIFAR_MEAN, CIFAR_STD)])
    if transform == "imagenet":
        return "RGB", T.Compose(
            [T.Resize(256, antialias=True), T.CenterCrop(224), *to_float, T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        )
    if callable(transform):
        return "PIL", transform
    raise VoGError(f"transform={transform!r} is not a preset ({', '.join(TRANSFORM_PRESETS)}) or a callable")


class ImageDataset(torch.utils.data.Dataset):
    """Images by file path with integer labels; yields ``(tensor, label, sample_id)``."""

    def __init__(self, ids: Sequence[str], filepaths: Sequence[str], labels: Sequence[int], transform=None):
        self.ids, self.filepaths = list(ids), list(filepaths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.mode, self.transform = build_transform(transform)

    def __len__(self):
        return len(self.ids)

    def _read(self, path):
        """Presets decode with torchvision.io (uint8 tensor, no PIL round trip), falling back to
        PIL for formats it does not decode; a user's transform receives an RGB ``PIL.Image``."""
        if self.mode == "PIL":
            with Image.open(path) as img:
                return img.convert("RGB")
        from torchvision.io import ImageReadMode, decode_image

        try:
            return decode_image(path, mode=ImageReadMode.RGB if self.mode == "RGB" else ImageReadMode.GRAY)
        except Exception:
            from torchvision.transforms.functional import pil_to_tensor

            with Image.open(path) as img:
                return pil_to_tensor(img.convert(self.mode))

    def __getitem__(self, i):
        path = self.filepaths[i]
        try:
            img = self._read(path)
        except Exception as e:
            raise VoGError(f"cannot read image {path} (sample {self.ids[i]}): {type(e).__name__}: {e}") from None
        x = self.transform(img)
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            raise VoGError(f"the transform must return a C×H×W tensor, got {type(x).__name__} for {path}")
        return x.as_subclass(torch.Tensor), int(self.labels[i]), self.ids[i]


def collate(items):
    xs, labels, ids = zip(*items)
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) > 1:
        raise VoGError(
            f"images in a batch have different sizes {sorted(shapes)[:3]}; use a transform that "
            "resizes them (transform='cifar', 'imagenet' or your own)"
        )
    return torch.stack(xs), torch.as_tensor(labels, dtype=torch.long), list(ids)


def make_loader(dataset: ImageDataset, batch_size: int = 64, num_workers: int = 0, shuffle: bool = False,
                pin_memory: bool = False, seed: int | None = None):
    """A DataLoader over ``dataset`` whose batches are ``(images, labels, ids)``."""
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        generator=generator,
        persistent_workers=False,
        prefetch_factor=4 if num_workers > 0 else None,
    )


@dataclass
class ViewData:
    """What the engine needs from a FiftyOne view, read once."""

    ids: list[str]
    filepaths: list[str]
    labels: np.ndarray  # (n,) int64, MISSING_LABEL where the sample has no label
    classes: list[str]
    duplicates: int = 0  # repeated occurrences of a sample in the view, left out (each id is read once)


def resolve_classes(samples, label_field: str, classes: Sequence[str] | None, labels: Sequence[str | None]) -> list[str]:
    """``classes=`` if given, else the dataset's classes for the field, else its default
    classes, else the sorted distinct labels."""
    if classes is not None:
        classes = list(classes)
    else:
        ds = samples._dataset
        classes = ds.classes.get(label_field) or ds.default_classes or sorted({l for l in labels if l is not None})
    if not classes:
        raise VoGError(
            f"no classes: the dataset has no classes for {label_field!r} and no labels; pass classes= "
            "in the model's output order"
        )
    if len(set(classes)) != len(classes):
        raise VoGError("classes= contains duplicates")
    return [str(c) for c in classes]


def check_label_field(samples, label_field: str) -> None:
    """Raise unless ``label_field`` is a ``fo.Classification`` field of ``samples``."""
    import fiftyone as fo

    schema = samples.get_field_schema()
    if label_field not in schema:
        fields = [k for k, f in schema.items() if getattr(f, "document_type", None) is fo.Classification]
        hint = f" Classification fields here: {', '.join(fields)}" if fields else " The dataset has no Classification field."
        raise VoGError(f"label field {label_field!r} does not exist.{hint}")
    doc_type = getattr(schema[label_field], "document_type", None)
    if doc_type is not fo.Classification:
        raise VoGError(
            f"label field {label_field!r} is {schema[label_field].__class__.__name__}"
            f"({getattr(doc_type, '__name__', '')}), not a fo.Classification field"
        )


def read_view(samples, label_field: str = "ground_truth", classes: Sequence[str] | None = None,
              require_labels: bool = True, check_files: bool = True) -> ViewData:
    """Read ids, file paths and label indices from a FiftyOne dataset or view.

    Raises :class:`VoGError` for an empty view, a missing / non-Classification label
    field, labels not in ``classes``, missing labels when ``require_labels``, and
    image files that do not exist.
    """
    if len(samples) == 0:
        raise VoGError("the view is empty: there are no samples to score")
    if samples.media_type != "image":
        raise VoGError(f"VoG scores images; this collection's media type is {samples.media_type!r}")
    if not require_labels and classes is not None and label_field not in samples.get_field_schema():
        # unlabeled data scored on the model's predictions: no label field needed
        ids, filepaths = samples.values(["id", "filepath"])
        names = [None] * len(ids)
    else:
        check_label_field(samples, label_field)
        ids, filepaths, names = samples.values(["id", "filepath", f"{label_field}.label"])
    # a view may hold a sample twice (concat): each is scored once, at its first place, so that it
    # counts once in the class statistics and z-scores
    duplicates = len(ids) - len(set(ids))
    if duplicates:
        seen, keep = set(), []
        for i, sid in enumerate(ids):
            if sid not in seen:
                seen.add(sid)
                keep.append(i)
        ids, filepaths, names = ([v[i] for i in keep] for v in (ids, filepaths, names))
    classes = resolve_classes(samples, label_field, classes, names)
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({n for n in names if n is not None and n not in index})
    if unknown:
        raise VoGError(
            f"labels {unknown[:5]} in {label_field!r} are not among the {len(classes)} classes "
            f"{classes[:10]}{'...' if len(classes) > 10 else ''}; pass classes= listing every class in the model's output order"
        )
    labels = np.array([index[n] if n is not None else MISSING_LABEL for n in names], dtype=np.int64)
    if require_labels and (labels == MISSING_LABEL).any():
        missing = int((labels == MISSING_LABEL).sum())
        raise VoGError(
            f"{missing} samples have no {label_field!r} label; label_mode='true' needs labels — use "
            "label_mode='auto' (true label where present, the model's prediction elsewhere)"
        )
    if check_files:
        for sid, path in zip(ids, filepaths):
            if not os.path.isfile(path):
                raise VoGError(f"image file not found: {path} (sample {sid})")
    return ViewData(ids=list(ids), filepaths=list(filepaths), labels=labels, classes=classes, duplicates=duplicates)
