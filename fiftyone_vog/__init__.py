"""fiftyone-vog: Variance of Gradients (VoG) example difficulty for FiftyOne datasets.

    import fiftyone_vog as fov
    fov.compute_vog(dataset, checkpoints="runs/exp1/epoch_*.pt", model="resnet18")

This package is also a FiftyOne plugin (``fiftyone.yml`` lives here); FiftyOne
calls :func:`register` when it loads the plugin.
"""

__version__ = "0.1.0"

from .engine import VoGError, class_normalize  # noqa: E402
from .api import (  # noqa: E402
    VoGResults,
    compute_vog,
    MixedFieldsWarning,
    delete_vog_run,
    get_vog_run,
    list_vog_runs,
    load_vog_results,
)
from . import analysis  # noqa: E402
from .report import vog_report  # noqa: E402
from .views import VOG_VIEW_NAMES, save_vog_views, vog_view_names  # noqa: E402
from .shuffle import restore_labels, shuffle_labels  # noqa: E402
from .export import export_vog_subset  # noqa: E402

__all__ = [
    "analysis",
    "vog_report",
    "VoGError",
    "VoGResults",
    "class_normalize",
    "compute_vog",
    "MixedFieldsWarning",
    "delete_vog_run",
    "get_vog_run",
    "list_vog_runs",
    "load_vog_results",
    "VOG_VIEW_NAMES",
    "save_vog_views",
    "vog_view_names",
    "shuffle_labels",
    "restore_labels",
    "export_vog_subset",
]


def register(plugin):
    """FiftyOne plugin entry point: registers the operators and the panel."""
    from .plugin import register as _register

    _register(plugin)
