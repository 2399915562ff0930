"""Registers the plugin's operators and panel with FiftyOne (``@fiftyone-vog/vog``)."""


def register(plugin):
    """Called by FiftyOne's plugin loader with a ``PluginContext``; the names must match fiftyone.yml."""
    from .operators import OPERATORS
    from .panel import VoGPanel

    for cls in (*OPERATORS, VoGPanel):
        plugin.register(cls)
