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


class _BasicBlock(nn.Module):
    """ResNet's two-conv residual block (BatchNorm after each conv, 1×1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet18(nn.Module):
    """ResNet-18 with the CIFAR stem (one 3×3 conv, no max-pool), for 32×32 inputs.

    Four stages of two basic blocks with ``width``, 2, 4 and 8 × ``width`` channels (strides 1, 2, 2, 2),
    global average pooling and a linear head. ``width=64`` is the usual CIFAR ResNet-18; the
    digits paper-recipe example uses ``width=16`` (¼ width) to fit a CPU.

    Args:
        num_classes: output size.
        in_channels: 3 for RGB, 1 for grayscale.
        width: channels of the stem and the first stage.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        layers, cin = [], width
        for i, stride in enumerate((1, 2, 2, 2)):
            cout = width * 2**i
            layers += [_BasicBlock(cin, cout, stride), _BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.head(self.pool(self.layers(self.stem(x))).flatten(1))


class CifarResNet18W16(CifarResNet18):
    """:class:`CifarResNet18` at ¼ width (``width=16``), by a name that ``compute_vog(model=)``, the CLI
    and the App build without arguments: the network of
    :data:`fiftyone_vog.options.MEMORIZING_RECIPE`, which fits shuffled labels on MNIST-sized images.

    Args:
        num_classes: output size.
        in_channels: 3 for RGB, 1 for grayscale.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3):
        super().__init__(num_classes=num_classes, in_channels=in_channels, width=16)
