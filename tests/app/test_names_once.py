"""Names written once: the plugin name (fiftyone.yml is the manifest; Python reads one constant),
the saved views' names and the export types (one tuple each in the options table, used by the
API, the App's forms and the CLI's argparse choices)."""

import inspect
import os

import yaml

import fiftyone_vog as fov
from fiftyone_vog import options
from fiftyone_vog.app import forms, install, operators
from fiftyone_vog.audit import export, views
from fiftyone_vog.cli import build_parser


def _subparser(name):
    return next(a for a in build_parser()._actions if a.dest == "command").choices[name]


def test_plugin_name_is_fiftyone_yml_name():
    with open(os.path.join(os.path.dirname(fov.__file__), "fiftyone.yml"), encoding="utf-8") as f:
        manifest = yaml.safe_load(f)
    assert options.PLUGIN_NAME == manifest["name"] == "@fiftyone-vog/vog"
    assert install.PLUGIN_NAME is options.PLUGIN_NAME and operators.PLUGIN is options.PLUGIN_NAME


def test_view_names_and_export_types_come_from_the_options_table():
    assert options.VIEW_NAMES == (
        "vog-high",
        "vog-low",
        "vog-shuffled-labels",
        "vog-ood",
        "vog-label-errors",
        "vog-likely-ood",
    )
    assert views.VOG_VIEW_NAMES is forms.VIEW_NAMES is options.VIEW_NAMES
    assert views.VIEW_KINDS is options.VIEW_KINDS and views.VOG_HIGH == "vog-high"
    assert views.vog_view_names() == list(options.VIEW_NAMES)
    assert fov.VOG_VIEW_NAMES == options.VIEW_NAMES

    assert tuple(export.DATASET_TYPES) == options.EXPORT_TYPES and forms.EXPORT_TYPES is options.EXPORT_TYPES
    assert inspect.signature(fov.export_vog_subset).parameters["dataset_type"].default == options.DEFAULT_EXPORT_TYPE
    action = next(a for a in _subparser("export")._actions if a.dest == "dataset_type")
    assert tuple(action.choices) == options.EXPORT_TYPES and action.default == options.DEFAULT_EXPORT_TYPE


def test_precision_strategy_autocast_and_shuffle_modes_come_from_the_options_table():
    from fiftyone_vog.audit import shuffle
    from fiftyone_vog.engine import gradients, precision

    compute = {a.dest: a for a in _subparser("compute")._actions}
    assert tuple(compute["precision"].choices) == options.PRECISIONS == forms.CHOICES["precision"]
    assert tuple(compute["strategy"].choices) == options.STRATEGIES is gradients.STRATEGIES
    assert tuple(compute["autocast"].choices) == options.AUTOCASTS is precision.AUTOCAST_CHOICES
    assert forms.CHOICES["autocast"] == ("none", *options.AUTOCASTS)
    mode = next(a for a in _subparser("shuffle-labels")._actions if a.dest == "mode")
    assert tuple(mode.choices) == options.SHUFFLE_MODES is shuffle.MODES and mode.default == options.SHUFFLE_MODES[0]
    assert inspect.signature(fov.shuffle_labels).parameters["mode"].default == options.SHUFFLE_MODES[0]
