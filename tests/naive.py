"""The naive float64 reference of VoG and the small models and option grid the engine tests share.

One sample and one checkpoint at a time, every map kept: the definition in DESIGN.md, written as
plainly as possible. Every fast path in ``fiftyone_vog.engine`` is tested against it.
"""

import itertools

import numpy as np
import torch

from fiftyone_vog.engine import VoGOptions
from fiftyone_vog.models import SmallCNN

K, N, C, H, W, NCLS = 4, 9, 3, 7, 5, 4  # non-square images, several classes


def make_models(k=K, seed=0, num_classes=NCLS):
    torch.manual_seed(seed)
    models = []
    for _ in range(k):
        m = SmallCNN(num_classes=num_classes, in_channels=C, width=4)
        # non-trivial BatchNorm running statistics
        m.features[1].running_mean.uniform_(-0.5, 0.5)
        m.features[1].running_var.uniform_(0.5, 2.0)
        models.append(m)
    return models


def naive_vog(models, x, y, options, window, missing=None):
    """Reference: float64 copies, one sample and one checkpoint at a time, every map kept."""
    import copy

    ms = [copy.deepcopy(m).double().eval() for m in models]
    out = []
    for i in range(len(x)):
        xi = x[i : i + 1].double()
        if options.label_mode == "true" or (options.label_mode == "auto" and y[i] >= 0):
            p = int(y[i])
        else:
            with torch.no_grad():
                p = int(ms[-1](xi).argmax())
        maps = []
        for k in window:
            xk = xi.clone().requires_grad_(True)
            logits = ms[k](xk)
            score = torch.softmax(logits, 1)[0, p] if options.target == "probability" else logits[0, p]
            score.backward()
            g = xk.grad[0]
            maps.append(g.sum(0) if options.channel_reduction == "sum" else g.mean(0))
        s = torch.stack(maps)  # (K, H, W)
        mu = s.mean(0)
        var = ((s - mu) ** 2).mean(0)
        if options.statistic == "std":
            var = var.sqrt()
        out.append(float(var.mean()))
    return np.array(out)


ALL_OPTIONS = [
    VoGOptions(label_mode=lm, target=t, statistic=s, channel_reduction=c)
    for lm, t, s, c in itertools.product(
        ["true", "predicted", "auto"], ["logit", "probability"], ["variance", "std"], ["sum", "mean"]
    )
]


def option_id(o):
    return f"{o.label_mode}-{o.target}-{o.statistic}-{o.channel_reduction}"
