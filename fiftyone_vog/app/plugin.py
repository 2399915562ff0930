"""Registers the plugin's operators and panel with FiftyOne (``@fiftyone-vog/vog``)."""


def register(plugin):
    """Called by FiftyOne's plugin loader with a ``PluginContext``; the names must match fiftyone.yml."""
    from .operators import OPERATORS
    from .panel import VoGPanel
    from .run_operators import RUN_OPERATOR_CLASSES

    for cls in (*OPERATORS, *RUN_OPERATOR_CLASSES, VoGPanel):
        plugin.register(cls)
