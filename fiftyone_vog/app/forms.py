"""The operators' forms: inputs, choices, inline validation, and parsing the App's parameters.

Every function here builds part of a ``types.Object`` form (``*_form``) or turns the
submitted ``ctx.params`` into API arguments (``*_kwargs``, ``parse_*``); the operators in
:mod:`fiftyone_vog.app.operators` call them from ``resolve_input`` and ``execute``.
"""

from __future__ import annotations

import json
import os

import fiftyone as fo
import fiftyone.operators.types as types

from ..errors import VoGError
from ..audit.views import vog_view_names
from ..defaults import TARGET as DEFAULT_TARGET

#: Server-side switch (environment variable or plugin secret) that lets App users
#: name ``package.module:callable`` models and unpickle whole-module checkpoints.
ALLOW_IMPORTS = "FIFTYONE_VOG_ALLOW_IMPORTS"
TRUTHY = ("1", "true", "yes", "on")
CHOICES = {
    "label_mode": ("true", "predicted", "auto"),
    "target": ("logit", "probability"),
    "statistic": ("variance", "std"),
    "channel_reduction": ("sum", "mean"),
    "normalization": ("zscore", "abs", "none"),
    "transform": ("rgb", "gray", "cifar", "imagenet"),
    "precision": ("float32", "float64"),
    "autocast": ("none", "bf16", "fp16", "bf16-all", "fp16-all"),
}
VIEW_NAMES = ("vog-high", "vog-low", "vog-shuffled-labels", "vog-ood", "vog-label-errors")
EXPORT_TYPES = ("image-classification-dir", "fiftyone", "csv")


# -- shared form helpers -----------------------------------------------------------
def imports_allowed(ctx=None) -> bool:
    """Whether the server's owner allows App users to make the server import code."""
    value = None
    if ctx is not None:
        try:
            value = ctx.secret(ALLOW_IMPORTS)
        except Exception:  # no secrets backend: fall back to the environment
            value = None
    if value is None:
        value = os.environ.get(ALLOW_IMPORTS, "")
    return str(value).strip().lower() in TRUTHY


def _invalid(prop, message: str):
    prop.invalid = True
    prop.error_message = message
    return None


# Only inputs without a sensible default are ``required``: the App fills in defaults,
# Python callers (``foo.execute_operator``) may leave them out.
def _choice(inputs, name, values, default, label, description, ctx):
    radio = types.RadioGroup(orientation="horizontal")
    for v in values:
        radio.add_choice(v, label=v)
    inputs.enum(name, radio.values(), default=default, label=label,
                description=description, view=radio)
    return ctx.params.get(name, default)


def _fields_of(samples, embedded_doc_type=None, ftype=None) -> list[str]:
    schema = samples.get_field_schema(ftype=ftype, embedded_doc_type=embedded_doc_type)
    return sorted(k for k in schema if not k.startswith("_"))


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
    """``"thirds"``, JSON, or ``"early=0:3,late=-3:"`` / ``"a=0+1"`` → the API's ``windows``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or value.strip() == "thirds":
        return value if not isinstance(value, str) else "thirds"
    if value.lstrip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise VoGError(f"windows: invalid JSON ({e})") from None
    out = {}
    for part in value.split(","):
        name, sep, spec = part.partition("=")
        if not sep or not name.strip():
            raise VoGError(f"windows: {part!r} is not NAME=SPEC (e.g. early=0:3,late=-3:)")
        spec = spec.strip()
        try:
            out[name.strip()] = spec if ":" in spec else [int(s) for s in spec.split("+")]
        except ValueError:
            raise VoGError(f"windows: {spec!r} is not a slice like 0:3 or indices like 0+1+2") from None
    return out


def _where(path: str) -> str:
    """Say where a relative path was looked up (the server's working directory)."""
    return "" if os.path.isabs(os.path.expanduser(path)) else f" (relative to the server's directory {os.getcwd()})"


# -- compute_vog -------------------------------------------------------------------
def compute_vog_form(ctx, inputs):
    """The Compute VoG form; every check that needs the server happens here."""
    from ..inputs.checkpoints import model_factory, resolve_checkpoints
    from ..core.compute import field_names, resolve_windows

    inputs.view_target(ctx, action_description="Score")
    allowed = imports_allowed(ctx)
    params = ctx.params

    prop = inputs.str("checkpoints", required=True, label="Checkpoints",
                      description="On the server: a glob such as /runs/exp1/epoch_*.pt, a directory, "
                      "or comma-separated files in training order (at least 2)")
    paths = None
    spec = params.get("checkpoints")
    if spec:
        try:
            paths = resolve_checkpoints(parse_checkpoints(spec))
        except VoGError as e:
            where = _where(spec.split(",")[0].strip()) if isinstance(spec, str) else ""
            _invalid(prop, f"{e}{where}")
        else:
            inputs.view("checkpoints_found", types.Notice(
                label=f"{len(paths)} checkpoints: {paths[0].name} … {paths[-1].name}"))

    prop = inputs.str("model", label="Model",
                      description="torchvision architecture (resnet18, ...), or 'package.module:callable' "
                      f"if the server sets {ALLOW_IMPORTS}=1; empty for TorchScript checkpoints")
    model = params.get("model") or None
    if model:
        try:
            model_factory(model, allow_import=allowed)
        except VoGError as e:
            _invalid(prop, str(e))

    label_fields = _fields_of(ctx.dataset, embedded_doc_type=fo.Classification)
    default_label = "ground_truth" if "ground_truth" in label_fields else (label_fields[0] if label_fields else None)
    _dropdown(inputs, "label_field", label_fields, default_label, "Label field",
              "fo.Classification field with the labels the model was trained on")
    inputs.str("classes", label="Classes",
               description="Comma-separated class names in the model's output order (default: the dataset's classes)")

    _choice(inputs, "label_mode", CHOICES["label_mode"], "true", "Label mode",
            "Gradient of the true label, of the trained model's prediction, or 'auto': the label where "
            "present, else the prediction (unlabeled / out-of-distribution samples)", ctx)
    _choice(inputs, "target", CHOICES["target"], DEFAULT_TARGET, "Target",
            f"Softmax probability or pre-softmax logit (the paper's); default {DEFAULT_TARGET}, measured best", ctx)
    _choice(inputs, "statistic", CHOICES["statistic"], "variance", "Statistic", "Per-pixel variance or std across checkpoints", ctx)
    _choice(inputs, "channel_reduction", CHOICES["channel_reduction"], "sum", "Channel reduction", "Over colour channels", ctx)
    _choice(inputs, "normalization", CHOICES["normalization"], "zscore", "Normalization",
            "Class-normalized z-score (paper), its absolute value, or none", ctx)
    _choice(inputs, "transform", CHOICES["transform"], "rgb", "Transform", "Image preprocessing preset", ctx)

    prop = inputs.str("windows", label="Windows",
                      description="Optional checkpoint subsets scored in the same run: 'thirds' or 'early=0:3,late=-3:'")
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
    vog_field = _new_field(ctx, inputs, "vog_field", "vog", "Output field",
                           "Field for the class-normalized score (also the run key); "
                           "<field>_raw gets the raw score", existing, overwrite)
    if vog_field and windows is not None and paths is not None and not overwrite:
        try:
            taken = [f for pair in field_names(vog_field, resolve_windows(windows, paths)).values()
                     for f in pair if f in existing]
        except VoGError:
            taken = []
        if taken:
            _invalid(inputs.properties["vog_field"], f"{taken[0]!r} is already used; tick 'Overwrite' or choose another name")
    inputs.bool("overwrite", default=False, label="Overwrite",
                description="Replace an existing VoG run and fields of the same name")
    inputs.bool("companions", default=True, label="Companion scores",
                description="Also write <field>_loss, _margin (label errors), _maxprob, _energy (OOD) from the "
                            "same forward passes, at no extra backward pass")

    inputs.int("batch_size", default=64, min=1, label="Batch size")
    inputs.str("device", label="Device", description="cpu, cuda or cuda:N (default: cuda when available)")
    inputs.int("num_workers", default=0, min=0, label="Data loader workers")
    _choice(inputs, "precision", CHOICES["precision"], "float32", "Precision", "Models and gradients", ctx)
    _choice(inputs, "autocast", CHOICES["autocast"], "none", "Mixed precision",
            "bf16/fp16 autocast: faster, approximate scores, ranks kept (-all: every layer in half "
            "precision, faster, ranks less exact; see docs/performance.md)", ctx)
    inputs.bool("resume", default=False, label="Resume",
                description="Continue an interrupted run with the same settings from its last saved chunk")
    prop = inputs.bool("allow_pickle", default=False, label="Allow pickled checkpoints",
                       description="Unpickle whole-module checkpoints (runs code from the files)")
    if params.get("allow_pickle") and not allowed:
        _invalid(prop, f"unpickling checkpoints from the App is disabled; the server's owner can allow it "
                       f"by setting {ALLOW_IMPORTS}=1")


def compute_vog_kwargs(ctx) -> dict:
    """The form's parameters → ``fov.compute_vog`` keyword arguments."""
    p = ctx.params
    allowed = imports_allowed(ctx)
    if p.get("allow_pickle") and not allowed:  # re-checked: never trust the form alone
        raise VoGError(f"unpickling checkpoints from the App is disabled (set {ALLOW_IMPORTS}=1 on the server)")
    return dict(
        checkpoints=parse_checkpoints(p["checkpoints"]),
        model=p.get("model") or None,
        label_field=p.get("label_field") or "ground_truth",
        classes=_split(p.get("classes")),
        label_mode=p.get("label_mode", "true"),
        target=p.get("target", DEFAULT_TARGET),
        companions=bool(p.get("companions", True)),
        statistic=p.get("statistic", "variance"),
        channel_reduction=p.get("channel_reduction", "sum"),
        normalization=p.get("normalization", "zscore"),
        vog_field=p.get("vog_field", "vog"),
        windows=parse_windows(p.get("windows")),
        transform=p.get("transform", "rgb"),
        batch_size=int(p.get("batch_size", 64)),
        device=p.get("device") or None,
        num_workers=int(p.get("num_workers", 0)),
        overwrite=bool(p.get("overwrite", False)),
        precision=p.get("precision", "float32"),
        autocast=None if p.get("autocast", "none") in (None, "none") else p["autocast"],
        resume=bool(p.get("resume", False)),
        allow_pickle=bool(p.get("allow_pickle", False)),
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
    _dropdown(inputs, "vog_field", runs, "vog" if "vog" in runs else runs[0], "VoG field",
              "The VoG run (field) to use")
    return ctx.params.get("vog_field", runs[0])


def _name_prefix(params):
    """The form's optional name prefix: blank means the default names."""
    prefix = params.get("name_prefix")
    return (prefix.strip() or None) if isinstance(prefix, str) else prefix


def save_vog_views_form(ctx, inputs):
    """The Save VoG views form; a warning instead when the dataset has no VoG run."""
    if _vog_runs(ctx, inputs) is not None:
        inputs.float("percentile", default=10, min=0.01, max=50, label="Percentile",
                     description="vog-high / vog-low hold the top / bottom percentile of scores; "
                                 "vog-label-errors the top percentile by mean loss (<field>_loss)")
        bools = _fields_of(ctx.dataset, ftype=fo.BooleanField)
        _dropdown(inputs, "shuffled_field", bools, "label_shuffled" if "label_shuffled" in bools else None,
                  "Shuffled-label flag", "Boolean field marking shuffled labels (written by Shuffle labels)")
        _dropdown(inputs, "ood_field", bools, None, "OOD flag field",
                  "Optional boolean field marking out-of-distribution samples")
        inputs.str("ood_tag", default="ood", label="OOD tag", description="Sample tag marking out-of-distribution samples")
        prefix_prop = inputs.str(
            "name_prefix", required=False, label="Name prefix",
            description="Name the views PREFIX-high, PREFIX-low, PREFIX-shuffled-labels, PREFIX-ood, "
                        "PREFIX-label-errors (default: vog), e.g. vog-test to keep another score field's views "
                        "beside these")
        prefix = _name_prefix(ctx.params)
        try:
            names = vog_view_names(prefix)
        except VoGError as e:
            _invalid(prefix_prop, str(e))
            names = list(VIEW_NAMES)
        inputs.bool("overwrite", default=True, label="Overwrite", description="Replace saved views of the same names")
        _dropdown(inputs, "load_view", names, names[0], "Open afterwards", "Saved view to load in the App")


# -- shuffle_labels ----------------------------------------------------------------
def shuffle_labels_form(ctx, inputs) -> bool:
    """The Shuffle labels form; False (with a warning) when the dataset has no label field."""
    action = _choice(inputs, "action", ("shuffle", "restore"), "shuffle", "Action",
                     "Shuffle labels, or restore the originals of an earlier shuffle", ctx)
    label_fields = _fields_of(ctx.dataset, embedded_doc_type=fo.Classification)
    if not label_fields:
        prop = inputs.view("no_labels", types.Warning(label="This dataset has no fo.Classification field"))
        prop.invalid = True
        return False
    _dropdown(inputs, "label_field", label_fields, "ground_truth" if "ground_truth" in label_fields else label_fields[0],
              "Label field", "fo.Classification field to shuffle")
    inputs.str("flag_field", default="label_shuffled", label="Flag field",
               description="Boolean field marking the samples whose label changed")
    inputs.str("original_field", label="Original-label field",
               description="Where the original labels are kept (default: <label_field>_original)")
    if action == "shuffle":
        inputs.float("fraction", default=0.2, min=0.0, max=1.0, label="Fraction",
                     description="Share of samples whose labels are shuffled (paper: 20%)")
        inputs.int("seed", default=51, label="Seed")
        _choice(inputs, "mode", ("random-class", "permute"), "random-class", "Mode",
                "Give each drawn sample another class at random, or permute the drawn labels among themselves", ctx)
        inputs.bool("overwrite", default=False, label="Overwrite",
                    description="Allow shuffling again a field that was already shuffled")
    return True


# -- export_vog_subset -------------------------------------------------------------
def export_vog_subset_form(ctx, inputs):
    """The Export VoG subset form; checks the export directory on the server."""
    saved = ctx.dataset.list_saved_views()
    _dropdown(inputs, "saved_view", saved, None, "Saved view",
              "Export this saved view (e.g. vog-high); empty: the target view below")
    if not ctx.params.get("saved_view"):
        inputs.view_target(ctx, action_description="Export")
    prop = inputs.str("export_dir", required=True, label="Export directory", description="A directory on the server")
    export_dir = ctx.params.get("export_dir")
    overwrite = bool(ctx.params.get("overwrite", False))
    if export_dir:
        full = os.path.abspath(os.path.expanduser(export_dir))
        if os.path.isfile(full):
            _invalid(prop, f"{full} is a file, not a directory")
        elif os.path.isdir(full) and os.listdir(full) and not overwrite:
            _invalid(prop, f"{full} already holds files; tick 'Overwrite' or choose an empty directory")
    _choice(inputs, "dataset_type", EXPORT_TYPES, EXPORT_TYPES[0], "Format",
            "Directory tree per class, a FiftyOne dataset, or a CSV manifest (id, filepath, label, scores)", ctx)
    label_fields = _fields_of(ctx.dataset, embedded_doc_type=fo.Classification)
    _dropdown(inputs, "label_field", label_fields, "ground_truth" if "ground_truth" in label_fields else None,
              "Label field", "Labels to export")
    inputs.str("vog_field", default="vog", label="VoG field", description="Scores included in the export")
    inputs.bool("overwrite", default=False, label="Overwrite", description="Allow a directory that already holds files")
