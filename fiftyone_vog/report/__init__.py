"""The VoG report: an HTML page with embedded plots, PNG figures and 5×5 image grids."""

from .html import image_grid, vog_report

__all__ = ["image_grid", "vog_report"]
