"""Finding checkpoint files, building architectures and loading weights (no FiftyOne).

Supported checkpoint files:

- plain ``state_dict`` files (``.pt``/``.pth``/``.bin``);
- dicts that wrap one: ``{"state_dict": ...}``, ``{"model": ...}``,
  ``{"model_state_dict": ...}``, ``{"net": ...}`` (PyTorch Lightning ``.ckpt``
  files, whose keys carry the LightningModule's attribute as a prefix, ``model.`` or any other,
  included; timm training checkpoints ``checkpoint-*.pth.tar``, whose ``args`` is an
  ``argparse.Namespace``, too: ``state_dict`` by default, ``state_dict_key="state_dict_ema"``
  for their EMA weights);
- ``.safetensors`` files;
- TorchScript archives (``torch.jit.save``; no architecture needed), only with
  ``allow_torchscript=True``: an archive is a program (its ``__setstate__`` and ``forward``
  run on load and call), recognised by content, not by name (also hidden inside another file);
- whole pickled modules (``torch.save(model)``), only with ``allow_pickle=True``,
  because unpickling can run arbitrary code.

Everything else is loaded with ``torch.load(weights_only=True)``. Error messages never quote a
file's bytes.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import glob
import hashlib
import importlib
import inspect
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import VoGError, check_path_text
from . import hf
from .kinds import kind_factory, timm_script_args, timm_script_model
from .manifest import Manifest, read_manifest

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".pth.tar")
#: Files a folder listing leaves out: copies of another checkpoint that trainers keep beside them
#: (Lightning's ``save_last``, timm's ``train.py``), which VoG would count twice.
FOLDER_SKIPS = ("last.ckpt", "last.pth.tar", "model_best.pth.tar")
_FOLDER_SKIP_PREFIXES = ("recovery-",)  # timm's mid-epoch recovery checkpoints
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module", "weights")
_KEY_PREFIXES = ("model.", "module.", "_orig_mod.", "net.")

_EXAMPLE = "fiftyone_vog.models:SmallCNN"  # a model spec that works, for messages

ModelSpec = str | nn.Module | Callable[[], nn.Module] | None


def natural_key(path: str | os.PathLike) -> list:
    """Sort key that orders ``epoch_2`` before ``epoch_10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def checkpoint_entries(checkpoints) -> list[str]:
    """The paths or patterns ``checkpoints`` names: ``[spec]`` for a glob, a directory or one file
    (``str`` or path), the list's items for a list; :class:`VoGError` for anything else (an
    ``int``, a ``dict``, a list holding a non-path, a NUL byte), before any file is touched."""
    what = (
        "checkpoints must be a glob such as 'runs/exp1/epoch_*.pt', a directory, or a list of "
        "checkpoint files in training order"
    )
    if isinstance(checkpoints, (str, os.PathLike)):
        entries = [checkpoints]
    elif isinstance(checkpoints, (bytes, dict, set, frozenset)) or not isinstance(checkpoints, Iterable):
        raise VoGError(f"{what}; got {type(checkpoints).__name__}")
    else:
        entries = list(checkpoints)
    for e in entries:
        if not isinstance(e, (str, os.PathLike)):
            raise VoGError(f"{what}; the list holds {type(e).__name__} {str(e)[:50]!r}, not a path")
    return [check_path_text("checkpoint path", os.fspath(e)) for e in entries]


def resolve_checkpoints(checkpoints: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Turn a glob, a directory or a list of paths into an ordered list of files (or of Hugging
    Face checkpoint folders, :mod:`fiftyone_vog.inputs.hf`).

    A directory with a manifest (``vog_checkpoints.json``, :mod:`fiftyone_vog.inputs.manifest`)
    gives its checkpoints in its training order. Otherwise a glob or directory is naturally sorted
    (``epoch_2`` before ``epoch_10``), a directory leaving out :data:`FOLDER_SKIPS`;
    a list keeps the caller's order, which must be the training order. A Trainer's output folder
    gives its ``checkpoint-{step}`` folders by step; a glob may match such folders.
    """
    entries = checkpoint_entries(checkpoints)
    manifest = None
    if isinstance(checkpoints, (str, os.PathLike)):
        spec = os.path.expanduser(entries[0])
        manifest = read_manifest(spec) if os.path.isdir(spec) else None
        # a directory and a glob list the same way: sub-directories are skipped, a broken symlink is
        # kept and refused below (skipping it would silently score fewer checkpoints)
        if manifest is not None:
            paths = [str(p) for p in manifest.paths()]
            what = f"{manifest.path} lists no checkpoints"
        elif os.path.isdir(spec) and (found := hf.trainer_folders(spec)) is not None:  # Trainer's output folder
            paths, what = found, None
        elif hf.is_checkpoint_folder(spec):
            raise VoGError(
                f"{spec} is one Hugging Face checkpoint; VoG needs several from training: pass the Trainer's "
                f"output folder ({os.path.dirname(os.path.normpath(spec)) or '.'}) or a glob such as "
                f"'{os.path.join(os.path.dirname(os.path.normpath(spec)), 'checkpoint-*')}'"
            )
        elif os.path.isdir(spec):
            paths = [p for p in os.listdir(spec) if p.endswith(CHECKPOINT_SUFFIXES) and not _skipped(p)]
            paths = [q for q in (os.path.join(spec, p) for p in paths) if not os.path.isdir(q)]
            what = f"directory {spec!r} holds no checkpoint files ({', '.join(CHECKPOINT_SUFFIXES)})"
        elif glob.has_magic(spec):
            paths = [p for p in glob.glob(spec) if not os.path.isdir(p) or hf.is_checkpoint_folder(p)]
            what = f"no checkpoint file matches {spec!r}"
        else:
            paths = [spec]
            what = None
        if not paths:
            raise VoGError(f"{what}; pass a glob such as 'runs/exp1/epoch_*.pt' or a list of files")
        if manifest is None:
            paths = sorted(paths, key=natural_key)
    else:
        paths = [os.path.expanduser(p) for p in entries]
    folders = [p for p in paths if hf.is_checkpoint_folder(p)]
    for folder in folders:
        problem = hf.folder_problem(folder)
        if problem:
            raise VoGError(problem)
    if folders and len(folders) < len(paths):
        raise VoGError(
            f"the checkpoints mix Hugging Face checkpoint folders ({folders[0]}) with other files; list the "
            "checkpoints of one training run, all saved the same way"
        )
    missing = [p for p in paths if not os.path.isfile(p) and p not in folders]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise VoGError(_not_a_file(missing[0]) + more)
    if len(paths) < 2:
        raise VoGError(f"VoG needs at least 2 checkpoints from training, got {len(paths)}; save one every few epochs")
    return [Path(p) for p in paths]


def manifest_of(checkpoints) -> Manifest | None:
    """The manifest of ``checkpoints`` when it is a folder that has one (see
    :mod:`fiftyone_vog.inputs.manifest`), else None."""
    if not isinstance(checkpoints, (str, os.PathLike)):
        return None
    spec = os.path.expanduser(str(checkpoints))
    return read_manifest(spec) if os.path.isdir(spec) else None


def manifest_model(manifest: Manifest | None) -> str | None:
    """The architecture ``manifest`` names, when it names one without code (a timm, torchvision
    or package name); a ``package.module:callable`` is refused: a file's word does not import code."""
    if manifest is None or manifest.model is None:
        return None
    try:
        model_factory(manifest.model, allow_import=False)
    except VoGError as e:
        if "would import Python code" not in str(e):
            raise VoGError(f"{manifest.path}: {e}") from None
        raise VoGError(
            f"{manifest.path} names model {manifest.model!r}, Python code that is not imported on a file's "
            f"word; pass model={manifest.model!r} yourself if you trust it, or save the architecture by name"
        ) from None
    return manifest.model


def training_args(path: str | os.PathLike) -> dict | None:
    """The training script's arguments a checkpoint carries (timm's ``train.py``: its ``args``,
    see :func:`fiftyone_vog.inputs.kinds.timm_script_args`), else None; never raises (the file is
    read again, and its problems reported, when the models load)."""
    try:
        if is_torchscript(path) or str(path).endswith(".safetensors"):
            return None
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None
    return timm_script_args(obj)


def script_model(model: ModelSpec, first: str | os.PathLike) -> tuple[ModelSpec, dict | None]:
    """``(model, training args)``: ``model``, else (None) the architecture a timm training
    script's checkpoint ``first`` names; and that script's arguments (for its eval preprocessing),
    or None."""
    args = training_args(first)  # timm's train.py keeps its arguments in every checkpoint
    if model is None and args is not None:
        model = timm_script_model(args)
    return model, args


def _skipped(name: str) -> bool:
    return name in FOLDER_SKIPS or name.startswith(_FOLDER_SKIP_PREFIXES)


def _not_a_file(path: str) -> str:
    """Why ``path`` is not a checkpoint file, in one line."""
    if not path.strip():
        return "a checkpoint path is empty; list checkpoint files (at least 2, in training order)"
    if os.path.isdir(path):
        return (
            f"checkpoint {path} is a directory, not a file; pass the directory alone as checkpoints= "
            f"(its {', '.join(CHECKPOINT_SUFFIXES)} files, naturally sorted) or list its files"
        )
    if os.path.islink(path):
        return f"checkpoint {path} is a broken symlink (its target does not exist); fix or remove the link"
    return f"checkpoint file not found: {path}"


def check_distinct(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The checkpoints' sha256, refusing the same file twice (the same path, two links to one file,
    or two identical copies): the variance across identical weights is 0 for every sample."""
    hashes = [hf.folder_sha256(p) if os.path.isdir(p) else sha256(p) for p in paths]
    _refuse_repeats(
        paths, hashes, "are the same file (identical sha256): VoG over identical weights is 0 for every sample"
    )
    return hashes


def _refuse_repeats(paths, hashes, why: str) -> None:
    """Refuse the first path whose hash (not ``None``) an earlier path has, naming both."""
    first = {}
    for p, h in zip(paths, hashes):
        if h is not None and h in first:
            raise VoGError(f"checkpoints {first[h]} and {p} {why}; list each training checkpoint once")
        first[h] = p


def weights_sha256(module: nn.Module) -> str | None:
    """Hex sha256 of a loaded model's weights, whatever file held them: every entry of its
    ``state_dict`` (parameters and buffers) and every plain tensor attribute, by name, with its
    name, dtype, shape and bytes. ``None`` for a TorchScript module, whose tensor attributes
    cannot be listed (two archives are then told apart by their files only)."""
    if isinstance(module, torch.jit.ScriptModule):
        return None
    tensors = dict(module.state_dict())
    for prefix, sub in module.named_modules():
        tensors.update({f"{prefix}.{k}".lstrip("."): v for k, v in vars(sub).items() if isinstance(v, torch.Tensor)})
    h = hashlib.sha256()
    for name, t in sorted(tensors.items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def check_distinct_weights(models: Sequence[nn.Module], paths: Sequence[str | os.PathLike]) -> list[str | None]:
    """The loaded models' :func:`weights_sha256`, refusing two checkpoints with the same weights in
    different files (re-saved, wrapped in a training dict, as .safetensors), which
    :func:`check_distinct` cannot see: refused rather than warned, as a file listed twice is,
    because the same weights twice are never two moments of training (with 2 checkpoints every
    score is 0) and the fix is one edit of the list."""
    hashes = [weights_sha256(m) for m in models]
    why = (
        "hold identical weights (the same tensors in two files): VoG over identical weights is 0 "
        "between them (for every sample with 2 checkpoints)"
    )
    _refuse_repeats(paths, hashes, why)
    return hashes


def sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _is_torchscript_name(name: str) -> bool:
    return name == "constants.pkl" or name.endswith("/constants.pkl") or name.startswith("code/") or "/code/" in name


def is_torchscript(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a TorchScript archive, by content whatever its name: a zip archive
    (also one appended to another file, e.g. a valid PNG) with a ``constants.pkl`` record or a
    ``code/`` folder. Both Python's zip reader and torch's own (the one ``torch.jit.load`` uses)
    are asked; reading an archive's directory runs nothing."""
    names = []
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names += z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        pass
    try:
        names += torch._C.PyTorchFileReader(str(path)).get_all_records()
    except Exception:  # not an archive torch can read
        pass
    return any(_is_torchscript_name(n) for n in names)


#: What :func:`load_checkpoint` reads, for error messages.
FORMATS = (
    "torch.save state_dicts or training checkpoints (.pt/.pth/.ckpt/.bin), .safetensors, "
    "TorchScript archives (with allow_torchscript=True) and whole pickled modules (with allow_pickle=True)"
)


def _not_a_checkpoint(path: str) -> VoGError:
    try:
        with open(path, "rb") as f:
            empty = not f.read(1)
    except OSError as e:  # unreadable, not malformed
        return VoGError(f"cannot read checkpoint {path}: {e.strerror or type(e).__name__}")
    what = "the file is empty (0 bytes)" if empty else "it is not a PyTorch checkpoint, or is truncated or corrupt"
    return VoGError(f"cannot read checkpoint {path}: {what}; read are {FORMATS}")


def _is_pickle(path: str) -> bool:
    """A pickle of protocol 2 or later starts with the PROTO opcode (garbage is then not "pickled objects")."""
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"


def _refuse_code(path: str, kind: str, allow_import: bool) -> VoGError:
    """Loading ``path`` would run code from it: the one-line refusal, for the API/CLI or the App."""
    why = {
        "torchscript": "is a TorchScript archive: a program whose code runs when it is loaded and called",
        "pickle": "holds pickled Python objects (a whole model, or classes other than tensors): "
        "unpickling can run arbitrary code",
    }[kind]
    if not allow_import:  # from the App: only the server's owner can allow it
        return VoGError(
            f"checkpoint {path} {why}, which is disabled from the App; save model.state_dict() and "
            "name the architecture, or the server's owner can allow it by setting "
            "FIFTYONE_VOG_ALLOW_IMPORTS=1"
        )
    flag = {
        "torchscript": "allow_torchscript=True (CLI: --allow-torchscript)",
        "pickle": "allow_pickle=True (CLI: --allow-pickle)",
    }[kind]
    return VoGError(
        f"checkpoint {path} {why} on this machine, so it is not loaded by default; save "
        f"model.state_dict() instead and pass model=, or pass {flag} only if you trust the file "
        "and whoever wrote it"
    )


def _torch_load_weights(path: str):
    """``torch.load(weights_only=True)``, also allowing ``argparse.Namespace``: timm's training
    script saves its arguments as one (plain values; rebuilding it runs no code, timm's own loader
    allows it the same way)."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(path, map_location="cpu", weights_only=True)


def load_checkpoint(
    path: str | os.PathLike,
    allow_pickle: bool = False,
    allow_torchscript: bool = False,
    allow_import: bool = True,
    state_dict_key: str | None = None,
    report: dict | None = None,
) -> dict[str, torch.Tensor] | nn.Module:
    """Read one checkpoint file: a ``state_dict`` (unwrapped) or, for TorchScript or
    whole pickled modules, an ``nn.Module``. ``allow_import=False`` (the App without the
    server's switch) only changes the wording of a refusal. ``state_dict_key`` and ``report``:
    see :func:`unwrap_state_dict`."""
    path = str(path)
    try:
        if is_torchscript(path):  # by content, before any reader: whatever the name, also with model=
            if not allow_torchscript:
                raise _refuse_code(path, "torchscript", allow_import)
            return torch.jit.load(path, map_location="cpu")
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            try:
                return load_file(path, device="cpu")
            except Exception:  # the reader's message may quote the header's bytes
                raise VoGError(
                    f"cannot read checkpoint {path}: not a valid .safetensors file (truncated or corrupt)"
                ) from None
        try:
            obj = _torch_load_weights(path)
        except Exception as e:
            refused = "Weights only load failed" in str(e) and ("Unsupported global" in str(e) or _is_pickle(path))
            if not allow_pickle:
                if refused:
                    raise _refuse_code(path, "pickle", allow_import) from None
                raise _not_a_checkpoint(path) from None
            obj = torch.load(path, map_location="cpu", weights_only=False)
    except VoGError:
        raise
    except Exception:  # torch's messages can quote the file's bytes ("invalid load key", KeyError '101')
        raise _not_a_checkpoint(path) from None
    if isinstance(obj, nn.Module):
        return obj
    return unwrap_state_dict(obj, path, state_dict_key, report)


#: timm's training script keeps the EMA weights beside the trained ones under this key.
EMA_KEYS = ("state_dict_ema", "model_ema")


def unwrap_state_dict(
    obj, path: str = "checkpoint", state_dict_key: str | None = None, report: dict | None = None
) -> dict[str, torch.Tensor]:
    """Find the tensor mapping inside common training-checkpoint wrappers.

    ``state_dict_key``: the entry of the checkpoint that holds the weights (e.g. timm's
    ``"state_dict_ema"``); None: the first of ``state_dict``, ``model_state_dict``, ``model``, …
    (the trained weights, not an EMA copy). ``report``, when given, receives ``state_dict_key``
    (the entry used, None for a bare state_dict) and ``ema`` (whether an EMA entry was there)."""
    if report is not None:
        report["state_dict_key"] = None
        report["ema"] = isinstance(obj, dict) and any(isinstance(obj.get(k), dict) for k in EMA_KEYS)
    if state_dict_key is not None:
        entries = sorted(k for k, v in obj.items() if isinstance(v, dict)) if isinstance(obj, dict) else []
        if state_dict_key not in entries:
            raise VoGError(
                f"{path} has no {state_dict_key!r} entry of weights"
                + (f" (its entries: {', '.join(map(str, entries[:10]))})" if entries else "")
                + "; pass another state_dict_key, or none for the trained weights"
            )
        obj = obj[state_dict_key]
        if report is not None:
            report["state_dict_key"] = state_dict_key
    for _ in range(3):
        if not isinstance(obj, dict):
            break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], (dict, nn.Module)):
                obj = obj[key]
                if report is not None and report["state_dict_key"] is None:
                    report["state_dict_key"] = key
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
    """Strip wrapper prefixes (Lightning ``model.``, DDP ``module.``, compile's ``_orig_mod.``,
    or a LightningModule's attribute of any other name, ``backbone.``) while doing so makes more
    of the architecture's keys match; a prefix keeps only the keys under it (a LightningModule's
    other modules, a loss with weights, are left out)."""
    expected = set(expected)
    for _ in range(3):
        if expected <= state.keys():
            break
        # the known wrappers first, then each first component of the keys (a LightningModule's attributes)
        firsts = sorted({k.split(".", 1)[0] + "." for k in state if "." in k} - set(_KEY_PREFIXES))
        for prefix in (*_KEY_PREFIXES, *firsts):
            stripped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            if len(stripped.keys() & expected) > len(state.keys() & expected):
                state = stripped
                break
        else:
            break
    return state


def import_callable(spec: str) -> Callable:
    """Import ``"package.module:callable"``."""
    module_name, _, attr = spec.partition(":")
    if not module_name.strip() or module_name.startswith(".") or not attr.strip():
        raise VoGError(f"model={spec!r} is not 'package.module:callable'; e.g. {_EXAMPLE!r}")
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
PACKAGE_MODELS = {
    "SmallCNN": "fiftyone_vog.models:SmallCNN",
    "MLP": "fiftyone_vog.models:MLP",
    "CifarResNet18": "fiftyone_vog.models:CifarResNet18",
    "CifarResNet18W16": "fiftyone_vog.models:CifarResNet18W16",
}


def known_architectures() -> list[str]:
    """Every architecture a name stands for without importing user code: this package's
    (short and ``module:callable`` form) and torchvision's classification models."""
    return [*PACKAGE_MODELS, *PACKAGE_MODELS.values(), *torchvision_names()]


def torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def _factory_kwargs(factory: Callable, num_classes: int | None, name: str) -> dict:
    """The keyword arguments ``factory`` is called with (``num_classes`` where it takes one), or
    :class:`VoGError` when it needs others: checked on its signature, before it is called."""
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature (some builtins): called bare
        return {}
    params = sig.parameters
    kwargs = {}
    if num_classes is not None and ("num_classes" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())):
        kwargs["num_classes"] = num_classes
    try:
        sig.bind(**kwargs)
    except TypeError:
        needed = [
            p.name
            for p in params.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in kwargs
        ]
        raise VoGError(
            f"model {name} needs arguments ({', '.join(needed)}) to be called; name a class or function that "
            f"builds the model from no arguments (num_classes= is passed when it takes one), e.g. {_EXAMPLE!r}"
        ) from None
    return kwargs


def _call_factory(factory: Callable, kwargs: dict, name: str) -> nn.Module:
    module = factory(**kwargs)
    if not isinstance(module, nn.Module):
        raise VoGError(
            f"model {name} returned {type(module).__name__}, not an nn.Module; name a class or function "
            f"that returns the architecture, e.g. {_EXAMPLE!r}"
        )
    return module


def _checked_factory(factory, num_classes: int | None, name: str) -> Callable[[], nn.Module]:
    """A callable ``model``: an ``nn.Module`` instance is copied, anything else is a factory whose
    arguments are checked now (:func:`_factory_kwargs`) and whose result when it is called."""
    if isinstance(factory, nn.Module):  # callable too (its forward), but not a factory
        return lambda: copy.deepcopy(factory)
    kwargs = _factory_kwargs(factory, num_classes, name)
    return lambda: _call_factory(factory, kwargs, name)


def model_factory(
    model: ModelSpec, num_classes: int | None = None, allow_import: bool = True
) -> Callable[[], nn.Module] | None:
    """Return a function that builds one fresh instance of the architecture.

    ``model`` is a torchvision name (``"resnet18"``, built with ``weights=None`` and
    ``num_classes``), a name of another library's architecture (``"timm:resnet18"``, built with
    ``pretrained=False``, see :mod:`fiftyone_vog.inputs.kinds`), ``"package.module:callable"``, an ``nn.Module`` (deep-copied), a
    zero-argument factory, or ``None`` (checkpoints carry their own modules); ``"hf"`` (or
    ``None``) for Hugging Face checkpoint folders, whose ``config.json`` names the architecture.
    """
    if model is None or model == hf.MODEL:  # the architecture comes with the checkpoints
        return None
    if isinstance(model, nn.Module):
        return lambda: copy.deepcopy(model)
    if isinstance(model, str):
        model = PACKAGE_MODELS.get(model, model)
        factory = kind_factory(model, num_classes)  # "timm:NAME": a library's registry, no user code
        if factory is not None:
            return factory
        if ":" in model:
            if not allow_import and model not in PACKAGE_MODELS.values():
                raise VoGError(
                    f"model {model!r} would import Python code on the server, which is disabled; the "
                    "server's owner can allow it by setting FIFTYONE_VOG_ALLOW_IMPORTS=1"
                )
            return _checked_factory(import_callable(model), num_classes, repr(model))
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
        return _checked_factory(model, num_classes, getattr(model, "__qualname__", type(model).__name__))
    raise VoGError(
        f"model must be a torchvision name, 'package.module:callable', an nn.Module or a factory; got {type(model).__name__}"
    )


def load_models(
    paths: Sequence[str | os.PathLike],
    model: ModelSpec = None,
    num_classes: int | None = None,
    allow_pickle: bool = False,
    allow_import: bool = True,
    allow_torchscript: bool = False,
    state_dict_key: str | None = None,
    report: dict | None = None,
) -> list[nn.Module]:
    """Build one module per checkpoint and load its weights (strictly), on the CPU.

    ``state_dict_key``: which entry of each checkpoint holds the weights (None: the trained
    weights, see :func:`unwrap_state_dict`); ``report`` receives what the first checkpoint used.

    Every checkpoint is checked before any gradient is computed: a corrupt file or
    weights that do not fit the architecture raise :class:`VoGError` naming the file.
    TorchScript archives are refused (before loading) unless ``allow_torchscript``, also
    when ``model`` is given.
    """
    factory = model_factory(model, num_classes, allow_import=allow_import)
    models = []
    for path in paths:
        if hf.is_checkpoint_folder(path):  # config.json's architecture (or model='s), safetensors weights
            models.append(hf.load_folder(path, factory, allow_pickle, allow_import, allow_torchscript))
            continue
        if model == hf.MODEL:
            raise VoGError(
                f"model='hf' builds the architecture of Hugging Face checkpoint folders (config.json + "
                f"{hf.WEIGHTS[0]}), but {path} is a file; pass the Trainer's checkpoint-* folders, or name "
                "the architecture of these files"
            )
        obj = load_checkpoint(
            path,
            allow_pickle=allow_pickle,
            allow_torchscript=allow_torchscript,
            allow_import=allow_import,
            state_dict_key=state_dict_key,
            report=report if not models else None,
        )
        if isinstance(obj, nn.Module):
            models.append(obj)
            continue
        if factory is None:
            raise VoGError(
                f"{path} holds weights only; pass model= (a torchvision name such as 'resnet18', a timm "
                "name such as 'timm:resnet18', 'package.module:callable' or an nn.Module) to say which "
                "architecture they belong to"
            )
        module = factory()
        state = match_keys(obj, module.state_dict().keys())
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as e:
            msg = str(e).split("\n\t", 1)[-1].replace("\n\t", " ")
            hint = ""
            if num_classes is not None and "size mismatch" in msg:
                hint = (
                    f" (the architecture was built for {num_classes} classes; if the checkpoint has "
                    "another output size, check classes= or pass num_classes=)"
                )
            raise VoGError(f"{path} does not fit the architecture: {msg[:600]}{hint}") from None
        models.append(module)
    return models
