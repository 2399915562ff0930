"""Finding checkpoint files, building architectures and loading weights (no FiftyOne).

Supported checkpoint files:

- plain ``state_dict`` files (``.pt``/``.pth``/``.bin``);
- dicts that wrap one: ``{"state_dict": ...}``, ``{"model": ...}``,
  ``{"model_state_dict": ...}``, ``{"net": ...}`` (PyTorch Lightning ``.ckpt``
  files, whose keys carry a ``model.`` prefix, included);
- ``.safetensors`` files;
- TorchScript archives (``torch.jit.save``; no architecture needed);
- whole pickled modules (``torch.save(model)``), only with ``allow_pickle=True``,
  because unpickling can run arbitrary code.

Everything else is loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import difflib
import glob
import hashlib
import importlib
import inspect
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from .engine import VoGError

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors")
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "weights")
_KEY_PREFIXES = ("model.", "module.", "_orig_mod.", "net.")

ModelSpec = str | nn.Module | Callable[[], nn.Module] | None


def natural_key(path: str | os.PathLike) -> list:
    """Sort key that orders ``epoch_2`` before ``epoch_10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def resolve_checkpoints(checkpoints: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Turn a glob, a directory or a list of paths into an ordered list of files.

    A glob or directory is naturally sorted (``epoch_2`` before ``epoch_10``);
    a list keeps the caller's order, which must be the training order.
    """
    if isinstance(checkpoints, (str, os.PathLike)):
        spec = os.path.expanduser(str(checkpoints))
        if os.path.isdir(spec):
            paths = [p for p in os.listdir(spec) if p.endswith(CHECKPOINT_SUFFIXES)]
            paths = [os.path.join(spec, p) for p in paths]
            what = f"directory {spec!r} holds no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)})"
        elif glob.has_magic(spec):
            paths = [p for p in glob.glob(spec) if os.path.isfile(p)]
            what = f"no checkpoint file matches {spec!r}"
        else:
            paths = [spec]
            what = None
        if not paths:
            raise VoGError(f"{what}; pass a glob such as 'runs/exp1/epoch_*.pt' or a list of files")
        paths = sorted(paths, key=natural_key)
    else:
        paths = [os.path.expanduser(str(p)) for p in checkpoints]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise VoGError(f"checkpoint file not found: {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    if len(paths) < 2:
        raise VoGError(
            f"VoG needs at least 2 checkpoints from training, got {len(paths)}; save one every few epochs"
        )
    return [Path(p) for p in paths]


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def is_torchscript(path: str | os.PathLike) -> bool:
    """TorchScript archives are zip files with a ``code/`` folder and ``constants.pkl``."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


def load_checkpoint(path: str | os.PathLike, allow_pickle: bool = False) -> dict[str, torch.Tensor] | nn.Module:
    """Read one checkpoint file: a ``state_dict`` (unwrapped) or, for TorchScript or
    whole pickled modules, an ``nn.Module``."""
    path = str(path)
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(path, device="cpu")
        if is_torchscript(path):
            return torch.jit.load(path, map_location="cpu")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            if allow_pickle:
                obj = torch.load(path, map_location="cpu", weights_only=False)
            elif "Unsupported global" in str(e):  # a valid pickle that needs classes: a whole model
                raise VoGError(
                    f"{path} holds pickled Python objects (a whole model?) that are not loaded by "
                    "default because unpickling can run arbitrary code; save model.state_dict() "
                    "instead, or pass allow_pickle=True (CLI: --allow-pickle) if you trust the file"
                ) from None
            else:
                raise
    except VoGError:
        raise
    except Exception as e:
        raise VoGError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None
    if isinstance(obj, nn.Module):
        return obj
    return unwrap_state_dict(obj, path)


def unwrap_state_dict(obj, path: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the tensor mapping inside common training-checkpoint wrappers."""
    for _ in range(3):
        if not isinstance(obj, dict):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], (dict, nn.Module)):
                obj = obj[key]
                break
        else:
            break
        if isinstance(obj, nn.Module):
            return obj.state_dict()
    raise VoGError(
        f"{path} does not contain a state_dict (expected a dict of tensors, optionally under one of "
        f"{', '.join(_WRAPPER_KEYS)})"
    )


def match_keys(state: dict[str, torch.Tensor], expected: Sequence[str]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (Lightning ``model.``, DDP ``module.``, compile's ``_orig_mod.``)
    while doing so makes more of the architecture's keys match."""
    expected = set(expected)
    for _ in range(3):
        if expected <= state.keys():
            break
        for prefix in _KEY_PREFIXES:
            stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            if len(stripped.keys() & expected) > len(state.keys() & expected):
                state = stripped
                break
        else:
            break
    return state


def import_callable(spec: str) -> Callable:
    """Import ``"package.module:callable"``."""
    module_name, _, attr = spec.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise VoGError(f"cannot import model {spec!r}: {e}") from None
    if not callable(obj):
        raise VoGError(f"model {spec!r} is not callable")
    return obj


#: Architectures that ship with this package, by name; like torchvision's, they are not arbitrary
#: code, so the App may name them without the server's import switch.
PACKAGE_MODELS = {"SmallCNN": "fiftyone_vog.models:SmallCNN", "MLP": "fiftyone_vog.models:MLP"}


def known_architectures() -> list[str]:
    """Every architecture a name stands for without importing user code: this package's
    (short and ``module:callable`` form) and torchvision's classification models."""
    return [*PACKAGE_MODELS, *PACKAGE_MODELS.values(), *torchvision_names()]


def torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _call_factory(factory: Callable, num_classes: int | None) -> nn.Module:
    kwargs = {}
    if num_classes is not None:
        try:
            params = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            params = {}
        if "num_classes" in params or any(p.kind is p.VAR_KEYWORD for p in params.values()):
            kwargs["num_classes"] = num_classes
    module = factory(**kwargs)
    if not isinstance(module, nn.Module):
        raise VoGError(f"the model factory returned {type(module).__name__}, not an nn.Module")
    return module


def model_factory(model: ModelSpec, num_classes: int | None = None, allow_import: bool = True) -> Callable[[], nn.Module] | None:
    """Return a function that builds one fresh instance of the architecture.

    ``model`` is a torchvision name (``"resnet18"``, built with ``weights=None`` and
    ``num_classes``), ``"package.module:callable"``, an ``nn.Module`` (deep-copied), a
    zero-argument factory, or ``None`` (checkpoints carry their own modules).
    """
    if model is None:
        return None
    if isinstance(model, nn.Module):
        return lambda: copy.deepcopy(model)
    if isinstance(model, str):
        model = PACKAGE_MODELS.get(model, model)
        if ":" in model:
            if not allow_import and model not in PACKAGE_MODELS.values():
                raise VoGError(
                    f"model {model!r} would import Python code on the server, which is disabled; the "
                    "server's owner can allow it by setting FIFTYONE_VOG_ALLOW_IMPORTS=1"
                )
            factory = import_callable(model)
            return lambda: _call_factory(factory, num_classes)
        import torchvision

        names = torchvision_names()
        if model not in names:
            close = difflib.get_close_matches(model, names, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see torchvision.models.list_models()"
            raise VoGError(f"unknown torchvision architecture {model!r}{hint}")
        kwargs = {"weights": None}
        if num_classes is not None:
            kwargs["num_classes"] = num_classes
        return lambda: torchvision.models.get_model(model, **kwargs)
    if callable(model):
        return lambda: _call_factory(model, num_classes)
    raise VoGError(f"model must be a torchvision name, 'package.module:callable', an nn.Module or a factory; got {type(model).__name__}")


def load_models(
    paths: Sequence[str | os.PathLike],
    model: ModelSpec = None,
    num_classes: int | None = None,
    allow_pickle: bool = False,
    allow_import: bool = True,
) -> list[nn.Module]:
    """Build one module per checkpoint and load its weights (strictly), on the CPU.

    Every checkpoint is checked before any gradient is computed: a corrupt file or
    weights that do not fit the architecture raise :class:`VoGError` naming the file.
    """
    factory = model_factory(model, num_classes, allow_import=allow_import)
    models = []
    for path in paths:
        obj = load_checkpoint(path, allow_pickle=allow_pickle)
        if isinstance(obj, nn.Module):
            models.append(obj)
            continue
        if factory is None:
            raise VoGError(
                f"{path} holds weights only; pass model= (a torchvision name such as 'resnet18', "
                "'package.module:callable' or an nn.Module) to say which architecture they belong to"
            )
        module = factory()
        state = match_keys(obj, module.state_dict().keys())
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as e:
            msg = str(e).split("\n\t", 1)[-1].replace("\n\t", " ")
            hint = ""
            if num_classes is not None and "size mismatch" in msg:
                hint = (f" (the architecture was built with num_classes={num_classes}; if the checkpoint has "
                        "another output size, check classes= or pass num_classes=)")
            raise VoGError(f"{path} does not fit the architecture: {msg[:600]}{hint}") from None
        models.append(module)
    return models
