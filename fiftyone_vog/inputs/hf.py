"""Hugging Face transformers image-classification checkpoints: folders, not files.

A checkpoint here is a folder as ``transformers.Trainer`` (``checkpoint-500/``) and
``save_pretrained`` write it: ``config.json`` (the architecture and ``id2label``, the model's class
order), the weights (``model.safetensors``, or ``pytorch_model.bin``, or shards with their
``*.index.json``) and, when the image processor was saved with it, ``preprocessor_config.json``.
A Trainer's output folder holds them as ``checkpoint-{step}/``, ordered here by step, numerically.

Nothing in a folder runs: the architecture is built by ``AutoModelForImageClassification.from_config``
from ``AutoConfig`` with ``trust_remote_code`` off (a config whose architecture lives in the folder's
own Python files, ``auto_map``, is refused), the weights are read as tensors
(:func:`fiftyone_vog.inputs.checkpoints.load_checkpoint`: safetensors, or ``torch.load`` with
``weights_only=True``) and loaded strictly, the image processor is one of transformers' own
classes built from its JSON. Every call is local (``local_files_only=True``, ``HF_HUB_OFFLINE=1``
set before transformers is first imported): nothing reaches the network.

transformers is the optional extra ``pip install 'fiftyone-vog[transformers]'``; finding and
checking folders (this module's first half) does not import it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from ..errors import VoGError

#: ``model=`` for "the architecture in each checkpoint folder's config.json" (also what a manifest
#: written by :class:`fiftyone_vog.inputs.hf_callback.VoGTrainerCallback` records); leaving
#: ``model=`` out does the same when the checkpoints are such folders.
MODEL = "hf"
EXTRA = "transformers"
CONFIG = "config.json"
PREPROCESSOR = "preprocessor_config.json"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # in the order transformers prefers them
INDEXES = tuple(f"{w}.index.json" for w in WEIGHTS)  # sharded weights
TRAINER_FOLDER = re.compile(r"checkpoint-(\d+)$")
#: id2label names transformers makes up when none were given: the class order is then unknown.
_PLACEHOLDER = re.compile(r"LABEL_(\d+)$")


# -- folders (no transformers needed) ------------------------------------------------------
def is_checkpoint_folder(path) -> bool:
    """Whether ``path`` is a folder meant as a Hugging Face checkpoint: it holds a config.json or
    weights, or is named as Trainer names them (``checkpoint-500``, checked by :func:`folder_problem`:
    skipping a broken one would silently score fewer checkpoints)."""
    if not os.path.isdir(path):
        return False
    if TRAINER_FOLDER.match(os.path.basename(os.path.normpath(path))):
        return True
    return any(os.path.lexists(os.path.join(path, n)) for n in (CONFIG, *WEIGHTS, *INDEXES))


def trainer_folders(directory) -> list[str] | None:
    """A Trainer output folder's ``checkpoint-{step}`` sub-folders, by step (numerically); None
    when ``directory`` has none (it is not a Trainer output folder)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return None
    found = [(int(m.group(1)), n) for n in names if (m := TRAINER_FOLDER.match(n))]
    found = [(step, n) for step, n in found if os.path.isdir(os.path.join(directory, n))]
    if not found:
        return None
    return [os.path.join(directory, n) for _, n in sorted(found)]


def folder_problem(folder) -> str | None:
    """Why ``folder`` is not a loadable checkpoint folder, in one line; None when it is one."""
    if not os.path.isfile(os.path.join(folder, CONFIG)):
        return (
            f"checkpoint folder {folder} has no {CONFIG}; a Hugging Face checkpoint folder holds {CONFIG} "
            f"(the architecture) and {WEIGHTS[0]} or {WEIGHTS[1]} (the weights), as Trainer and "
            "save_pretrained write them"
        )
    try:
        weight_files(folder)
    except VoGError as e:
        return str(e)
    return None


def weight_files(folder) -> list[str]:
    """The weight files of ``folder``: ``model.safetensors``, else ``pytorch_model.bin``, else the
    shards an ``*.index.json`` lists (each inside the folder)."""
    for name in WEIGHTS:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return [path]
    for name in INDEXES:
        index = os.path.join(folder, name)
        if os.path.isfile(index):
            try:
                shards = sorted(set(json.loads(Path(index).read_text(encoding="utf-8"))["weight_map"].values()))
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                raise VoGError(f"cannot read {index}: not a weights index (a 'weight_map' of shard files)") from None
            paths = []
            for shard in shards:
                if not isinstance(shard, str) or os.path.isabs(shard) or ".." in Path(shard).parts:
                    raise VoGError(f"{index} lists shard {shard!r}, not a file inside the folder")
                path = os.path.join(folder, shard)
                if not os.path.isfile(path):
                    raise VoGError(f"{index} lists shard {shard}, which does not exist in {folder}")
                paths.append(path)
            return paths
    raise VoGError(
        f"checkpoint folder {folder} has {CONFIG} but no weights ({' or '.join(WEIGHTS)}); point at the "
        "folders Trainer saved (checkpoint-*), not at a folder with the configuration alone"
    )


def folder_files(folder) -> list[str]:
    """Every file a run reads from ``folder``: config, weights and image processor (if any)."""
    files = [os.path.join(folder, CONFIG), *weight_files(folder)]
    preprocessor = os.path.join(folder, PREPROCESSOR)
    return files + ([preprocessor] if os.path.lexists(preprocessor) else [])


def folder_sha256(folder) -> str:
    """The sha256 of a folder's weights: that of its one weights file, or of its shards' hashes."""
    from .checkpoints import sha256

    hashes = [sha256(p) for p in weight_files(folder)]
    return hashes[0] if len(hashes) == 1 else hashlib.sha256("".join(hashes).encode()).hexdigest()


def read_config(folder) -> dict:
    """``folder``'s config.json as JSON, checked to describe an image classifier that transformers
    builds itself: a config whose architecture is code in the folder (``auto_map``) is refused."""
    path = os.path.join(folder, CONFIG)
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise VoGError(f"cannot read {path}: not a JSON configuration ({type(e).__name__})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise VoGError(f"{path} is not a transformers model configuration (no 'model_type')")
    auto_map = config.get("auto_map")
    if isinstance(auto_map, dict) and any("ImageClassification" in k or k == "AutoConfig" for k in auto_map):
        raise VoGError(
            f"{path} names an architecture defined by Python code in the folder (auto_map: "
            f"{', '.join(map(str, auto_map.values()))[:120]}), which would need trust_remote_code; fiftyone-vog never "
            "runs code from a checkpoint folder: train a built-in transformers architecture, or build the model "
            "yourself and pass it as model="
        )
    return config


def config_classes(config: dict) -> list[str] | None:
    """The model's class names in output order, from ``id2label``; None when it holds only the
    names transformers makes up (``LABEL_0``, …): then the order is unknown."""
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        items = sorted((int(k), str(v)) for k, v in id2label.items())
    except (TypeError, ValueError):
        raise VoGError(f"config.json's id2label keys must be class indices 0, 1, …; got {list(id2label)[:5]}") from None
    if [i for i, _ in items] != list(range(len(items))):
        raise VoGError(f"config.json's id2label must number the classes 0 … {len(items) - 1} without gaps")
    names = [v for _, v in items]
    if all((m := _PLACEHOLDER.match(n)) and int(m.group(1)) == i for i, n in enumerate(names)):
        return None
    return names


def model_classes(folders: Sequence) -> tuple[list[str] | None, int | None, str]:
    """``(classes, num_labels, config_path)`` of the checkpoint folders: their ``id2label`` names
    (None: placeholders only) and output size, the same in every folder (else refused)."""
    first = None
    for folder in folders:
        config = read_config(folder)
        names = config_classes(config)
        size = len(config["id2label"]) if isinstance(config.get("id2label"), dict) else config.get("num_labels")
        here = (names, size)
        if first is None:
            first = (here, os.path.join(folder, CONFIG))
        elif here != first[0]:
            raise VoGError(
                f"{os.path.join(folder, CONFIG)} has other classes than {first[1]} ({here[0] or here[1]} vs "
                f"{first[0][0] or first[0][1]}): the checkpoints are not of one training run"
            )
    return (*first[0], first[1])


def resolve_classes(classes, folders: Sequence) -> tuple[list[str], str | None]:
    """The class order to score the folders with, and the file it comes from (for messages).

    The model's output order is its config's ``id2label``. Labels are matched to it by name, so a
    dataset whose classes are listed in another order is scored right (nothing to refuse: a
    FiftyOne label is its class's name); ``classes=`` must equal it. When ``id2label`` holds only
    transformers' placeholders (``LABEL_0``…) the order is unknown: ``classes=`` must give it.
    """
    names, size, path = model_classes(folders)
    if names is not None:
        if classes is not None and list(classes) != names:
            raise VoGError(
                f"classes= {list(classes)[:10]} differ from the model's output order in {path} (id2label: "
                f"{names[:10]}); leave classes= out to use the model's order"
            )
        return names, path
    if classes is None:
        raise VoGError(
            f"{path} has no class names (id2label holds only LABEL_0 … LABEL_{(size or 1) - 1}), so the model's "
            "class order is unknown; pass classes= in the model's output order (CLI: --classes), or set id2label "
            "when training"
        )
    if size is not None and len(classes) != size:
        raise VoGError(f"classes= lists {len(classes)} classes but the model in {path} has {size} outputs")
    return list(classes), None


# -- transformers ---------------------------------------------------------------------------
def transformers(what: str = "a Hugging Face checkpoint folder"):
    """The transformers package, offline; or the one-line error naming the extra (and ``what`` needs it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read by huggingface_hub when first imported
    from .kinds import require_package

    return require_package("transformers", EXTRA, what)


def check_architecture(folder) -> str:
    """The class transformers builds for ``folder`` (``"ViTForImageClassification"``), checked
    without building it: config readable, its ``model_type`` built into transformers, an image classifier."""
    transformers()
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    config, path = read_config(folder), os.path.join(folder, CONFIG)
    model_type = config["model_type"]
    if model_type not in CONFIG_MAPPING_NAMES:
        code = " (its auto_map names code in the folder, which is never run)" if config.get("auto_map") else ""
        raise VoGError(
            f"{path} is of model_type {model_type!r}, which this transformers does not build{code}; upgrade "
            "transformers, or build the model yourself and pass it as model="
        )
    if model_type not in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES:
        raise VoGError(
            f"{path} is a {model_type!r} model, which has no image-classification head in transformers "
            "(AutoModelForImageClassification); VoG needs a classifier"
        )
    return MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES[model_type]


def check_architectures(folders: Sequence, model=None) -> list[str]:
    """The class transformers builds for each folder (see :func:`check_architecture`); with
    ``model`` (a module or factory the caller gives) none is checked, a name is refused."""
    if model is None or model == MODEL:
        return [check_architecture(folder) for folder in folders]
    if isinstance(model, str):
        raise VoGError(
            f"the checkpoints are Hugging Face folders, whose config.json names the architecture; leave model= out "
            f"(or pass model='hf') instead of model={model!r}"
        )
    return []


def check_folders(folders: Sequence, classes=None, model=None) -> tuple[list[str], str | None]:
    """Every check of Hugging Face checkpoint folders that builds nothing: the architectures
    (:func:`check_architectures`) and the class order (:func:`resolve_classes`). Returns
    ``(classes, the file they come from)``."""
    check_architectures(folders, model)
    return resolve_classes(classes, folders)


@contextlib.contextmanager
def _quiet():
    """transformers' loading progress bar and load report off for a block (our errors say what failed)."""
    from transformers.utils import logging

    bar, verbosity = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bar:
            logging.enable_progress_bar()


def build_model(folder, state: dict):
    """``folder``'s image classifier with the weights ``state`` (tensors read by the caller), loaded
    through transformers' own key conversion (its ``save_pretrained`` may write older key names
    than the module's), strictly: a missing, unexpected or misshapen weight is refused."""
    check_architecture(folder)
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING

    path = os.path.join(folder, CONFIG)
    try:
        with _quiet():
            config = AutoConfig.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
            cls = MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING[type(config)]  # AutoModelForImageClassification's choice
            module, info = cls.from_pretrained(
                None, config=config, state_dict=state, output_loading_info=True, dtype=torch.float32
            )
    except (ValueError, KeyError, TypeError, OSError, RuntimeError) as e:
        raise VoGError(f"transformers cannot build the model of {path}: {str(e).splitlines()[0][:300]}") from None
    bad = {k: sorted(info.get(k) or ()) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if any(bad.values()):
        what = "; ".join(f"{k.replace('_', ' ')}: {', '.join(map(str, v[:5]))}" for k, v in bad.items() if v)
        raise VoGError(f"the weights in {folder} do not fit its {CONFIG} ({what})")
    return module


class LogitsOf(nn.Module):
    """``model(x).logits``: a transformers model returns an output object, the engine needs the
    tensor of class scores. ``vog_preprocessing``: the folder's image processor description."""

    def __init__(self, model: nn.Module, preprocessing: dict | None = None):
        super().__init__()
        self.model = model
        self.vog_preprocessing = preprocessing

    def forward(self, x):
        out = self.model(x)
        return out if isinstance(out, torch.Tensor) else out.logits


def load_folder(folder, model=None, allow_pickle=False, allow_import=True, allow_torchscript=False):
    """One checkpoint folder as a module that returns logits, its weights loaded strictly.

    ``model``: a module or zero-argument factory to load the weights into, instead of the
    architecture in ``config.json`` (for an architecture that lives in code the caller trusts)."""
    from .checkpoints import load_checkpoint, match_keys

    problem = folder_problem(folder)
    if problem:
        raise VoGError(problem)
    state = {}
    for path in weight_files(folder):  # tensors only: safetensors, or torch.load(weights_only=True)
        part = load_checkpoint(
            path, allow_pickle=allow_pickle, allow_torchscript=allow_torchscript, allow_import=allow_import
        )
        if not isinstance(part, dict):
            raise VoGError(f"{path} holds a whole module, not the weights of a Hugging Face checkpoint")
        state.update(part)
    if model is None:
        module = build_model(folder, state)
    else:
        module = model()
        want = module.state_dict()
        state = match_keys(state, want.keys())
        bad = {
            "missing": sorted(want.keys() - state.keys()),
            "unexpected": sorted(state.keys() - want.keys()),
            "misshapen": sorted(k for k in want.keys() & state.keys() if want[k].shape != state[k].shape),
        }
        if any(bad.values()):
            what = "; ".join(f"{len(v)} {k}, e.g. {', '.join(v[:2])}" for k, v in bad.items() if v)
            raise VoGError(
                f"the weights in {folder} do not fit the model given ({what}); leave model= out to build the "
                f"architecture its {CONFIG} names, or give a module with the folder's weight names and shapes"
            )
        module.load_state_dict(state, strict=True)
    return LogitsOf(module.eval(), image_processor_description(folder))


# -- the image processor: the model's own preprocessing -----------------------------------
def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda v: list(v) if isinstance(v, (tuple, set)) else str(v)))


def image_processor_description(folder) -> dict | None:
    """``{"kind": "hf", "image_processor": {...}}``: the folder's image processor
    (``preprocessor_config.json`` through ``AutoImageProcessor``, local files only), or None when
    the folder has none."""
    if not os.path.isfile(os.path.join(folder, PREPROCESSOR)):
        return None
    transformers()
    from transformers import AutoImageProcessor

    _check_processor_json(os.path.join(folder, PREPROCESSOR))
    try:
        processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise VoGError(
            f"transformers cannot read the image processor {os.path.join(folder, PREPROCESSOR)}: "
            f"{str(e).splitlines()[0][:300]}; pass transform= yourself"
        ) from None
    return processor_description(processor)


def _check_processor_json(path):
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise VoGError(f"cannot read {path}: not JSON ({type(e).__name__}); pass transform= yourself") from None
    if isinstance(data, dict) and data.get("auto_map"):
        raise VoGError(
            f"{path} names an image processor defined by Python code in the folder (auto_map), which is never "
            "run (trust_remote_code stays off); pass transform= yourself"
        )


def processor_description(processor) -> dict:
    """The JSON description of an image processor object (what a run config and a manifest record)."""
    return {"kind": MODEL, "image_processor": _jsonable(processor.to_dict())}


def _processor_class(settings: dict):
    from transformers.models.auto.image_processing_auto import get_image_processor_class_from_name

    name = settings.get("image_processor_type")
    cls = get_image_processor_class_from_name(name) if isinstance(name, str) else None
    if cls is None or not cls.__module__.startswith("transformers."):
        raise VoGError(f"image processor {name!r} is not one of transformers' image processors")
    return cls


class ProcessorTransform:
    """``PIL.Image`` (RGB) → C×H×W float tensor through a transformers image processor."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, img):
        return self.processor(images=img, return_tensors="pt")["pixel_values"][0]

    def __repr__(self):
        return f"ProcessorTransform({type(self.processor).__name__})"


def transform(description: dict):
    """The callable a ``{"kind": "hf", "image_processor": {...}}`` description stands for."""
    transformers()
    settings = description.get("image_processor")
    if not isinstance(settings, dict) or settings.get("auto_map"):
        raise VoGError(
            "a Hugging Face transform needs 'image_processor': the settings of one of transformers' image "
            f"processors (preprocessor_config.json), got {settings!r:.80}"
        )
    return ProcessorTransform(_processor_class(settings).from_dict(dict(settings)))


def transform_summary(description: dict) -> str:
    """``"ViTImageProcessor: resize 32×32, rescale ×1/255, normalize mean (0.5, …) std (0.5, …)"``."""
    s = description.get("image_processor") or {}
    parts = []
    size = s.get("size") or {}
    if s.get("do_resize", True) and size:
        parts.append("resize " + ("×".join(str(size[k]) for k in ("height", "width") if k in size) or str(size)))
    crop = s.get("crop_size") or {}
    if s.get("do_center_crop") and crop:
        parts.append("center crop " + "×".join(str(crop[k]) for k in ("height", "width") if k in crop))
    if s.get("do_rescale", True):
        parts.append(f"rescale ×{s.get('rescale_factor', 1 / 255):.6g}")
    if s.get("do_normalize", True) and s.get("image_mean") is not None:
        mean = ", ".join(f"{v:g}" for v in s.get("image_mean", ()))
        std = ", ".join(f"{v:g}" for v in s.get("image_std", ()))
        parts.append(f"normalize mean ({mean}) std ({std})")
    return f"the model's image processor {s.get('image_processor_type', '?')}: {', '.join(parts) or 'no change'}"
