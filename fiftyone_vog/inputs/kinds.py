"""Architectures of other libraries, named ``"KIND:NAME"`` or ``"KIND:NAME(key=value, ...)"``:
``"timm:resnet18"``, ``"timm:vit_tiny_patch16_224(img_size=32)"``.

A name of a kind builds a registered architecture of an installed library with random weights
(never pretrained, never downloaded), running none of the caller's code, so the App may name one
without the server's import switch, like a torchvision name. The keyword arguments are literals
(numbers, strings, booleans, None, lists/tuples of them), read with :mod:`ast`, never evaluated;
``num_classes`` comes from the classes, and arguments that name files or downloads are refused.

Each kind (:class:`ModelKind`, in :data:`KINDS`) also says what preprocessing its models expect
(:func:`own_preprocessing`: the ``"auto"`` transform) and builds that transform from its JSON
description (``{"kind": "timm", "data_config": {...}}``, see :func:`kind_transform`), so that a run
config and a checkpoint manifest can record it.

Adding a kind: write its functions and add one :class:`ModelKind` to :data:`KINDS`; the model
factory, the App form's checks and autocomplete, the CLI's help and the ``"auto"`` transform read
it there.
"""

from __future__ import annotations

import ast
import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import VoGError
from . import hf


@dataclass(frozen=True)
class ModelKind:
    """One library whose architectures are named ``"{prefix}:NAME"``.

    Attributes:
        prefix: the name's prefix (``"timm"``).
        package: the library's import name; extra: the ``pip install 'fiftyone-vog[EXTRA]'`` extra.
        example: a name for messages and help (``"timm:resnet18"``).
        names: every architecture name (without the prefix), for typos and autocomplete.
        check: ``check(name)`` raises :class:`VoGError` for an unknown name (with "did you mean").
        build: ``build(name, kwargs, num_classes)`` → a module with random weights, no download.
        owns: whether a module (built any way) is one of this library's.
        name_of: the registry name of a module it owns (without the prefix), or None.
        preprocessing: ``preprocessing(module, kwargs)`` → the module's own transform description
            (a ``{"kind": prefix, ...}`` dict), or None.
        transform: ``transform(description)`` → a callable from an RGB ``PIL.Image`` to a C×H×W tensor.
    """

    prefix: str
    package: str
    extra: str
    example: str
    names: Callable[[], list[str]]
    check: Callable[[str], None]
    build: Callable[[str, dict, int | None], nn.Module]
    owns: Callable[[nn.Module], bool]
    name_of: Callable[[nn.Module], str | None]
    preprocessing: Callable[[nn.Module, dict], dict | None]
    transform: Callable[[dict], Callable]


def require_package(package: str, extra: str, what: str):
    """Import the optional library ``package``, or raise the one-line :class:`VoGError` naming
    the extra that installs it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise VoGError(f"{what} needs {package}, which is not installed; pip install 'fiftyone-vog[{extra}]'") from None


def require(kind: ModelKind, what: str):
    """Import ``kind``'s library, or raise the one-line :class:`VoGError` naming the extra."""
    return require_package(kind.package, kind.extra, what)


def _did_you_mean(name: str, names: list[str], what: str, listing: str) -> VoGError:
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; see {listing}"
    return VoGError(f"unknown {what} {name!r}{hint}")


# -- timm ---------------------------------------------------------------------------
#: The data-config keys timm's eval transform reads (create_transform's others augment or need
#: other libraries).
TIMM_DATA_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


def _timm():
    return require(KINDS["timm"], "a timm architecture")


def _timm_names() -> list[str]:
    return _timm().list_models()


def _timm_check(name: str) -> None:
    timm = _timm()
    arch, tag = timm.models.split_model_name_tag(name)
    if not timm.models.is_model(arch):
        raise _did_you_mean(name, timm.list_models(), "timm architecture", "timm.list_models()")
    if tag:
        tags = [n.partition(".")[2] for n in timm.list_models(arch, pretrained=True)]
        if tag not in tags:
            raise VoGError(
                f"timm architecture {arch!r} has no configuration tagged {tag!r}"
                + (f"; its tags: {', '.join(tags[:8])}" if tags else f"; name it without a tag ({arch!r})")
            )


def _timm_build(name: str, kwargs: dict, num_classes: int | None) -> nn.Module:
    timm = _timm()
    _timm_check(name)
    extra = {} if num_classes is None else {"num_classes": num_classes}
    try:  # pretrained=False: timm builds from its registry and never fetches weights or configs
        return timm.create_model(name, pretrained=False, **kwargs, **extra)
    except (TypeError, ValueError, AssertionError, RuntimeError) as e:
        args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise VoGError(
            f"timm could not build {name}({args}): {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        ) from None


def _timm_owns(module: nn.Module) -> bool:
    return type(module).__module__.startswith("timm.") and isinstance(getattr(module, "pretrained_cfg", None), dict)


def _jsonable(value):
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value


def timm_data_config(module: nn.Module, args: dict | None = None) -> dict:
    """timm's eval data config of ``module`` (``resolve_data_config``), with ``args`` (creation
    keyword arguments, or a timm training script's ``args``) overriding its pretrained config as
    timm's ``train.py`` does, and a vision transformer's input size from its patch embedding when
    it was built for another size than its config's."""
    from timm.data import resolve_data_config

    args = dict(args or {})
    cfg = resolve_data_config(args=args, model=module)
    size = getattr(getattr(module, "patch_embed", None), "img_size", None)
    if args.get("input_size") is None and args.get("img_size") is None and size is not None:
        size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        cfg["input_size"] = (cfg["input_size"][0], *size)
    return {k: _jsonable(cfg[k]) for k in TIMM_DATA_KEYS if k in cfg}


def _timm_preprocessing(module: nn.Module, kwargs: dict) -> dict | None:
    if not _timm_owns(module):
        return None
    return {"kind": "timm", "data_config": timm_data_config(module, kwargs)}


def timm_script_args(obj) -> dict | None:
    """The arguments of a timm training-script checkpoint (``train.py``'s ``CheckpointSaver``:
    ``{"arch", "args", "state_dict", ...}``, ``args`` an ``argparse.Namespace``) as a dict, else None."""
    if not isinstance(obj, dict) or not isinstance(obj.get("state_dict"), dict):
        return None
    args = obj.get("args")
    args = vars(args) if hasattr(args, "__dict__") and not isinstance(args, dict) else args
    if not isinstance(args, dict) or not isinstance(args.get("model"), str):
        return None
    return dict(args)


def timm_script_model(args: dict) -> str:
    """The model name that builds what timm's ``train.py`` built from its ``args``: ``create_model(
    args.model, in_chans=..., global_pool=args.gp, bn_eps=..., **args.model_kwargs)`` (the other
    arguments it passes, drop rates and BatchNorm momentum, change nothing in eval mode)."""
    kwargs = dict(args.get("model_kwargs") or {})
    in_chans = args.get("in_chans") or (args.get("input_size") or [None])[0]
    for key, value in (("in_chans", in_chans), ("global_pool", args.get("gp")), ("bn_eps", args.get("bn_eps"))):
        if value is not None and key not in kwargs:
            kwargs[key] = value
    if in_chans == 3:
        kwargs.pop("in_chans", None)
    return f"timm:{args['model']}" + (f"({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})" if kwargs else "")


def _timm_transform(description: dict) -> Callable:
    _timm()
    from timm.data import create_transform

    cfg = description.get("data_config")
    if not isinstance(cfg, dict) or not cfg.get("input_size"):
        raise VoGError(
            f"a timm transform needs a 'data_config' with an 'input_size' (and {', '.join(TIMM_DATA_KEYS[1:])}), got {cfg!r}"
        )
    unknown = sorted(set(cfg) - set(TIMM_DATA_KEYS))
    if unknown:
        raise VoGError(f"a timm transform's data_config takes {', '.join(TIMM_DATA_KEYS)}; not {', '.join(unknown)}")
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    return create_transform(**cfg, is_training=False)


#: The kinds, by prefix (see the module's docstring for how to add one).
KINDS: dict[str, ModelKind] = {
    "timm": ModelKind(
        prefix="timm",
        package="timm",
        extra="timm",
        example="timm:resnet18",
        names=_timm_names,
        check=_timm_check,
        build=_timm_build,
        owns=_timm_owns,
        name_of=lambda module: module.pretrained_cfg.get("architecture"),
        preprocessing=_timm_preprocessing,
        transform=_timm_transform,
    ),
}


# -- Hugging Face transformers (inputs/hf.py): the architecture comes with each checkpoint folder's
# config.json (model='hf', or none), not from a name; the kind gives the folder's image processor
# as the model's own preprocessing and builds it from its description {"kind": "hf", ...}.
def _hf_no_name(name: str, *_):
    raise VoGError(
        f"model 'hf:{name}': a Hugging Face architecture comes from each checkpoint folder's config.json, "
        "not from the model; pass the Trainer's output folder (or its checkpoint folders) as the checkpoints, "
        "with model 'hf' or none"
    )


KINDS["hf"] = ModelKind(
    prefix="hf",
    package="transformers",
    extra=hf.EXTRA,
    example=hf.MODEL,
    names=lambda: [],
    check=_hf_no_name,
    build=_hf_no_name,
    owns=lambda module: isinstance(module, hf.LogitsOf),
    name_of=lambda module: None,  # named by its folder's config.json, never by a name
    preprocessing=lambda module, kwargs: module.vog_preprocessing,
    transform=hf.transform,
)


# -- names ----------------------------------------------------------------------------
#: Keyword arguments a model name may not carry: timm's create_model's own, and any whose name says
#: it reads a file or the network: a model name never loads weights (``num_classes``: from the classes, or compute_vog's num_classes=).
_REFUSED = {"pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir"}
_REFUSED |= {"scriptable", "exportable", "no_jit", "num_classes", "weights"}
_REFUSED_WORDS = ("path", "file", "url", "hub", "dir", "pretrained")


def _literal(node: ast.AST, spec: str, key: str):
    try:
        value = ast.literal_eval(node)
    except ValueError:
        raise VoGError(
            f"model {spec!r}: {key}= must be a literal (a number, string, True/False/None or a list)"
        ) from None
    ok = (int, float, str, bool, type(None))
    if isinstance(value, (list, tuple)) and all(isinstance(v, ok) for v in value) or isinstance(value, ok):
        return value
    raise VoGError(f"model {spec!r}: {key}= must be a number, string, True/False/None or a list of them")


def parse(spec) -> tuple[ModelKind, str, dict] | None:
    """``"timm:vit_tiny_patch16_224(img_size=32)"`` → ``(KINDS["timm"], "vit_tiny_patch16_224",
    {"img_size": 32})``; None when ``spec`` names no kind. Nothing is imported or evaluated."""
    if not isinstance(spec, str):
        return None
    prefix, sep, rest = spec.partition(":")
    kind = KINDS.get(prefix.strip())
    if not sep or kind is None:
        return None
    rest = rest.strip()
    if kind.build is _hf_no_name:  # 'hf:PATH' most often: said as such, not as a bad name
        _hf_no_name(rest)
    name, kwargs = rest, {}
    if rest.endswith(")") and "(" in rest:
        name = rest[: rest.index("(")].strip()
        try:
            call = ast.parse(f"f{rest[rest.index('(') :]}", mode="eval").body
        except SyntaxError:
            call = None
        if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
            raise VoGError(
                f"model {spec!r}: write keyword arguments as NAME(key=value, ...), e.g. "
                f"'{prefix}:vit_tiny_patch16_224(img_size=32)'"
            )
        kwargs = {k.arg: _literal(k.value, spec, k.arg) for k in call.keywords}
    if not name or not all(c.isalnum() or c in "._-" for c in name):
        raise VoGError(f"model {spec!r}: name a {prefix} architecture after '{prefix}:', e.g. {kind.example!r}")
    for key in kwargs:
        if key in _REFUSED or any(w in key.lower() for w in _REFUSED_WORDS):
            fix = (
                "set num_classes= (CLI: --num-classes)" if key == "num_classes" else "weights come from the checkpoints"
            )
            raise VoGError(f"model {spec!r}: {key}= is not accepted in a model name; {fix}")
    return kind, name, kwargs


def kind_factory(spec: str, num_classes: int | None) -> Callable[[], nn.Module] | None:
    """A factory of the architecture ``spec`` names (checked now: the library is installed and
    knows the name), or None when ``spec`` names no kind."""
    parsed = parse(spec)
    if parsed is None:
        return None
    kind, name, kwargs = parsed
    require(kind, f"model {spec!r}")
    kind.check(name)
    return lambda: kind.build(name, kwargs, num_classes)


def kind_names(prefix: str, typed: str = "", limit: int = 100) -> list[str]:
    """Up to ``limit`` names ``"{prefix}:NAME"`` starting with what is ``typed`` after the prefix
    (for autocomplete); [] when the library is not installed."""
    kind = KINDS[prefix]
    try:
        names = kind.names()
    except VoGError:
        return []
    return [f"{prefix}:{n}" for n in names if n.startswith(typed)][:limit]


# -- preprocessing ---------------------------------------------------------------------
def own_preprocessing(module: nn.Module, spec=None, overrides: dict | None = None) -> dict | None:
    """The transform description of ``module``'s own preprocessing (``{"kind": ..., ...}``), or
    None when no kind owns it. ``spec``: the model name it was built from, whose keyword arguments
    (e.g. ``img_size``) refine it; ``overrides``: settings of its training run (a timm training
    script's ``args``: ``input_size``, ``crop_pct``, ``mean``, …) that refine it further."""
    parsed = parse(spec)
    kwargs = {**(parsed[2] if parsed else {}), **(overrides or {})}
    for kind in KINDS.values():
        try:
            if kind.owns(module):
                return kind.preprocessing(module, kwargs)
        except ImportError:
            continue
    return None


def architecture_name(module: nn.Module) -> str | None:
    """The name that builds ``module``'s architecture again (``"timm:resnet18"``), when a kind owns
    it and that name, built with its output size, has the same weights' names and shapes; else
    None (built with other keyword arguments: name it yourself)."""
    for kind in KINDS.values():
        try:
            name = kind.name_of(module) if kind.owns(module) else None
        except ImportError:
            continue
        if name is None:
            continue
        try:
            built = kind.build(name, {}, getattr(module, "num_classes", None))
        except VoGError:
            return None
        want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        return f"{kind.prefix}:{name}" if {k: tuple(v.shape) for k, v in built.state_dict().items()} == want else None
    return None


def kind_transform(description: dict) -> Callable:
    """The callable a ``{"kind": ..., ...}`` transform description stands for."""
    kind = KINDS.get(description.get("kind"))
    if kind is None:
        raise VoGError(
            f"transform kind {description.get('kind')!r} is unknown; known kinds: {', '.join(KINDS)}, or a preset name"
        )
    return kind.transform(description)


def transform_summary(description) -> str:
    """A short text for people: ``"timm: resize 35 bicubic, center crop 32, mean (0.5, …)"``."""
    if isinstance(description, str):
        return description if description.startswith("callable:") else f"the {description!r} preset"
    if not isinstance(description, dict):
        return repr(description)
    if description.get("kind") == hf.MODEL:
        return hf.transform_summary(description)
    if description.get("kind") == "timm":
        c = description.get("data_config", {})
        h, w = (c.get("input_size") or [3, "?", "?"])[1:]
        pct = c.get("crop_pct") or 1.0
        resize = f"resize {int(h / pct) if isinstance(h, int) else h}" if pct != 1 else "resize"
        mean = ", ".join(f"{v:g}" for v in c.get("mean", ()))
        std = ", ".join(f"{v:g}" for v in c.get("std", ()))
        return (
            f"timm's eval transform: {resize} {c.get('interpolation', '')}, {c.get('crop_mode', 'center')} crop "
            f"{h}×{w}, mean ({mean}), std ({std})"
        )
    return f"a {description.get('kind')} transform"
