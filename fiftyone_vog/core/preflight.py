"""Checks made before any work: one rule each, called by ``compute_vog``'s up-front validation
and by the App's form (``resolve_input``, on every keystroke), so both say the same thing.

Each function raises :class:`VoGError` with the one-line message of the run. The one that loads
a checkpoint caches its answer by path, modification time and size, so typing stays fast.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence

import torch

from ..engine import VoGError, resolve_device

#: Suffixes of image files: a checkpoint glob that matches these matched the dataset's media.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def check_device(device) -> torch.device:
    """The device to run on; a device that does not exist on this machine is refused."""
    if device is not None and not isinstance(device, torch.device):
        try:
            torch.device(device)
        except (RuntimeError, TypeError):
            raise VoGError(f"device={device!r} is not a device; use 'cpu', 'cuda' or 'cuda:N'") from None
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise VoGError(
            f"device={str(dev)!r} does not exist: this machine has {torch.cuda.device_count()} "
            f"CUDA device(s) (cuda:0 … cuda:{torch.cuda.device_count() - 1})"
        )
    return dev


def check_checkpoint_files(
    paths: Sequence[os.PathLike], allow_torchscript: bool = False, allow_import: bool = True
) -> None:
    """Refuse image files among the checkpoints (a glob such as ``data/*`` that matched media).

    An image that is also a TorchScript archive (one appended to a valid PNG) is refused as
    TorchScript first, the message that matters; with ``allow_torchscript`` it is still an image."""
    from ..inputs.checkpoints import _refuse_code, is_torchscript

    images = [os.fspath(p) for p in paths if os.fspath(p).lower().endswith(IMAGE_SUFFIXES)]
    if not allow_torchscript:
        for path in images:
            if is_torchscript(path):
                raise _refuse_code(path, "torchscript", allow_import)
    if images:
        raise VoGError(
            f"the checkpoints include image files ({os.path.basename(images[0])}"
            + (f" and {len(images) - 1} more" if len(images) > 1 else "")
            + "), not training checkpoints; point the glob at the saved weights, e.g. runs/exp1/epoch_*.pt"
        )


def check_labels(samples, label_field: str, label_mode: str) -> None:
    """``label_mode='true'`` needs a label on every sample of ``samples`` (counted, not read)."""
    import fiftyone as fo

    field = samples.get_field_schema().get(label_field)
    if label_mode != "true" or getattr(field, "document_type", None) is not fo.Classification:
        return  # a missing or non-Classification label field is read_view's error
    missing = len(samples) - samples.count(f"{label_field}.label")
    if missing:
        raise VoGError(
            f"{missing} samples have no {label_field!r} label; label_mode='true' needs labels — use "
            "label_mode='auto' (true label where present, the model's prediction elsewhere)"
        )


def check_output_fields(samples, fields: Sequence[str], what: str = "vog_field", key: str | None = None) -> None:
    """The output fields may exist only as float fields that the ownership record
    (:mod:`.ownership`) lists as the VoG run ``key``'s — registered or not (a killed write's, an
    interrupted run's), which rewriting replaces. Any other type is another field's data; a field
    of another VoG run is that run's; a field no record lists is the user's: no overwrite
    replaces any of them."""
    import fiftyone as fo

    from . import ownership

    ds = samples._dataset
    schema = ds.get_field_schema()
    for name in fields:
        if name in schema and not isinstance(schema[name], fo.FloatField):
            raise VoGError(f"field {name!r} exists with type {type(schema[name]).__name__}; choose another {what}")
    if key is None:
        return
    for name in fields:
        if name not in schema:
            continue
        owner = ownership.owner_of(ds, ownership.FIELD, name)
        if owner == ownership.run_owner(key):
            continue
        if owner is not None and owner.startswith("run:"):
            other = owner.partition(":")[2]
            raise VoGError(
                f"field {name!r} belongs to the VoG run {other!r} of dataset {ds.name!r}; a run never "
                f"writes another run's fields: choose another vog_field or window name, or delete that run "
                f"first (fov.delete_vog_run(dataset, {other!r}))"
            )
        raise VoGError(
            f"field {name!r} exists and no VoG run wrote it; fiftyone-vog never overwrites a field it "
            f"did not write: choose another {what} (or window name), or delete or rename that field yourself"
        )


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 8


def load_one(
    path, model, num_classes, allow_pickle=False, allow_import=True, allow_torchscript=False
) -> torch.nn.Module:
    """Build the architecture and load one checkpoint into it, as the run does
    (:func:`fiftyone_vog.inputs.checkpoints.load_models`): keys or shapes that do not fit raise.

    Cached by (path, mtime, size) and the arguments: a form resolving on every keystroke loads
    each file once.
    """
    from ..inputs import hf
    from ..inputs.checkpoints import load_models

    # a Hugging Face folder: its weights file (rewritten in place, it leaves the folder's own stat alone)
    st = os.stat(hf.weight_files(path)[0] if hf.is_checkpoint_folder(path) else path)
    key = (
        os.path.abspath(path),
        st.st_mtime_ns,
        st.st_size,
        model if isinstance(model, str) or model is None else id(model),
        num_classes,
        bool(allow_pickle),
        bool(allow_import),
        bool(allow_torchscript),
    )
    if key in _CACHE:
        _CACHE.move_to_end(key)
        hit = _CACHE[key]
    else:
        try:
            hit = load_models(
                [path],
                model,
                num_classes=num_classes,
                allow_pickle=allow_pickle,
                allow_torchscript=allow_torchscript,
                allow_import=allow_import,
            )[0]
        except VoGError as e:
            hit = e
        _CACHE[key] = hit
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    if isinstance(hit, VoGError):
        raise VoGError(str(hit))
    return hit


def check_outputs(module: torch.nn.Module, x: torch.Tensor, num_classes: int) -> None:
    """The model takes the images and outputs one score per class (the engine's own check)."""
    import types

    from ..engine import VoGEngine

    module = module.eval()
    shim = types.SimpleNamespace(models=[module], _input=lambda t: t.to(next(module.parameters(), t).dtype))
    VoGEngine.check_output_size(shim, x, num_classes)
