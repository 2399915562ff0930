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
    "describe_vog_run": ".core.runs",
    "rename_vog_run": ".core.runs",
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
    """FiftyOne plugin entry point: registers the operators and the panel — those of the package
    ``fiftyone_vog`` (see :func:`_as_package`)."""
    importlib.import_module(".app.plugin", _as_package().__name__).register(plugin)


def _as_package():
    """This package under its own name, ``fiftyone_vog``.

    FiftyOne's plugin loader (the App server, ``fiftyone delegated launch``) executes this file
    as a module of its own naming (``fiftyone.plugins.orgs.fiftyone_vog.vog``); the relative
    imports below it would then load a second copy of every module under that name, and a run
    would record its classes' path there, which no other process can import. So the plugin runs
    the package ``fiftyone_vog``: the one already imported, else this folder under that name
    (a link to the package, or a copy of it, in the plugins directory).
    """
    import sys

    if __name__ == "fiftyone_vog":
        return sys.modules[__name__]
    if "fiftyone_vog" not in sys.modules:
        import importlib.util
        import os

        spec = importlib.util.spec_from_file_location(
            "fiftyone_vog", __file__, submodule_search_locations=[os.path.dirname(__file__)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules["fiftyone_vog"] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules["fiftyone_vog"]
            raise
    return sys.modules["fiftyone_vog"]
