"""fiftyone-vog: Variance of Gradients (VoG) example difficulty for FiftyOne datasets.

    import fiftyone_vog as fov
    fov.compute_vog(dataset, checkpoints="runs/exp1/epoch_*.pt", model="resnet18")

This package is also a FiftyOne plugin (``fiftyone.yml`` lives here); FiftyOne
calls :func:`register` when it loads the plugin.
"""

__version__ = "0.1.0"

import importlib

# Public names → the module that defines them. Loaded on first use (PEP 562), so that
# importing a FiftyOne-only module (``fiftyone_vog.audit.views``) does not load torch.
_PUBLIC = {
    "VoGError": ".errors",
    "class_normalize": ".engine",
    "VoGResults": ".core.runs",
    "compute_vog": ".core.compute",
    "MixedFieldsWarning": ".core.runs",
    "delete_vog_run": ".core.runs",
    "get_vog_run": ".core.runs",
    "list_vog_runs": ".core.runs",
    "load_vog_results": ".core.runs",
    "index_vog_fields": ".core.indexes",
    "vog_report": ".report",
    "VOG_VIEW_NAMES": ".audit.views",
    "save_vog_views": ".audit.views",
    "vog_view_names": ".audit.views",
    "shuffle_labels": ".audit.shuffle",
    "restore_labels": ".audit.shuffle",
    "export_vog_subset": ".audit.export",
}
_SUBPACKAGES = ("analysis", "app", "audit", "core", "engine", "inputs", "models", "report", "cli", "errors")

__all__ = ["analysis", *_PUBLIC]


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name], __name__), name)
    elif name in _SUBPACKAGES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


def register(plugin):
    """FiftyOne plugin entry point: registers the operators and the panel."""
    from .app.plugin import register as _register

    _register(plugin)
