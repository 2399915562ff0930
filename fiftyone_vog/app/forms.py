"""The operators' forms: inputs, choices, inline validation, and parsing the App's parameters.

Every function here builds part of a ``types.Object`` form (``*_form``) or turns the
submitted ``ctx.params`` into API arguments (``*_kwargs``, ``parse_*``); the operators in
:mod:`fiftyone_vog.app.operators` call them from ``resolve_input`` and ``execute``.
"""

from __future__ import annotations

import inspect
import math
import os
from pathlib import Path

import fiftyone as fo
import fiftyone.operators.types as types

from .. import options
from ..audit.views import vog_view_names
from ..errors import VoGError
from ..options import DEFAULT_TARGET
from ..options import DEFAULTS as D
from .roots import check_app_checkpoints, check_app_path, server_setting

#: Server-side switch (environment variable or plugin secret) that lets App users
#: name ``package.module:callable`` models, unpickle whole-module checkpoints and load
#: TorchScript checkpoints (all three run code from the user's input on the server).
ALLOW_IMPORTS = "FIFTYONE_VOG_ALLOW_IMPORTS"
TRUTHY = ("1", "true", "yes", "on")
CHOICES = {
    "label_mode": options.LABEL_MODES,
    "target": options.TARGETS,
    "statistic": options.STATISTICS,
    "channel_reduction": options.CHANNEL_REDUCTIONS,
    "normalization": options.NORMALIZATIONS,
    "transform": options.TRANSFORMS,
    "precision": options.PRECISIONS,
    "autocast": ("none", *options.AUTOCASTS),
}
VIEW_NAMES = options.VIEW_NAMES
EXPORT_TYPES = options.EXPORT_TYPES


# -- messages in the App: the form's controls, not the API's arguments ------------------
#: Each operator's API argument → the label of the form control that sets it. The App's messages
#: (inline errors, error notifications, skipped-view reasons) name these instead of
#: ``overwrite=True (CLI: --overwrite)``; a test checks them against the forms' own labels.
FORM_LABELS = {
    "compute_vog": {
        "checkpoints": "Checkpoints",
        "model": "Model",
        "label_field": "Label field",
        "classes": "Classes",
        "label_mode": "Label mode",
        "target": "Target",
        "statistic": "Statistic",
        "channel_reduction": "Channel reduction",
        "normalization": "Normalization",
        "transform": "Transform",
        "windows": "Windows",
        "vog_field": "Output field",
        "overwrite": "Overwrite",
        "companions": "Companion scores",
        "batch_size": "Batch size",
        "device": "Device",
        "num_workers": "Data loader workers",
        "precision": "Precision",
        "autocast": "Mixed precision",
        "resume": "Resume",
        "allow_pickle": "Allow pickled checkpoints",
        "state_dict_key": "Weights entry",
    },
    "save_vog_views": {
        "vog_field": "VoG field",
        "percentile": "Percentile",
        "label_error_rule": "Label-error rule",
        "shuffled_field": "Shuffled-label flag",
        "ood_field": "OOD flag field",
        "ood_tag": "OOD tag",
        "name_prefix": "Name prefix",
        "overwrite": "Overwrite",
        "load_view": "Open afterwards",
    },
    "shuffle_labels": {
        "action": "Action",
        "label_field": "Label field",
        "flag_field": "Flag field",
        "original_field": "Original-label field",
        "fraction": "Fraction",
        "seed": "Seed",
        "mode": "Mode",
        "overwrite": "Overwrite",
    },
    options.INDEX_OPERATOR: {
        "fields": "Fields",
        "drop": "Drop",
    },
    "export_vog_subset": {
        "saved_view": "Saved view",
        "export_dir": "Export directory",
        "dataset_type": "Format",
        "label_field": "Label field",
        "vog_field": "VoG field",
        "overwrite": "Overwrite",
    },
    "get_vog_run_info": {"key": "VoG run"},
    "rename_vog_run": {"key": "VoG run", "new_key": "New name"},
    "delete_vog_run": {"key": "VoG run", "delete_fields": "Delete its fields", "confirm": "Delete what is listed"},
}
#: API functions a message may tell the user to call → (operator, its label, extra setting).
_OPERATOR_OF = {
    "compute_vog": ("compute_vog", "Compute VoG", None),
    "save_vog_views": ("save_vog_views", "Save VoG views", None),
    "shuffle_labels": ("shuffle_labels", "Shuffle labels", None),
    "restore_labels": ("shuffle_labels", "Shuffle labels", "'Action' set to restore"),
    "export_vog_subset": ("export_vog_subset", "Export VoG subset", None),
    "rename_vog_run": ("rename_vog_run", "Rename VoG run", None),
    "delete_vog_run": ("delete_vog_run", "Delete VoG run", None),
    options.INDEX_OPERATOR: (options.INDEX_OPERATOR, "Index VoG fields", None),
}
_VALUE = r"'[^']*'|\"[^\"]*\"|True|False|None|-?\d+(?:\.\d+)?"


def _setting(label, value, imperative=False) -> str:
    """``'Overwrite'`` and ``True`` → "tick 'Overwrite'" (or "'Overwrite' ticked" in a sentence)."""
    if value in ("True", "False"):
        verb = "tick" if value == "True" else "untick"
        return f"{verb} '{label}'" if imperative else f"'{label}' {verb}ed"
    shown = "empty" if value == "None" else value.strip("'\"")
    return f"set '{label}' to {shown}" if imperative else f"'{label}' set to {shown}"


def app_message(message: str, operator: str) -> str:
    """An API message as the App's form ``operator`` shows it: argument names become the form's
    control labels (:data:`FORM_LABELS`), ``(CLI: ...)`` hints go, calls name the operator."""
    import re

    text = re.sub(r"run `fiftyone-vog [^`]*`, or in Python ", "run ", message)
    text = re.sub(r"\bin Python run ", "run ", text)
    text = re.sub(r"\s*\((?:CLI: [^)]*|--[\w-]+)\)", "", text)
    text = re.sub(r"\ballow_torchscript=True\b", f"{ALLOW_IMPORTS}=1 on the server", text)  # no control: a switch

    def call(m):
        op, label, extra = _OPERATOR_OF[m.group(1)]
        labels = FORM_LABELS[op]
        parts = [extra] if extra else []
        for arg, value in re.findall(rf"\b(\w+)=({_VALUE})", m.group(2)):
            if arg in labels:
                parts.append(_setting(labels[arg], value))
        return f"'{label}'" + (f" ({', '.join(parts)})" if parts else "")

    text = re.sub(rf"\b(?:fov\.)?({'|'.join(_OPERATOR_OF)})\(([^()]*)\)", call, text)
    labels = {k: v for op in FORM_LABELS.values() for k, v in op.items()} | FORM_LABELS[operator]
    args = "|".join(sorted(map(re.escape, labels), key=len, reverse=True))
    text = re.sub(
        rf"\b(?:pass|use|set) ({args})=({_VALUE})", lambda m: _setting(labels[m.group(1)], m.group(2), True), text
    )
    text = re.sub(rf"\bpass ({args})=(?=[\s,;.)]|$)", lambda m: f"fill in '{labels[m.group(1)]}'", text)
    text = re.sub(rf"\bcheck ({args})=(?=[\s,;.)]|$)", lambda m: f"check '{labels[m.group(1)]}'", text)
    text = re.sub(r",? or pass \w+=(?=[\s,;.)]|$)", "", text)  # an argument the form has no control for
    text = re.sub(rf"\b({args})=({_VALUE})", lambda m: _setting(labels[m.group(1)], m.group(2)), text)
    underscored = "|".join(re.escape(a) for a in labels if "_" in a)
    return re.sub(rf"(?<![\w'\"])({underscored})(?![\w'\"=])", lambda m: f"'{labels[m.group(1)]}'", text)


def from_the_app(ctx) -> bool:
    """Whether the App sent this request: its resolve and execute requests name the operator
    (``operator_uri``); Python's ``foo.execute_operator`` does not, and its callers pass the API's
    argument names, so they keep the API's messages."""
    return bool(ctx.request_params.get("operator_uri"))


def app_messages(ctx, inputs, operator: str):
    """Every inline error of the resolved form ``inputs`` in the form's words (:func:`app_message`),
    when the App asked (:func:`from_the_app`)."""
    if not from_the_app(ctx):
        return inputs
    for prop in inputs.properties.values():
        if prop.invalid and prop.error_message:
            prop.error_message = app_message(prop.error_message, operator)
    return inputs


# -- shared form helpers -----------------------------------------------------------
def imports_allowed(ctx=None) -> bool:
    """Whether the server's owner allows App users to make the server import code."""
    return str(server_setting(ctx, ALLOW_IMPORTS) or "").strip().lower() in TRUTHY


def api_kwargs(fn, params, names, convert=None) -> dict:
    """The form's ``params`` → keyword arguments of the API function ``fn``: a parameter left out
    or blank gets ``fn``'s own default, read from its signature (never re-typed here)."""
    defaults = inspect.signature(fn).parameters
    convert = convert or {}
    out = {}
    for name in names:
        value = params.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            out[name] = defaults[name].default
        else:
            out[name] = convert.get(name, lambda v: v)(value)
    return out


def api_default(fn, name):
    """The default of ``fn``'s argument ``name``."""
    return inspect.signature(fn).parameters[name].default


def _invalid(prop, message: str):
    prop.invalid = True
    prop.error_message = message
    return None


def _needed(ctx, inputs, prop, name, label, what):
    """The value of a text input the run cannot do without, or None after marking what is missing.

    Checked here, not with FiftyOne's ``required=True``: FiftyOne 1.22's App shows "Required
    property" under such an input as soon as the form opens, before the user typed anything. Not
    entered yet (absent from the params): the error is on a hidden input, so the input shows no
    message while Execute stays disabled (its tooltip, and Python's ``foo.execute_operator``, give
    the message). Emptied after typing (present, blank): the error is on the input itself."""
    value = ctx.params.get(name)
    if value is not None and not (isinstance(value, str) and not value.strip()):
        return value
    message = f"enter the {label}: {what}"
    _invalid(prop if name in ctx.params else inputs.view(f"{name}_missing", types.HiddenView()), message)
    return None


# Only inputs without a sensible default are needed (:func:`_needed`): the App fills in defaults,
# Python callers (``foo.execute_operator``) may leave them out.
def _choice(inputs, name, values, default, label, description, ctx):
    radio = types.RadioGroup(orientation="horizontal")
    for v in values:
        radio.add_choice(v, label=v)
    inputs.enum(name, radio.values(), default=default, label=label, description=description, view=radio)
    return ctx.params.get(name, default)


def _fields_of(samples, embedded_doc_type=None, ftype=None) -> list[str]:
    schema = samples.get_field_schema(ftype=ftype, embedded_doc_type=embedded_doc_type)
    return sorted(k for k in schema if not k.startswith("_"))


def _label_fields(samples) -> list[str]:
    """Classification fields to offer as labels: the label-shuffling audit's backups left out."""
    from ..audit.shuffle import label_fields

    return label_fields(samples)


def _dropdown(inputs, name, values, default, label, description):
    dd = types.DropdownView()
    for v in values:
        dd.add_choice(v, label=v)
    return inputs.str(name, default=default, label=label, description=description, view=dd)


def _new_field(ctx, inputs, name, default, label, description, existing, overwrite):
    """A text input for an output field name; inline error if invalid or taken without overwrite."""
    from ..core.compute import _check_field_name

    prop = inputs.str(name, default=default, label=label, description=description)
    value = ctx.params.get(name, default)
    if not value:
        return None
    try:
        _check_field_name(value, name)
    except VoGError as e:
        return _invalid(prop, str(e))
    if value in existing and not overwrite:
        return _invalid(prop, f"{value!r} is already used on this dataset; tick 'Overwrite' or choose another name")
    return value


def _split(value):
    """``"a, b"`` → ``["a", "b"]``; lists pass through; empty → None."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


def parse_checkpoints(value):
    """The form's checkpoint text: a glob, a directory, one file, or comma-separated files."""
    if isinstance(value, str) and "," in value:
        return _split(value)
    return value


def parse_windows(value):
    """``"thirds"``, JSON, or ``"early=0:3,late=-3:"`` / ``"a=0+1"`` → the API's ``windows``
    (:func:`fiftyone_vog.options.parse_windows`, the CLI's parser too)."""
    try:
        return options.parse_windows(value)
    except options.OptionError as e:
        raise VoGError(str(e)) from None


def _whole_number(ctx, prop, name, default, least, label):
    """An integer input checked here, not by FiftyOne's ``min=`` (whose message says "greater
    than {min}" while {min} itself is accepted)."""
    value = ctx.params.get(name, default)
    if not (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value == int(value)
        and value >= least
    ):
        return _invalid(prop, f"{label} must be a whole number, at least {least}; got {value!r}")
    return int(value)


def _where(path: str) -> str:
    """Say where a relative path was looked up (the server's working directory)."""
    return "" if os.path.isabs(os.path.expanduser(path)) else f" (relative to the server's directory {os.getcwd()})"


# -- compute_vog -------------------------------------------------------------------
def compute_vog_form(ctx, inputs):
    """The Compute VoG form; every check that needs the server happens here."""
    from ..core.compute import field_names, resolve_windows
    from ..inputs.checkpoints import known_architectures, manifest_of, model_factory
    from ..inputs.hf import MODEL as HF_MODEL
    from ..inputs.kinds import KINDS, kind_names

    inputs.view_target(ctx, action_description="Score")
    allowed = imports_allowed(ctx)
    params = ctx.params

    prop = inputs.str(
        "checkpoints",
        label="Checkpoints",
        description="On the server: a glob such as /runs/exp1/epoch_*.pt, a directory, "
        "or comma-separated files in training order (at least 2), inside the App roots (FIFTYONE_VOG_APP_ROOTS)",
    )
    _needed(
        ctx, inputs, prop, "checkpoints", "Checkpoints", "a glob, a directory or comma-separated files on the server"
    )
    paths = None
    spec = params.get("checkpoints")
    if spec:
        try:
            paths = [Path(p) for p in check_app_checkpoints(ctx, parse_checkpoints(spec))]  # confined to the App roots
        except VoGError as e:
            where = _where(spec.split(",")[0].strip()) if isinstance(spec, str) else ""
            _invalid(prop, f"{e}{where}")
        else:
            manifest = manifest_of(parse_checkpoints(spec))  # read (inside the App roots) by the line above
            recorded = f" (recorded in {manifest.path.name})" if manifest is not None else ""
            inputs.view(
                "checkpoints_found",
                types.Notice(label=f"{len(paths)} checkpoints{recorded}: {paths[0].name} … {paths[-1].name}"),
            )

    architectures = types.AutocompleteView(allow_user_input=True)
    typed = params.get("model") or ""
    # -- other libraries' architectures by name (inputs.kinds): offered once their prefix is typed
    kind_choices = [
        n for prefix in KINDS if typed.startswith(f"{prefix}:") for n in kind_names(prefix, typed[len(prefix) + 1 :])
    ]
    for name in [*known_architectures(), *kind_choices]:
        architectures.add_choice(name, label=name)
    architectures.add_choice(HF_MODEL, label=f"{HF_MODEL}: Hugging Face folder (architecture from its config.json)")
    prop = inputs.str(
        "model",
        label="Model",
        view=architectures,
        description="An architecture of this package (SmallCNN, MLP) or torchvision (resnet18, ...), or timm "
        "by name (timm:resnet18, timm:vit_tiny_patch16_224(img_size=32)), or hf for Hugging Face Trainer "
        "folders (checkpoint-*/ with config.json; also found by itself when empty; never their code); "
        f"any other 'package.module:callable' if the server sets {ALLOW_IMPORTS}=1; "
        "empty when the checkpoints' manifest or timm's train.py names it, and for TorchScript checkpoints "
        f"(code: only if the server sets {ALLOW_IMPORTS}=1)",
    )
    model = params.get("model") or None
    if model:
        try:
            model_factory(model, allow_import=allowed)
        except VoGError as e:
            _invalid(prop, str(e))

    label_fields = _label_fields(ctx.dataset)
    default_label = "ground_truth" if "ground_truth" in label_fields else (label_fields[0] if label_fields else None)
    _dropdown(
        inputs,
        "label_field",
        label_fields,
        default_label,
        "Label field",
        "fo.Classification field with the labels the model was trained on",
    )
    inputs.str(
        "classes",
        label="Classes",
        description="Comma-separated class names in the model's output order (default: the dataset's classes)",
    )

    _choice(
        inputs,
        "label_mode",
        CHOICES["label_mode"],
        D["label_mode"],
        "Label mode",
        "Gradient of the true label, of the trained model's prediction, or 'auto': the label where "
        "present, else the prediction (unlabeled / out-of-distribution samples)",
        ctx,
    )
    _choice(
        inputs,
        "target",
        CHOICES["target"],
        D["target"],
        "Target",
        f"Softmax probability or pre-softmax logit (the paper's); default {DEFAULT_TARGET}, measured best",
        ctx,
    )
    _choice(
        inputs,
        "statistic",
        CHOICES["statistic"],
        D["statistic"],
        "Statistic",
        "Per-pixel variance or std across checkpoints",
        ctx,
    )
    _choice(
        inputs,
        "channel_reduction",
        CHOICES["channel_reduction"],
        D["channel_reduction"],
        "Channel reduction",
        "Over colour channels",
        ctx,
    )
    _choice(
        inputs,
        "normalization",
        CHOICES["normalization"],
        D["normalization"],
        "Normalization",
        "Class-normalized z-score (paper), its absolute value, or none",
        ctx,
    )
    _choice(
        inputs,
        "transform",
        CHOICES["transform"],
        D["transform"],
        "Transform",
        "Image preprocessing: auto is the checkpoints' manifest's, else the model's own (a timm model's eval "
        "transform), else rgb; or a preset",
        ctx,
    )

    prop = inputs.str(
        "windows",
        label="Windows",
        description="Optional checkpoint subsets scored in the same run: 'thirds' or 'early=0:3,late=-3:'",
    )
    windows = None
    try:
        windows = parse_windows(params.get("windows"))
        if windows is not None and paths is not None:
            resolve_windows(windows, paths)
    except VoGError as e:
        _invalid(prop, str(e))

    overwrite = bool(params.get("overwrite", False))
    ds = ctx.dataset
    existing = set(ds.get_field_schema()) | set(ds.list_runs())
    vog_field = _new_field(
        ctx,
        inputs,
        "vog_field",
        "vog",
        "Output field",
        "Field for the class-normalized score (also the run key); <field>_raw gets the raw score",
        existing,
        overwrite,
    )
    if vog_field:
        try:  # a window error is shown on the windows input
            wins = resolve_windows(windows, paths) if windows is not None and paths is not None else {}
        except VoGError:
            wins = {}
        try:  # every field the run writes: valid names (e.g. not too long), free unless overwritten
            taken = [f for pair in field_names(vog_field, wins).values() for f in pair if f in existing]
        except VoGError as e:
            taken = []
            _invalid(inputs.properties["vog_field"], str(e))
        if taken and not overwrite:
            _invalid(
                inputs.properties["vog_field"], f"{taken[0]!r} is already used; tick 'Overwrite' or choose another name"
            )
    inputs.bool(
        "overwrite",
        default=False,
        label="Overwrite",
        description="Replace an existing VoG run and fields of the same name",
    )
    inputs.bool(
        "companions",
        default=True,
        label="Companion scores",
        description="Also write <field>_loss, _margin (label errors), _maxprob, _energy (OOD) from the "
        "same forward passes, at no extra backward pass",
    )

    max_batch, max_workers = app_limits()
    _whole_number(
        ctx,
        inputs.int("batch_size", default=D["batch_size"], max=max_batch, label="Batch size"),
        "batch_size",
        D["batch_size"],
        1,
        "Batch size",
    )
    prop = inputs.str("device", label="Device", description="cpu, cuda or cuda:N (default: cuda when available)")
    if params.get("device"):
        from ..engine import resolve_device

        try:
            resolve_device(params["device"])
        except VoGError as e:
            _invalid(prop, str(e))
    # empty = the API's automatic choice (0 on CPU: decoding in the scoring process is fastest
    # there; up to 8 on a GPU), as for Python and CLI callers
    prop = inputs.int(
        "num_workers",
        default=None,
        max=max_workers,
        label="Data loader workers",
        description="Processes decoding images; empty: automatic (0 on CPU, up to 8 with a GPU)",
    )
    if ctx.params.get("num_workers") is not None:
        _whole_number(ctx, prop, "num_workers", 0, 0, "Data loader workers")
    _choice(inputs, "precision", CHOICES["precision"], D["precision"], "Precision", "Models and gradients", ctx)
    _choice(
        inputs,
        "autocast",
        CHOICES["autocast"],
        "none",
        "Mixed precision",
        "bf16/fp16 autocast: faster, approximate scores, ranks kept (-all: every layer in half "
        "precision, faster, ranks less exact; see docs/performance.md)",
        ctx,
    )
    inputs.bool(
        "resume",
        default=False,
        label="Resume",
        description="Continue an interrupted run with the same settings from its last saved chunk",
    )
    prop = inputs.bool(
        "allow_pickle",
        default=False,
        label="Allow pickled checkpoints",
        description="Unpickle whole-module checkpoints (runs code from the files)",
    )
    if params.get("allow_pickle") and not allowed:
        _invalid(
            prop,
            f"unpickling checkpoints from the App is disabled; the server's owner can allow it "
            f"by setting {ALLOW_IMPORTS}=1",
        )
    inputs.str(
        "state_dict_key",
        label="Weights entry",
        description="The entry of each training checkpoint holding the weights; empty: the trained weights "
        "(state_dict); state_dict_ema: timm's EMA weights",
    )
    _check_run_inline(ctx, inputs, paths, windows, allowed)


def _check_run_inline(ctx, inputs, paths, windows, allowed):
    """The run's up-front checks (:mod:`fiftyone_vog.core.preflight`, the rules ``compute_vog`` applies),
    each as an inline error on the control that fixes it."""
    from ..core import preflight
    from ..core.compute import _check_field_name, field_names, resolve_windows

    p, props = ctx.params, inputs.properties

    def check(name, fn, *args):
        """``fn(*args)``; a VoGError marks property ``name`` invalid (keeping an earlier error)."""
        try:
            return fn(*args), True
        except VoGError as e:
            if not props[name].invalid:
                _invalid(props[name], str(e))
            return None, False

    if p.get("device"):
        check("device", preflight.check_device, p["device"])
    if paths is not None and not check("checkpoints", preflight.check_checkpoint_files, paths, allowed, allowed)[1]:
        paths = None
    samples = ctx.target_view()
    label_field = p.get("label_field") or props["label_field"].default
    if label_field:
        check("label_mode", preflight.check_labels, samples, label_field, p.get("label_mode", D["label_mode"]))

    vog_field = p.get("vog_field", D["vog_field"])
    try:
        _check_field_name(vog_field)
        names = field_names(vog_field, resolve_windows(windows, paths) if windows is not None and paths else {})
    except VoGError:
        names = None  # a bad name or window: shown on its own input
    if names is not None:
        try:  # another type, or a field no VoG run wrote: no overwrite helps, so this replaces "tick 'Overwrite'"
            preflight.check_output_fields(samples, [f for pair in names.values() for f in pair], key=vog_field)
        except VoGError as e:
            _invalid(props["vog_field"], f"{e} (it holds other data; Overwrite does not replace it)")

    field = samples.get_field_schema().get(label_field)
    if (
        paths is None
        or props["model"].invalid
        or props["allow_pickle"].invalid
        or not len(samples)
        or getattr(field, "document_type", None) is not fo.Classification
    ):
        return
    try:
        _check_model_inline(inputs, p, props, check, samples, label_field, paths, allowed)
    except Exception:  # anything but a VoGError: the form stays usable, the run reports it
        pass


def _check_model_inline(inputs, p, props, check, samples, label_field, paths, allowed):
    """Load the first checkpoint into the model and run it on one image of the view; say which
    preprocessing the run will use."""
    from ..core import preflight
    from ..inputs import hf
    from ..inputs.checkpoints import manifest_model, manifest_of, script_model
    from ..inputs.images import ImageDataset, resolve_classes, resolve_transform
    from ..inputs.kinds import transform_summary

    manifest = manifest_of(parse_checkpoints(p.get("checkpoints")))
    labels = samples.distinct(f"{label_field}.label")
    given = lambda: manifest.check_classes(_split(p.get("classes"))) if manifest else _split(p.get("classes"))
    if hf.is_checkpoint_folder(paths[0]):  # -- Hugging Face folders: architecture and class order in config.json
        given, ok = _check_hf_inline(inputs, p, check, samples, label_field, paths, given, labels)
        if not ok:
            return
    classes, ok = check(
        "classes", lambda: resolve_classes(samples, label_field, given() if callable(given) else given, labels)
    )
    if not ok:
        return
    model, ok = check("model", lambda: p.get("model") or manifest_model(manifest))
    if not ok:
        return
    model, script_args = script_model(model, paths[0])
    module, ok = check(
        "model",
        preflight.load_one,
        paths[0],
        model,
        (manifest.num_classes if manifest and manifest.num_classes else None) or len(classes),
        bool(p.get("allow_pickle")) and allowed,
        allowed,
        allowed,
    )  # TorchScript: the switch, as the run
    if not ok:
        if p.get("classes") and "size mismatch" in props["model"].error_message:
            _invalid(props["classes"], props["model"].error_message)
        return
    transform, source = resolve_transform(
        p.get("transform", D["transform"]), module, model, manifest.transform if manifest else None, script_args
    )
    inputs.view(
        "transform_used",
        types.Notice(label=f"Preprocessing: {transform_summary(transform)} ({TRANSFORM_SOURCES[source]})"),
    )
    first = samples.select_fields().first()
    x = ImageDataset([first.id], [first.filepath], [0], transform)[0][0][None]
    try:
        preflight.check_outputs(module, x, len(classes))
    except VoGError as e:
        _invalid(props["classes" if "classes were given" in str(e) else "transform"], str(e))


def _check_hf_inline(inputs, p, check, samples, label_field, paths, given, labels):
    """Hugging Face checkpoint folders: their architecture is one transformers builds (never code from
    the folder) and their ``id2label`` fits the view's labels, each said on the control that fixes it;
    a notice says what was found. Returns ``(the classes in the model's order, ok)``."""
    from ..inputs import hf
    from ..inputs.labels import declared_classes

    names, ok = check("model", hf.check_architectures, paths, p.get("model") or None)
    if not ok:
        return None, False
    found, ok = check("classes", lambda: hf.resolve_classes(given(), paths))
    if not ok:
        return None, False
    classes, where = found
    unknown = sorted({l for l in labels if l is not None} - set(classes))
    if unknown:
        _invalid(
            inputs.properties["classes"],
            f"labels {unknown[:5]} in {label_field!r} are not among the model's classes {classes[:10]} "
            f"({where or 'classes='}); score a view without them",
        )
        return None, False
    declared = declared_classes(samples, label_field)
    order = (
        "; the dataset lists them in another order: labels are matched by name"
        if declared and set(declared) == set(classes) and list(declared) != classes
        else ""
    )
    shown = ", ".join(classes[:8]) + (" …" if len(classes) > 8 else "")
    inputs.view(
        "hf_found",
        types.Notice(
            label=f"Hugging Face checkpoints: {names[-1] if names else 'the model given'} from config.json; "
            f"classes in the model's order ({'id2label' if where else 'Classes'}): {shown}{order}"
        ),
    )
    return classes, True


#: Where the run's transform came from (:func:`fiftyone_vog.inputs.images.resolve_transform`), in the form's words.
TRANSFORM_SOURCES = {
    "argument": "chosen here",
    "manifest": "recorded with the checkpoints",
    "checkpoint": "timm's training arguments in the checkpoints",
    "model": "the model's own",
    "default": "the default",
}


#: Server-side caps on what an App user may ask of the server (environment variables).
MAX_BATCH_ENV, MAX_BATCH_DEFAULT = "FIFTYONE_VOG_APP_MAX_BATCH_SIZE", 512


def app_limits() -> tuple[int, int]:
    """``(max batch_size, max num_workers)`` an App user may ask for: batch size
    ``FIFTYONE_VOG_APP_MAX_BATCH_SIZE`` (default 512), workers the server's CPU cores."""
    raw = os.environ.get(MAX_BATCH_ENV, "").strip()
    try:
        max_batch = int(raw) if raw else MAX_BATCH_DEFAULT
    except ValueError:
        max_batch = MAX_BATCH_DEFAULT  # a typo on the server must not open the door: keep the default
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, max_batch), max(1, cores)


def _capped(p, name, default, cap, env_hint):
    try:
        value = int(p.get(name, default))
    except (TypeError, ValueError):
        raise VoGError(f"{name}={p.get(name)!r} is not a whole number") from None
    if value > cap:
        raise VoGError(
            f"{name}={value} is more than this server allows from the App ({cap}; {env_hint}); choose at most {cap}"
        )
    return value


def compute_vog_kwargs(ctx) -> dict:
    """The form's parameters → ``fov.compute_vog`` keyword arguments. TorchScript checkpoints
    (code) load only with the server owner's switch; batch size and workers are capped
    (:func:`app_limits`)."""
    p = ctx.params
    allowed = imports_allowed(ctx)
    if p.get("allow_pickle") and not allowed:  # re-checked: never trust the form alone
        raise VoGError(f"unpickling checkpoints from the App is disabled (set {ALLOW_IMPORTS}=1 on the server)")
    max_batch, max_workers = app_limits()
    batch_size = _capped(
        p, "batch_size", D["batch_size"], max_batch, f"the server's owner can raise it with {MAX_BATCH_ENV}"
    )
    num_workers = (
        None if p.get("num_workers") is None else _capped(p, "num_workers", 0, max_workers, "the server's CPU cores")
    )
    spec = parse_checkpoints(p["checkpoints"])
    files = check_app_checkpoints(ctx, spec)  # re-checked: App roots
    folder = isinstance(spec, str) and os.path.isdir(os.path.expanduser(spec))
    return dict(
        checkpoints=spec if folder else files,  # a folder as itself: its manifest is read by the run
        model=p.get("model") or None,
        label_field=p.get("label_field") or D["label_field"],
        classes=_split(p.get("classes")),
        label_mode=p.get("label_mode", D["label_mode"]),
        target=p.get("target", D["target"]),
        companions=bool(p.get("companions", True)),
        statistic=p.get("statistic", D["statistic"]),
        channel_reduction=p.get("channel_reduction", D["channel_reduction"]),
        normalization=p.get("normalization", D["normalization"]),
        vog_field=p.get("vog_field", "vog"),
        windows=parse_windows(p.get("windows")),
        transform=p.get("transform", D["transform"]),
        batch_size=batch_size,
        device=p.get("device") or None,
        num_workers=num_workers,
        overwrite=bool(p.get("overwrite", False)),
        precision=p.get("precision", D["precision"]),
        autocast=None if p.get("autocast", "none") in (None, "none") else p["autocast"],
        resume=bool(p.get("resume", False)),
        allow_pickle=bool(p.get("allow_pickle", False)),
        state_dict_key=p.get("state_dict_key") or None,
        allow_torchscript=allowed,  # TorchScript is code: only the server owner's switch allows it
        _allow_import=allowed,
    )


# -- save_vog_views ----------------------------------------------------------------
def _vog_runs(ctx, inputs):
    from ..core.compute import list_vog_runs

    runs = list_vog_runs(ctx.dataset)
    if not runs:
        prop = inputs.view("no_runs", types.Warning(label="This dataset has no VoG run yet; run Compute VoG first"))
        prop.invalid = True
        return None
    _dropdown(inputs, "vog_field", runs, "vog" if "vog" in runs else runs[0], "VoG field", "The VoG run (field) to use")
    return ctx.params.get("vog_field", runs[0])


def _name_prefix(params):
    """The form's optional name prefix: blank means the default names."""
    prefix = params.get("name_prefix")
    return (prefix.strip() or None) if isinstance(prefix, str) else prefix


def save_vog_views_form(ctx, inputs):
    """The Save VoG views form; a warning instead when the dataset has no VoG run."""
    if _vog_runs(ctx, inputs) is not None:
        # the API's rule (options.check_percentile), not FiftyOne's min/max with their own wording
        prop = inputs.float(
            "percentile",
            default=10,
            label="Percentile",
            description="vog-high / vog-low hold the top / bottom percentile of scores (and vog-label-errors "
            f"with the percentile rule); ({options.PERCENTILE_MIN}, {options.PERCENTILE_MAX}]",
        )
        try:
            options.check_percentile(ctx.params.get("percentile", 10))
        except options.OptionError as e:
            _invalid(prop, str(e))
        _choice(
            inputs,
            "label_error_rule",
            options.LABEL_ERROR_RULES,
            options.DEFAULT_LABEL_ERROR_RULE,
            "Label-error rule",
            "Which samples vog-label-errors holds: even-odds, those whose mean loss is above ln 2 "
            "(sized by the data); percentile, the top percentile by mean loss",
            ctx,
        )
        bools = _fields_of(ctx.dataset, ftype=fo.BooleanField)
        from ..audit.views import save_vog_views

        shuffled = api_default(save_vog_views, "shuffled_field")
        _dropdown(
            inputs,
            "shuffled_field",
            bools,
            shuffled if shuffled in bools else None,
            "Shuffled-label flag",
            "Boolean field marking shuffled labels (written by Shuffle labels)",
        )
        _dropdown(
            inputs,
            "ood_field",
            bools,
            None,
            "OOD flag field",
            "Optional boolean field marking out-of-distribution samples",
        )
        inputs.str(
            "ood_tag", default="ood", label="OOD tag", description="Sample tag marking out-of-distribution samples"
        )
        prefix_prop = inputs.str(
            "name_prefix",
            required=False,
            label="Name prefix",
            description="Name the views PREFIX-high, PREFIX-low, PREFIX-shuffled-labels, PREFIX-ood, "
            "PREFIX-label-errors, PREFIX-likely-ood (default: vog), e.g. vog-test to keep another score "
            "field's views beside these",
        )
        prefix = _name_prefix(ctx.params)
        try:
            names = vog_view_names(prefix)
        except VoGError as e:
            _invalid(prefix_prop, str(e))
            names = list(VIEW_NAMES)
        inputs.bool(
            "overwrite",
            default=True,
            label="Overwrite",
            description="Replace saved views of the same names that Save VoG views saved (never one of yours)",
        )
        _dropdown(inputs, "load_view", names, names[0], "Open afterwards", "Saved view to load in the App")


# -- shuffle_labels ----------------------------------------------------------------
def shuffle_labels_form(ctx, inputs) -> bool:
    """The Shuffle labels form; False (with a warning) when the dataset has no label field.

    Acts on the target view (dataset, current view or selected samples); every check of the field
    names (taken, another label field's audit, nothing to restore) is an inline error."""
    from ..audit.shuffle import default_flag_field, restore_problem, shuffle_labels, shuffle_problem

    action = _choice(
        inputs,
        "action",
        ("shuffle", "restore"),
        "shuffle",
        "Action",
        "Shuffle labels, or restore the originals of an earlier shuffle",
        ctx,
    )
    label_fields = _label_fields(ctx.dataset)
    if not label_fields:
        prop = inputs.view("no_labels", types.Warning(label="This dataset has no fo.Classification field"))
        prop.invalid = True
        return False
    inputs.view_target(ctx, action_description="Shuffle" if action == "shuffle" else "Restore")
    default = api_default(shuffle_labels, "label_field")
    default = default if default in label_fields else label_fields[0]
    props = {
        "label_field": _dropdown(
            inputs, "label_field", label_fields, default, "Label field", "fo.Classification field to shuffle"
        )
    }
    label_field = ctx.params.get("label_field") or default
    props["flag_field"] = inputs.str(
        "flag_field",
        label="Flag field",
        description=f"Boolean field marking the samples whose label changed (default: {default_flag_field(label_field)})",
    )
    props["original_field"] = inputs.str(
        "original_field",
        label="Original-label field",
        description=f"Where the original labels are kept (default: {label_field}_original)",
    )
    p = ctx.params
    flag, original = p.get("flag_field") or None, p.get("original_field") or None
    if action == "shuffle":
        default_fraction = api_default(shuffle_labels, "fraction")
        prop = inputs.float(
            "fraction",
            default=default_fraction,
            label="Fraction",
            description="Share of samples whose labels are shuffled, 0 to 1 (paper: 0.2)",
        )
        fraction = ctx.params.get(
            "fraction", default_fraction
        )  # checked here: FiftyOne's min= would say "greater than 0.0"
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            _invalid(prop, f"fraction must be a number from 0 to 1, got {fraction!r}; e.g. 0.2 for the paper's 20%")
        prop = inputs.int(
            "seed",
            default=api_default(shuffle_labels, "seed"),
            label="Seed",
            description="A whole number ≥ 0; the same seed gives the same shuffle",
        )
        try:
            shuffle_seed(ctx.params)
        except VoGError as e:
            _invalid(prop, str(e))
        _choice(
            inputs,
            "mode",
            options.SHUFFLE_MODES,
            api_default(shuffle_labels, "mode"),
            "Mode",
            "Give each drawn sample another class at random, or permute the drawn labels among themselves",
            ctx,
        )
        inputs.bool(
            "overwrite",
            default=False,
            label="Overwrite",
            description="Allow shuffling again a field that was already shuffled",
        )
        problem = shuffle_problem(
            ctx.dataset,
            label_field,
            flag or default_flag_field(label_field),
            original or f"{label_field}_original",
            bool(p.get("overwrite", False)),
            hints="app",
        )
    else:
        _, problem = restore_problem(ctx.dataset, label_field, flag, original, hints="app")
    if problem is not None:
        _invalid(props[problem[0]], problem[1])
    return True


def shuffle_seed(params) -> int:
    """The form's seed: a whole number ≥ 0; an emptied box is refused, not a random shuffle."""
    seed = params.get("seed", options.DEFAULT_SEED)
    try:
        if seed is None:
            raise options.OptionError(f"seed must be an integer ≥ 0, got nothing; e.g. {options.DEFAULT_SEED}")
        return options.check_seed(seed)
    except options.OptionError as e:
        raise VoGError(str(e)) from None


# -- export_vog_subset -------------------------------------------------------------
def export_vog_subset_form(ctx, inputs):
    """The Export VoG subset form; checks the export directory on the server."""
    saved = ctx.dataset.list_saved_views()
    _dropdown(
        inputs,
        "saved_view",
        saved,
        None,
        "Saved view",
        "Export this saved view (e.g. vog-high); empty: the target view below",
    )
    if not ctx.params.get("saved_view"):
        inputs.view_target(ctx, action_description="Export")
    prop = inputs.str(
        "export_dir",
        label="Export directory",
        description="A new or empty directory on the server, inside the App roots (FIFTYONE_VOG_APP_ROOTS)",
    )
    _needed(ctx, inputs, prop, "export_dir", "Export directory", "a new or empty directory on the server")
    if ctx.params.get("export_dir"):
        try:
            export_dir_kwargs(ctx)
        except VoGError as e:
            _invalid(prop, str(e).replace("overwrite=True (CLI: --overwrite)", "tick 'Overwrite'"))
    dataset_type = _choice(
        inputs,
        "dataset_type",
        EXPORT_TYPES,
        EXPORT_TYPES[0],
        "Format",
        "Directory tree per class, a FiftyOne dataset (every field), or a CSV manifest (id, filepath, label, scores)",
        ctx,
    )
    label_fields = _label_fields(ctx.dataset)
    _dropdown(
        inputs,
        "label_field",
        label_fields,
        "ground_truth" if "ground_truth" in label_fields else None,
        "Label field",
        "Labels to export",
    )
    if dataset_type == "csv":  # the other formats ignore it: the FiftyOne dataset holds every field, the tree none
        from ..core.compute import list_vog_runs

        runs = list_vog_runs(ctx.dataset) or _fields_of(ctx.dataset, ftype=fo.FloatField)
        _dropdown(
            inputs,
            "vog_field",
            runs,
            "vog" if "vog" in runs else (runs[0] if runs else None),
            "VoG field",
            "The VoG run whose scores are the manifest's columns",
        )
    inputs.bool("overwrite", default=False, label="Overwrite", description=OVERWRITE_HELP)


#: What the form says Overwrite does (the same rule as ``fov.export_vog_subset(overwrite=True)``).
OVERWRITE_HELP = (
    "Replace an earlier export of this plugin in that directory: only the files it wrote and that "
    "are unchanged are removed (fiftyone-vog's record in the database lists them; its "
    ".fiftyone-vog-export.json is information only). Anything else there is kept, and a "
    "dataset's media are never overwritten"
)


def export_dir_kwargs(ctx) -> str:
    """The form's export directory, confined to the App roots and checked like the API does."""
    from ..audit.export_safety import check_export_dir

    p = ctx.params
    path = check_app_path(ctx, p["export_dir"], "export directory")
    check_export_dir(path, ctx.dataset, bool(p.get("overwrite", False)))  # the media of the whole dataset
    return path


# -- index_vog_fields -------------------------------------------------------------
def index_vog_fields_form(ctx, inputs):
    """The Index VoG fields form: the fields fiftyone-vog wrote that have no index (or, with Drop,
    those with an index it created); the API's checks (MongoDB's budget) as an inline error."""
    from ..core import ownership
    from ..core.indexes import MAX_INDEXES, check_index_request, index_count, indexed_fields

    drop = bool(ctx.params.get("drop", False))
    inputs.bool(
        "drop",
        default=False,
        label="Drop",
        description="Drop the indexes fiftyone-vog created on these fields instead (frees MongoDB's budget)",
    )
    ours = [e.name for e in ownership.listing(ctx.dataset, kind=ownership.FIELD)]
    if drop:
        recorded = {e.options.get("field") for e in ownership.listing(ctx.dataset, kind=ownership.INDEX)}
        choices = [n for n in ours if n in recorded]
    else:
        have = indexed_fields(ctx.dataset)
        choices = [n for n in ours if n not in have]
    if not choices:
        what = "no index fiftyone-vog created" if drop else "no field fiftyone-vog wrote without an index"
        prop = inputs.view("nothing", types.Warning(label=f"This dataset has {what}"))
        prop.invalid = True
        return
    dd = types.DropdownView(multiple=True)
    for name in choices:
        dd.add_choice(name, label=name)
    prop = inputs.list(
        "fields",
        types.String(),
        label="Fields",
        description=f"Index these so that the grid's Sort by lists them ({index_count(ctx.dataset)} of "
        f"MongoDB's {MAX_INDEXES} indexes in use)",
        view=dd,
    )
    fields = _split(ctx.params.get("fields"))
    if fields:
        try:
            check_index_request(ctx.dataset, fields, drop)
        except VoGError as e:
            _invalid(prop, str(e))
