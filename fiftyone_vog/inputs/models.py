"""Small reference architectures for tests, the demo and CPU-sized experiments.

Usable as ``model="fiftyone_vog.models:SmallCNN"`` (the stable path, kept by :mod:`fiftyone_vog.inputs.models`).
"""

from __future__ import annotations

from torch import nn


class SmallCNN(nn.Module):
    """Two conv blocks (with BatchNorm) and a linear head; any input size.

    Args:
        num_classes: output size.
        in_channels: 3 for RGB, 1 for grayscale.
        width: channels of the first conv layer.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d((2, 2)),
        )
        self.head = nn.Linear(8 * width, num_classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


class MLP(nn.Module):
    """One hidden layer over flattened input (the paper's toy model has 10 hidden units)."""

    def __init__(self, in_features: int = 2, hidden: int = 10, num_classes: int = 2):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x):
        return self.net(x)
