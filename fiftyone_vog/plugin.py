"""Registers the plugin's operators and panel with FiftyOne (filled in by the plugin layer)."""


def register(plugin):
    pass
