"""The options table: every choice and default that the API, the CLI and the App's forms share,
and the parsers of values typed as text (``--windows``, the form's Windows box).

Imports neither torch nor FiftyOne, so the CLI's argument parser and the forms read it cheaply.
Errors are :class:`OptionError`, a :class:`~fiftyone_vog.errors.VoGError`: one line, exit status
2 on the CLI.
"""

from __future__ import annotations

import json
import math
import numbers
from types import MappingProxyType

from .errors import VoGError

LABEL_MODES = ("true", "predicted", "auto")
TARGETS = ("logit", "probability")
STATISTICS = ("variance", "std")
CHANNEL_REDUCTIONS = ("sum", "mean")
NORMALIZATIONS = ("zscore", "abs", "none")
#: ``transform=``: ``auto`` (the checkpoints' manifest's, else the model's own preprocessing, e.g. a
#: timm model's eval transform, else ``rgb``) or a preset; Python callers may pass a callable.
TRANSFORMS = ("auto", "rgb", "gray", "cifar", "imagenet")
#: ``precision=``: the engine's floating point type.
PRECISIONS = ("float32", "float64")
#: ``strategy=``: checkpoints one after another (``loop``), the same with the batch cut into one
#: part per CPU thread (``split``), or all checkpoints in one batched pass (``vmap``).
STRATEGIES = ("auto", "loop", "split", "vmap")
#: ``autocast=``: a half-precision dtype, or one with ``-all`` (the input layer in half precision
#: too: faster, less precise ranks). ``None`` (the App's "none") is full precision.
AUTOCASTS = ("bf16", "fp16", "bf16-all", "fp16-all")
#: ``shuffle_labels``' ``mode=``; the first is the default.
SHUFFLE_MODES = ("random-class", "permute")
#: The training-dynamics companions of VoG, in the order their fields are written
#: (``{vog_field}_{name}``; computed in :mod:`fiftyone_vog.engine.companions`).
COMPANIONS = ("loss", "margin", "maxprob", "energy")
#: +1 when a high value of a companion flags a sample (like VoG), −1 when a low value does.
COMPANION_SIGNS = {"loss": 1, "margin": -1, "maxprob": -1, "energy": 1}

#: ``train_classifier``'s optimizers (:mod:`fiftyone_vog.inputs.training`); the first is its default.
OPTIMIZERS = ("sgd", "adamw")
#: ``train_classifier``'s learning rate for each optimizer when none is given.
DEFAULT_LR = MappingProxyType({"sgd": 0.05, "adamw": 1e-3})
#: A training recipe that memorizes shuffled labels on MNIST-sized images, chosen by measurement
#: (docs/results.md, *Can the network memorize?*; ``examples/memorization_fit.py``): a ¼-width
#: ``CifarResNet18`` trained with AdamW. ``optimizer``, ``lr``, ``batch_size`` and ``epochs`` are
#: ``train_classifier``'s arguments; ``model`` and ``width`` build the network, which ``name``
#: builds without arguments (``CifarResNet18W16``: what ``compute_vog(model=)``, the CLI and the App take).
MEMORIZING_RECIPE = MappingProxyType(
    {
        "model": "fiftyone_vog.models:CifarResNet18",
        "width": 16,
        "name": "fiftyone_vog.models:CifarResNet18W16",
        "optimizer": "adamw",
        "lr": 1e-3,
        "batch_size": 64,
        "epochs": 30,
    }
)

#: The default class score whose input gradient VoG measures, chosen by measurement (README
#: "Results", docs/results.md): ``"probability"`` (softmax) flags memorized labels and OOD samples
#: on our data where the paper's main-text ``"logit"`` ranks memorized samples *below* clean ones;
#: ``"logit"`` stays available, exactly. The API, the CLI and the App form all read it here.
DEFAULT_TARGET = "probability"
#: ``compute_vog``'s defaults, which its signature, the CLI's ``compute`` and the App's Compute VoG
#: form all read here (``transform``: the API's ``None`` means ``"auto"``).
DEFAULTS = MappingProxyType(
    {
        "label_field": "ground_truth",
        "label_mode": "true",
        "target": DEFAULT_TARGET,
        "statistic": "variance",
        "channel_reduction": "sum",
        "normalization": "zscore",
        "vog_field": "vog",
        "transform": "auto",
        "batch_size": 64,
        "precision": "float32",
    }
)
#: ``shuffle_labels``' default seed (the paper's audit is reproducible by default).
DEFAULT_SEED = 51
#: The plugin's name, as ``fiftyone.yml`` declares it (a test checks they agree): its operators'
#: URIs are ``{PLUGIN_NAME}/{operator}``.
PLUGIN_NAME = "@fiftyone-vog/vog"
#: The operators that manage VoG runs from the App (info, rename, delete; fiftyone.yml lists them),
#: and the CLI's ``runs`` subcommands that mirror them (with ``list``).
RUN_OPERATORS = ("get_vog_run_info", "rename_vog_run", "delete_vog_run")
RUN_COMMANDS = ("list", "info", "rename", "delete")
#: The kinds of saved view ``save_vog_views`` creates, in the order it creates them; a view is
#: named ``{name_prefix}-{kind}``, ``name_prefix`` defaulting to :data:`DEFAULT_VIEW_PREFIX`.
#: ``likely-ood`` ranks every scored sample by :data:`QUESTION_SCORES`' OOD score (no tag needed).
VIEW_KINDS = ("high", "low", "shuffled-labels", "ood", "label-errors", "likely-ood")
DEFAULT_VIEW_PREFIX = "vog"
#: The saved views' default names: ``vog-high``, ``vog-low``, …
VIEW_NAMES = tuple(f"{DEFAULT_VIEW_PREFIX}-{kind}" for kind in VIEW_KINDS)
#: Which scores answer which question, best first by the AUROCs measured in docs/results.md
#: ("Which score to trust"): the first one a run wrote is what the likely-OOD view sorts by and
#: what the verdict of the report and the panel names when the data has no flag to measure on;
#: with a flag, the verdict names the best of them there. A part is a companion's name, ``"raw"``
#: (raw VoG) or ``"score"`` (the class-normalized VoG). OOD's leave out loss and margin: they read
#: the label, which an OOD sample lacks (it gets its prediction's).
QUESTION_SCORES = MappingProxyType(
    {
        "label-errors": ("loss", "margin", "score", "raw"),
        "ood": ("energy", "maxprob", "raw", "score"),
    }
)
#: ``save_vog_views``' ``label_error_rule``: which samples ``vog-label-errors`` holds.
#: ``"even-odds"``: mean loss of the used label above :data:`EVEN_ODDS_LOSS` (its geometric-mean
#: probability over the checkpoints below 1/2), sized by the data, chosen by the precision and
#: recall measured in docs/views-shuffle-export.md; ``"percentile"``: the top ``percentile``%.
LABEL_ERROR_RULES = ("even-odds", "percentile")
#: The default rule for the run's own loss companion (a score field the user names gets
#: ``"percentile"``: the loss threshold means nothing for another score).
DEFAULT_LABEL_ERROR_RULE = LABEL_ERROR_RULES[0]
#: ln 2: the mean cross-entropy above which the used label had less than even odds.
EVEN_ODDS_LOSS = math.log(2)
#: ``export_vog_subset``'s ``dataset_type`` choices; the first is the default.
EXPORT_TYPES = ("image-classification-dir", "fiftyone", "csv")
DEFAULT_EXPORT_TYPE = EXPORT_TYPES[0]
#: MongoDB's limit of indexes per collection (``_id`` included): a run indexes only the fields the
#: App's grid and the saved views need (fiftyone_vog/core/indexes.py), the rest on request.
MAX_INDEXES = 64
#: The operator (and the CLI's ``index`` subcommand) that indexes other VoG fields, or drops them.
INDEX_OPERATOR = "index_vog_fields"
#: ``save_vog_views``' slice size in percent: ``PERCENTILE_MIN < percentile <= PERCENTILE_MAX``.
PERCENTILE_MIN, PERCENTILE_MAX = 0, 100


class OptionError(VoGError):
    """A value that is not one of an option's accepted forms; the message says what is."""


def parse_windows(value, what: str = "windows"):
    """The text form of ``windows`` → the API's ``windows`` argument.

    ``None`` or blank → ``None``; ``"thirds"``; JSON (``{"early": "0:3", "late": [7, 8, 9]}``);
    or ``NAME=SPEC`` pairs, ``"early=0:3,late=-3:"`` (slices) or ``"a=0+1+2"`` (indices).
    Non-text values (a mapping from Python) pass through unchanged. A window name given twice
    is an error, never a silent last-one-wins.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text == "thirds":
        return "thirds"
    if text.startswith("{"):
        try:
            pairs = json.loads(text, object_pairs_hook=list)
        except json.JSONDecodeError as e:
            raise OptionError(f'{what}: invalid JSON ({e}); e.g. \'{{"early": "0:3", "late": "-3:"}}\'') from None
        if not isinstance(pairs, list):
            raise OptionError(f"{what}: JSON must be an object of window name → checkpoints")
        out = {}
        for name, spec in pairs:
            _add(out, name, _json_spec(name, spec), what)
        return out
    out = {}
    for part in text.split(","):
        name, sep, spec = part.partition("=")
        if not sep or not name.strip():
            raise OptionError(f"{what}: {part!r} is not NAME=SPEC (e.g. early=0:3,late=-3:)")
        spec = spec.strip()
        if ":" not in spec:
            try:
                spec = [int(s) for s in spec.split("+")]
            except ValueError:
                raise OptionError(
                    f"{what}: window {name.strip()!r}: {spec!r} is not a slice like 0:3 or indices like 0+1+2"
                ) from None
        _add(out, name.strip(), spec, what)
    return out


def _add(out: dict, name, spec, what):
    if name in out:
        raise OptionError(f"{what}: window {name!r} is given twice; give each window one name")
    out[name] = spec


def _json_spec(name, spec):
    """A JSON window spec is a slice string, or a list of indices / checkpoint file names."""
    if isinstance(spec, str):
        return spec
    if (
        isinstance(spec, list)
        and spec
        and all(isinstance(s, str) or (isinstance(s, int) and not isinstance(s, bool)) for s in spec)
    ):
        return spec
    raise OptionError(
        f'window {name!r}: {json.dumps(spec)} is not a slice like "0:3" or a non-empty list of '
        "checkpoint indices or file names"
    )


def check_seed(seed, what: str = "seed") -> int:
    """A random seed is a whole number ≥ 0 (numpy's rule); 1.5 is refused, not truncated."""
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Real)
        or (isinstance(seed, float) and not (math.isfinite(seed) and seed.is_integer()))
        or seed < 0
    ):
        raise OptionError(f"seed must be an integer ≥ 0, got {seed!r}; e.g. {DEFAULT_SEED}")
    return int(seed)


def check_label_error_rule(rule) -> str | None:
    """``save_vog_views``' ``label_error_rule``: None (the default for the field) or one of
    :data:`LABEL_ERROR_RULES`."""
    if rule is None or rule in LABEL_ERROR_RULES:
        return rule
    raise OptionError(f"label_error_rule must be one of {', '.join(LABEL_ERROR_RULES)}, got {rule!r}")


def check_percentile(percentile) -> float:
    """``save_vog_views``' percentile: a number in (0, 100]."""
    try:
        value = float(percentile)
    except (TypeError, ValueError):
        raise OptionError(
            f"percentile must be a number in ({PERCENTILE_MIN}, {PERCENTILE_MAX}], got {percentile!r}"
        ) from None
    if not PERCENTILE_MIN < value <= PERCENTILE_MAX:
        raise OptionError(
            f"percentile must be in ({PERCENTILE_MIN}, {PERCENTILE_MAX}], got {value:g}; "
            "e.g. 10 for the top and bottom 10%"
        )
    return value
