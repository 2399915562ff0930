"""Helpers shared by the examples: digits data, training with in-memory checkpoints, VoG on
tensors with the package's engine, tables and plots.

The experiments run on tensors (no FiftyOne) so that many settings can be compared in seconds;
``demo_digits.py`` and ``cifar_imagenet_recipe.py`` show the FiftyOne way.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

# examples/ is not a package: make `import _common` work from anywhere and keep the repo importable
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from fiftyone_vog.engine import VoGEngine, VoGOptions, class_normalize, score_batches  # noqa: E402
from fiftyone_vog.inputs.training import train_classifier  # noqa: E402


# -- data ----------------------------------------------------------------------
def digits_images(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as uint8 grayscale images (bilinear upscale of the 8×8 originals).

    Returns:
        images (N, size, size) uint8 with white ink on black; labels (N,) int64 in 0..9.
    """
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    raw = (d.images / 16.0 * 255).round().astype(np.uint8)  # 0..16 → 0..255
    if size == 8:
        return raw, d.target.astype(np.int64)
    out = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in raw])
    return out, d.target.astype(np.int64)


def to_tensor(images: np.ndarray, channels: int = 1) -> torch.Tensor:
    """(N, H, W) uint8 → (N, channels, H, W) float32 in [0, 1]."""
    x = torch.from_numpy(images).float().div(255)[:, None]
    return x.expand(-1, channels, -1, -1).contiguous()


def split_indices(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test index split."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=labels)
    return np.sort(tr), np.sort(te)


def shuffle_labels_array(
    labels: np.ndarray, fraction: float, num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Give ``fraction`` of the samples a different, uniformly drawn wrong label.

    Returns:
        (new_labels, flag) where ``flag`` marks the shuffled samples. Every shuffled sample's new
        label differs from its original one, so the flag means "the label is wrong".
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    chosen = rng.choice(n, size=int(round(fraction * n)), replace=False)
    new = labels.copy()
    offset = rng.integers(1, num_classes, size=len(chosen))  # 1..C-1: never the same class
    new[chosen] = (labels[chosen] + offset) % num_classes
    flag = np.zeros(n, dtype=bool)
    flag[chosen] = True
    return new, flag


def gaussian_clusters(n: int = 500, seed: int = 0, separation: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Two isotropic 2-D Gaussian clusters (unit variance) whose centres are ``separation`` apart."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    centres = np.array([[-separation / 2, 0.0], [separation / 2, 0.0]])
    rot = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])  # a boundary not aligned with an axis
    x = (centres[y] + rng.normal(size=(n, 2))) @ rot.T
    return x.astype(np.float32), y.astype(np.int64)


# -- training with in-memory checkpoints -----------------------------------------
class SnapshotSaver:
    """Duck-types :class:`fiftyone_vog.inputs.training.CheckpointSaver` but keeps the checkpoints in memory."""

    def __init__(self):
        self.states: list[dict[str, torch.Tensor]] = []

    def save(self, model: nn.Module, epoch: int, force: bool = False):
        self.states.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    def models(self, factory: Callable[[], nn.Module], indices: Sequence[int] | None = None) -> list[nn.Module]:
        out = []
        for i in indices if indices is not None else range(len(self.states)):
            m = factory()
            m.load_state_dict(self.states[i])
            out.append(m.eval())
        return out


def train_with_snapshots(
    factory: Callable[[], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    seed: int = 0,
    log_every: int = 0,
    **kwargs,
) -> tuple[nn.Module, SnapshotSaver]:
    """Train ``factory()`` with :func:`train_classifier`, keeping one checkpoint per epoch in memory."""
    torch.manual_seed(seed)
    model = factory()
    saver = SnapshotSaver()

    def log(epoch, loss, acc):
        if log_every and (epoch % log_every == 0 or epoch == epochs):
            print(f"  epoch {epoch:3d}/{epochs}  loss {loss:.3f}  train acc {acc:.3f}", flush=True)

    train_classifier(model, x, y, epochs=epochs, saver=saver, seed=seed, log=log, **kwargs)
    return model, saver


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, softmax probabilities) of ``model`` in eval mode."""
    model.eval()
    probs = torch.cat([torch.softmax(model(x[i : i + batch_size]), 1) for i in range(0, len(x), batch_size)])
    return probs.argmax(1).numpy(), probs.numpy()


def vog_on_tensors(
    models: Sequence[nn.Module],
    x: torch.Tensor,
    labels: np.ndarray | None,
    windows: Mapping[str, Sequence[int]],
    target: str = "logit",
    label_mode: str = "true",
    batch_size: int = 256,
    normalization: str = "zscore",
    companions: bool = False,
) -> dict:
    """VoG of every row of ``x`` with the package's engine, no FiftyOne involved.

    Args:
        models: checkpoints in training order.
        x: (N, C, H, W) inputs.
        labels: (N,) class indices, -1 (or ``None`` for all) where unknown.
        windows: ``{name: checkpoint indices}``.
    Returns:
        ``{"raw": {window: (N,)}, "score": {window: (N,) class-normalized}, "used_labels", "predicted",
        "companions": {"window:name": (N,)}}`` (the training-dynamics companions with ``companions=True``;
        sign as computed: high loss / energy and low margin / maxprob flag a sample).
    """
    engine = VoGEngine(models, windows, VoGOptions(label_mode=label_mode, target=target), companions=companions)
    y = torch.full((len(x),), -1, dtype=torch.long) if labels is None else torch.as_tensor(labels, dtype=torch.long)
    ids = [str(i) for i in range(len(x))]
    batches = (
        (x[i : i + batch_size], y[i : i + batch_size], ids[i : i + batch_size]) for i in range(0, len(x), batch_size)
    )
    raw = score_batches(engine, batches, ids)
    comp = {w: v for w, v in raw.raw.items() if ":" in w}
    plain = {w: v for w, v in raw.raw.items() if ":" not in w}
    score = {w: class_normalize(v, raw.used_labels, normalization) for w, v in plain.items()}
    return {
        "raw": plain,
        "score": score,
        "used_labels": raw.used_labels,
        "predicted": raw.predicted,
        "companions": comp,
    }


def thirds(k: int) -> dict[str, list[int]]:
    """early / middle / late thirds of ``k`` checkpoints (the API's ``windows="thirds"``), plus ``all``."""
    from fiftyone_vog.engine.windows import thirds as api_thirds

    return {**api_thirds(k), "all": list(range(k))}


# -- statistics ------------------------------------------------------------------------
# (shuffled-vs-clean, OOD and decile statistics come from fiftyone_vog.analysis)
def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two arrays."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


# -- output ------------------------------------------------------------------------------
def format_table(headers: Sequence[str], rows: Sequence[Sequence], title: str | None = None) -> str:
    """A plain-text table; floats get 3 significant decimals, p-values scientific."""

    def cell(v):
        if isinstance(v, (float, np.floating)):
            v = float(v)
            if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
                return f"{v:.2e}"
            return f"{v:.3f}"
        return str(v)

    cells = [[cell(v) for v in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths))
    out = [] if title is None else [title]
    out += [line, "-" * len(line)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(out)


def print_table(headers, rows, title=None) -> str:
    text = format_table(headers, rows, title)
    print(text, flush=True)
    return text


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ensure_dir(path: str) -> str:
    os.makedirs(path, exist_ok=True)
    return path


class Timer:
    """``with Timer("training"):`` prints how long the block took."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        if exc[0] is None:
            print(f"[{self.what}: {self.seconds:.1f}s]", flush=True)
