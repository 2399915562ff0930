"""Stable import path of the reference architectures (``model="fiftyone_vog.models:SmallCNN"``).

Saved runs, scripts and App forms name this path; the code lives in :mod:`fiftyone_vog.inputs.models`.
"""

from .inputs.models import MLP, CifarResNet18, CifarResNet18W16, SmallCNN

__all__ = ["MLP", "CifarResNet18", "CifarResNet18W16", "SmallCNN"]
