"""From a FiftyOne view to batches of ``(images, labels, sample_ids)``.

Only plain Python lists (ids, filepaths, label indices) are read from the
database, once; images are decoded in the loader's workers. Sample ids travel
with every batch, so the engine places scores by id whatever the loader order.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import struct
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..engine import MISSING_LABEL, VoGError

# torchvision 0.29 deprecates its image decoders in favour of TorchCodec (not a dependency here) and
# warns on every call; they still work, decode straight to tensors, and PIL remains the fallback.
warnings.filterwarnings(
    "ignore", message="The image decoding and encoding capabilities of TorchVision", category=DeprecationWarning
)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

#: Transform presets: name → (PIL mode, builder of the torchvision transform).
TRANSFORM_PRESETS = ("rgb", "gray", "cifar", "imagenet")

#: Environment variable with the most pixels an image may declare (see :func:`image_pixel_limit`).
MAX_PIXELS_ENV = "FIFTYONE_VOG_MAX_IMAGE_PIXELS"


class LoaderError(VoGError):
    """A :class:`VoGError` raised while reading images that stays one line when a DataLoader
    worker raises it: torch re-raises it in the main process as ``LoaderError(<the worker's
    whole traceback>)``; the constructor keeps only the traceback's last line, our message."""

    def __init__(self, message: str = ""):
        message = str(message)
        if "\nOriginal Traceback" in message:
            tag = f"{__name__}.LoaderError: "
            lines = [line for line in message.splitlines() if line.startswith(tag)]
            if lines:
                message = lines[-1][len(tag) :]
        super().__init__(message)


def image_pixel_limit(max_image_pixels: int | None = None) -> int | None:
    """The most pixels an image's header may declare before it is decoded (decompression bombs).

    ``max_image_pixels`` if given, else the environment's ``FIFTYONE_VOG_MAX_IMAGE_PIXELS``, else
    PIL's ``Image.MAX_IMAGE_PIXELS`` (PIL's own default; ``None`` there means no limit). The
    same default as PIL, because torchvision's decoders, used for the presets, never check it.
    """
    value, what = max_image_pixels, "max_image_pixels"
    if value is None:
        value, what = os.environ.get(MAX_PIXELS_ENV, "").strip(), MAX_PIXELS_ENV
        if not value:
            return Image.MAX_IMAGE_PIXELS
    try:
        n = int(value)
        ok = not isinstance(value, bool) and n >= 1 and (not isinstance(value, float) or n == value)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise VoGError(f"{what}={value!r} is not a positive whole number of pixels, e.g. 200000000")
    return n


@contextlib.contextmanager
def _pil_allows(limit: int | None):
    """PIL's own bomb guard (``Image.MAX_IMAGE_PIXELS``) raised to ``limit`` while we read, when the
    user raised our limit above it; otherwise untouched."""
    old = Image.MAX_IMAGE_PIXELS
    raise_it = old is not None and (limit is None or limit > old)
    if raise_it:
        Image.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        if raise_it:
            Image.MAX_IMAGE_PIXELS = old


def _png_size(head: bytes) -> tuple[int, int] | None:
    """A PNG's declared size from its IHDR chunk (in a file's first 24 bytes, ``head``), which
    must come first (what every decoder allocates by); None for another format."""
    if len(head) >= 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    return None


def _pil_size(data: bytes, limit) -> tuple[int, int]:
    """The declared size from the header, which PIL's ``Image.open`` reads without decoding."""
    with _pil_allows(limit), Image.open(io.BytesIO(data)) as img:
        return img.size


def _refuse_mode(img: Image.Image, where: str, what: str) -> LoaderError:
    return LoaderError(
        f"image {where} is a {img.format or 'PIL'} image of mode {img.mode!r} holding {what}, which no bit "
        "depth scales to [0, 1]; convert it to 8- or 16-bit unsigned integers, or leave the sample out of the view"
    )


def deep_values(img: Image.Image, where: str = "") -> np.ndarray | None:
    """The pixels of a single-channel image deeper than 8 bits as float64 in [0, 1], scaled by its
    real bit depth: ``value / 65535`` for 16-bit (PIL modes ``I;16*``, or ``I`` from a PNG),
    ``value / (2**32 - 1)`` for a 32-bit unsigned TIFF (PIL reads it as ``I``, int32). ``None``
    for the 8-bit modes (``L``, ``RGB``, ``P`` …; PIL reads 16-bit RGB(A) TIFFs as 8-bit ``RGB(A)``,
    their top 8 bits). Modes without a known range are refused (:class:`LoaderError`, naming
    format and mode): floating point ``F``, signed integers, ``I`` from other formats."""
    mode = img.mode
    if mode.startswith("I;16"):
        if mode.endswith("S"):
            raise _refuse_mode(img, where, "signed 16-bit integers")
        return np.asarray(img).astype(np.float64) / 65535.0
    if mode == "I":
        if img.format == "PNG":  # older Pillow reads 16-bit grayscale PNGs as "I"
            return np.asarray(img).astype(np.float64) / 65535.0
        tags = getattr(img, "tag_v2", None) or {}
        bits, kind = (tags.get(258) or (0,))[0], (tags.get(339) or (1,))[0]  # BitsPerSample, SampleFormat
        if img.format == "TIFF" and bits == 32 and kind == 1:  # unsigned, read by PIL as int32: the same bits
            return np.asarray(img).view(np.uint32).astype(np.float64) / (2.0**32 - 1)
        signed = img.format == "TIFF" and kind == 2
        raise _refuse_mode(img, where, f"signed {bits}-bit integers" if signed else "integers of unknown bit depth")
    if mode == "F":
        raise _refuse_mode(img, where, "floating-point values (no fixed range)")
    return None


def pil_rgb(img: Image.Image, where: str = "") -> Image.Image:
    """An 8-bit RGB ``PIL.Image`` of ``img``, scaled by its real bit depth (:func:`deep_values`):
    PIL's own ``convert("RGB")`` clips 16- and 32-bit grayscale at 255, which saturates it to white."""
    x = deep_values(img, where)
    if x is not None:
        return Image.fromarray(np.rint(x * 255.0).astype(np.uint8), "L").convert("RGB")
    return img.convert("RGB")


def pil_tensor(img: Image.Image, mode: str, where: str = "") -> torch.Tensor:
    """A C×H×W tensor of ``img`` in PIL mode ``mode`` (``RGB`` or ``L``): uint8 for 8-bit images,
    float32 in [0, 1] for deeper ones (:func:`deep_values`; grayscale repeated on 3 channels for
    ``RGB``), which the presets' ``ToDtype(scale=True)`` leaves as is."""
    from torchvision.transforms.functional import pil_to_tensor

    x = deep_values(img, where)
    if x is None:
        return pil_to_tensor(img.convert(mode))
    t = torch.from_numpy(x.astype(np.float32))[None]
    return t.expand(3 if mode == "RGB" else 1, -1, -1).contiguous()


@functools.cache
def _tv_decode():
    """torchvision's image decoder op, ``torch.ops.image.decode_image(data, mode, apply_exif)``:
    what ``torchvision.io.decode_image`` calls after its per-call deprecation warning and usage
    logging, which cost as much as decoding a 32×32 PNG (docs/performance.md, "CPU threads")."""
    import torchvision.io  # noqa: F401  (registers the op)

    return torch.ops.image.decode_image


def _is_gif(head: bytes) -> bool:
    return head[:6] in (b"GIF87a", b"GIF89a")


def _to_float(x: torch.Tensor) -> torch.Tensor:
    """The ``rgb``/``gray`` presets' conversion, ``ToImage()`` + ``ToDtype(float32, scale=True)``,
    as torchvision's own kernel computes it (the same values) without the per-image dispatch of
    ``Compose``, which cost more than decoding a small PNG."""
    from torchvision.transforms.v2.functional import to_dtype_image

    return to_dtype_image(x, torch.float32, scale=True)


def resolve_transform(
    transform, module=None, model=None, recorded=None, training_args: dict | None = None
) -> tuple[str | dict | Callable, str]:
    """The transform a run uses and where it came from: ``(transform, source)``.

    ``transform`` given (a preset, a ``{"kind": ...}`` description or a callable; not None or
    ``"auto"``): it, ``"argument"``. Otherwise the transform ``recorded`` with the checkpoints (a
    manifest's), ``"manifest"``; else the model's own preprocessing (``module``, built from the
    name ``model``: a timm model's eval transform, see :func:`fiftyone_vog.inputs.kinds.own_preprocessing`)
    as the checkpoints' ``training_args`` (timm's ``train.py``) refine it, ``"checkpoint"``, or
    without them ``"model"``; else the ``"rgb"`` preset, ``"default"``.
    """
    if transform is not None and not (isinstance(transform, str) and transform == "auto"):
        return transform, "argument"
    if recorded is not None:
        return recorded, "manifest"
    if module is not None:
        from .kinds import own_preprocessing

        own = own_preprocessing(module, model, training_args)
        if own is not None:
            return own, "model" if training_args is None else "checkpoint"
    return "rgb", "default"


def transform_record(transform) -> str | dict:
    """What a run config records of a transform: a preset's name or a ``{"kind": ...}``
    description as they are, a callable by its ``repr``."""
    return transform if isinstance(transform, (str, dict)) else f"callable:{transform!r}"


def build_transform(transform: str | dict | Callable | None) -> tuple[str | None, Callable]:
    """Return ``(pil_mode, transform)`` for a preset name, a transform description or a user callable.

    Presets (``None`` and ``"auto"``, which :func:`resolve_transform` turns into the model's own
    preprocessing before, mean ``rgb`` here):
        ``rgb`` (default): RGB, float in [0, 1], original size.
        ``gray``: one channel, float in [0, 1], original size.
        ``cifar``: RGB, resized to 32×32, CIFAR-10 mean/std normalization.
        ``imagenet``: RGB, resize 256, center crop 224, ImageNet mean/std normalization.
    A description ``{"kind": "timm", "data_config": {...}}`` is that library's eval transform
    (:func:`fiftyone_vog.inputs.kinds.kind_transform`), which receives an RGB ``PIL.Image``.
    A callable receives an RGB ``PIL.Image`` and must return a C×H×W float tensor.
    """
    from torchvision.transforms import v2 as T

    to_float = [T.ToImage(), T.ToDtype(torch.float32, scale=True)]
    if isinstance(transform, dict):  # {"kind": "timm", "data_config": {...}}: the library's eval transform
        from .kinds import kind_transform

        return "PIL", kind_transform(transform)
    if transform is None or transform in ("rgb", "auto"):
        return "RGB", _to_float
    if transform == "gray":
        return "L", _to_float
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

    def __init__(
        self,
        ids: Sequence[str],
        filepaths: Sequence[str],
        labels: Sequence[int],
        transform=None,
        max_image_pixels: int | None = None,
    ):
        self.ids, self.filepaths = list(ids), list(filepaths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.mode, self.transform = build_transform(transform)
        self.max_pixels = image_pixel_limit(max_image_pixels)
        if self.mode in ("RGB", "L"):
            from torchvision.io import ImageReadMode

            self._tv_mode = (ImageReadMode.RGB if self.mode == "RGB" else ImageReadMode.GRAY).value

    def __len__(self):
        return len(self.ids)

    def _check_size(self, data: bytes, where):
        """Refuse an image whose header declares more than ``max_pixels`` pixels, before decoding
        (a PNG's IHDR; other formats: PIL's ``Image.open``, which reads the header only)."""
        if self.max_pixels is None:
            return
        try:
            w, h = _png_size(data[:24]) or _pil_size(data, self.max_pixels)
            size, pixels = f"{w}×{h} = {w * h:,} pixels", w * h
        except Image.DecompressionBombError as e:  # over twice PIL's own limit: PIL says how many
            found = re.search(r"\((\d+) pixels\)", str(e))
            pixels = int(found.group(1)) if found else None
            size = f"{pixels:,} pixels" if found else "more pixels than PIL allows"
        if pixels is None or pixels > self.max_pixels:
            raise LoaderError(
                f"image {where} declares {size}, more than the limit of {self.max_pixels:,} (a decompression "
                f"bomb?); nothing was decoded. If the image is genuine, raise the limit: max_image_pixels= "
                f"(CLI: --max-image-pixels; environment: {MAX_PIXELS_ENV})"
            )

    def _read(self, data: bytes, where):
        """Decode the file's bytes ``data`` (read once, by :meth:`__getitem__`). Presets decode
        with torchvision.io (uint8 tensor, no PIL round trip), falling back to PIL for formats it
        does not decode (16-bit and 32-bit images scaled by their bit depth, :func:`pil_tensor`);
        a user's transform receives an 8-bit RGB ``PIL.Image`` (:func:`pil_rgb`).

        An animated or multi-frame image (GIF, APNG, WebP, multi-page TIFF) is read as its first
        frame, one frame's memory: that is what PIL, and so a PIL-based training loader such as
        torchvision's ``ImageFolder``, gives the model. torchvision would decode every frame of a
        GIF (memory grows with the frame count), so GIFs are read by PIL."""
        if self.mode == "PIL":
            with _pil_allows(self.max_pixels), Image.open(io.BytesIO(data)) as img:
                return pil_rgb(img, where)
        if not _is_gif(data[:6]):
            try:
                return _tv_decode()(torch.frombuffer(bytearray(data), dtype=torch.uint8), self._tv_mode, False)
            except Exception:  # a format torchvision does not decode: PIL below
                pass
        with _pil_allows(self.max_pixels), Image.open(io.BytesIO(data)) as img:
            return pil_tensor(img, self.mode, where)

    def _decoded(self, i):
        """Item ``i``'s image as decoded, before the transform, and how messages name it."""
        path = self.filepaths[i]
        where = f"{path} (sample {self.ids[i]})"
        # LoaderError, not VoGError: raised in a loader worker it must stay one line
        try:
            with open(path, "rb", buffering=0) as f:  # one read: the header checks and the decoder share it
                data = f.readall()
            self._check_size(data, where)
            return self._read(data, where), where
        except VoGError:
            raise
        except Exception as e:  # the decoders' messages can quote the file's bytes: only the error's type
            raise LoaderError(
                f"cannot read image {where}: not a readable image file, or truncated or corrupt "
                f"({type(e).__name__}); fix or remove the file, or leave the sample out of the view"
            ) from None

    def __getitem__(self, i):
        img, where = self._decoded(i)
        try:
            x = self.transform(img)
        except Exception as e:
            raise LoaderError(
                f"the transform failed on image {where}: {type(e).__name__}: "
                f"{str(e).splitlines()[0][:300] if str(e) else ''}"
            ) from e  # the user's code: keep its traceback
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            raise LoaderError(f"the transform must return a C×H×W tensor, got {type(x).__name__} for {where}")
        return x.as_subclass(torch.Tensor), int(self.labels[i]), self.ids[i]

    def __getitems__(self, indices):
        """A batch's items, as the DataLoader fetches them. Under the ``rgb`` and ``gray`` presets
        the conversion to float runs once on the stacked batch (elementwise: the same values as
        image by image, at a fraction of the per-image cost); other transforms image by image."""
        if self.transform is not _to_float:
            return [self[i] for i in indices]
        imgs = [self._decoded(i)[0] for i in indices]
        if len({(x.dtype, x.shape) for x in imgs}) == 1:
            stacked = _to_float(torch.stack(imgs))
            items = _Items((x, int(self.labels[i]), self.ids[i]) for i, x in zip(indices, stacked.unbind(0)))
            items.stacked = stacked  # collate takes the batch as it is, instead of stacking its rows again
            return items
        # sizes or bit depths differ: image by image, and collate names the sizes
        return [(_to_float(x), int(self.labels[i]), self.ids[i]) for i, x in zip(indices, imgs)]


class _Items(list):
    """A batch's items that also hold their images already stacked (``stacked``)."""

    stacked: torch.Tensor | None = None


def collate(items):
    if getattr(items, "stacked", None) is not None:
        _, labels, ids = zip(*items)
        return items.stacked, torch.as_tensor(labels, dtype=torch.long), list(ids)
    xs, labels, ids = zip(*items)
    shapes = {tuple(x.shape) for x in xs}
    if len(shapes) > 1:
        raise LoaderError(
            f"images in a batch have different sizes {sorted(shapes)[:3]}; use a transform that "
            "resizes them (transform='cifar', 'imagenet' or your own)"
        )
    return torch.stack(xs), torch.as_tensor(labels, dtype=torch.long), list(ids)


def make_loader(
    dataset: ImageDataset,
    batch_size: int = 64,
    num_workers: int = 0,
    shuffle: bool = False,
    pin_memory: bool = False,
    seed: int | None = None,
):
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


def resolve_classes(
    samples, label_field: str, classes: Sequence[str] | None, labels: Sequence[str | None]
) -> list[str]:
    """``classes=`` if given, else the dataset's classes for the field, else its default
    classes, else the sorted distinct labels."""
    if isinstance(classes, (str, bytes)):
        raise VoGError(
            f"classes= must be a list of class names in the model's output order, e.g. "
            f"['cat', 'dog'], not the string {classes[:50]!r}"
        )
    if classes is not None:
        classes = list(classes)
    else:
        from .labels import declared_classes

        classes = declared_classes(samples, label_field) or sorted({l for l in labels if l is not None})
    if not classes:
        raise VoGError(
            f"no classes: the dataset has no classes for {label_field!r} and no labels; pass classes= "
            "in the model's output order"
        )
    if len(set(classes)) != len(classes):
        dup = next(c for i, c in enumerate(classes) if c in classes[:i])
        raise VoGError(f"classes= lists {dup!r} twice; list each class name once, in the model's output order")
    return [str(c) for c in classes]


def check_label_field(samples, label_field: str) -> None:
    """Raise unless ``label_field`` is a ``fo.Classification`` field of ``samples``."""
    from .labels import check_classification_field

    check_classification_field(samples, label_field)


def read_view(
    samples,
    label_field: str = "ground_truth",
    classes: Sequence[str] | None = None,
    require_labels: bool = True,
    check_files: bool = True,
    classes_from: str | None = None,
) -> ViewData:
    """Read ids, file paths and label indices from a FiftyOne dataset or view.

    ``classes_from``: the file ``classes`` were recorded in (a checkpoint manifest), named when a
    label is not among them.

    Raises :class:`VoGError` for an empty view, a missing / non-Classification label
    field, labels not in ``classes``, missing labels when ``require_labels``, and
    image files that do not exist.
    """
    if len(samples) == 0:
        raise VoGError("the view is empty: there are no samples to score")
    if samples.media_type == "group":
        slices = [k for k, v in samples.group_media_types.items() if v == "image"]
        raise VoGError(
            f"VoG scores images, one per sample; this is a grouped collection: score one image slice, "
            f"e.g. samples.select_group_slices({(slices or ['<slice>'])[0]!r}) (image slices: "
            f"{', '.join(slices) or 'none'})"
        )
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
        shown = f"{classes[:10]}{'...' if len(classes) > 10 else ''}"
        if classes_from is not None:  # the model's classes, as its training recorded them
            raise VoGError(
                f"labels {unknown[:5]} in {label_field!r} are not among the {len(classes)} classes the model "
                f"was trained on, {shown} (recorded in {classes_from}); score a view without them, or check "
                "that these checkpoints belong to this dataset"
            )
        raise VoGError(
            f"labels {unknown[:5]} in {label_field!r} are not among the {len(classes)} classes "
            f"{shown}; pass classes= listing every class in the model's output order"
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
