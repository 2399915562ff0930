"""Saving checkpoints during training — drop :class:`CheckpointSaver` into your own loop.

VoG needs a handful of checkpoints saved while the model trains::

    saver = CheckpointSaver("runs/exp1", every=1, model="resnet18", classes=dataset_classes)
    for epoch in range(1, epochs + 1):
        train_one_epoch(model, ...)
        saver.save(model, epoch)          # runs/exp1/epoch_1.pt, epoch_2.pt, ...

then ``fov.compute_vog(ds, checkpoints="runs/exp1")``: the saver keeps the folder's manifest
(``vog_checkpoints.json``, :mod:`fiftyone_vog.inputs.manifest`) up to date with the files, their
epochs, the architecture, the classes and the transform, so the folder needs no other argument.
With PyTorch Lightning, :class:`fiftyone_vog.inputs.callbacks.VoGCheckpoint` does the same.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from ..errors import check_choice
from ..options import DEFAULT_LR, OPTIMIZERS
from .manifest import ManifestWriter


class CheckpointSaver:
    """Writes ``{directory}/{prefix}{epoch}.pt`` state_dicts, atomically, and the folder's manifest.

    Args:
        directory: created if missing.
        every: save when ``epoch % every == 0`` (the last epoch: pass ``force=True``).
        prefix: file-name prefix; files sort naturally (``epoch_2`` before ``epoch_10``).
        model: the architecture's name for the manifest (any string ``compute_vog(model=)`` takes:
            ``"resnet18"``, ``"timm:resnet18"``, ``"SmallCNN"``); default: found for a timm model
            built by name alone (:func:`fiftyone_vog.inputs.kinds.architecture_name`), else none
            (then pass ``model=`` to ``compute_vog``).
        classes: the class names in the model's output order (recorded; checked against the
            dataset's labels when scored).
        transform: the evaluation preprocessing to record (a preset name or a ``{"kind": ...}``
            description); default: a timm model's own eval transform, else none (``compute_vog``'s
            ``"auto"``).
        num_classes: the output size, when it is not ``len(classes)``.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        every: int = 1,
        prefix: str = "epoch_",
        model: str | None = None,
        classes=None,
        transform: str | dict | None = None,
        num_classes: int | None = None,
        writer: str = "fiftyone_vog:CheckpointSaver",
    ):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.every, self.prefix = int(every), prefix
        self.paths: list[Path] = []
        self._recorded = {"model": model, "classes": classes, "transform": transform, "num_classes": num_classes}
        self._writer_name = writer
        self.manifest: ManifestWriter | None = None  # made at the first save, when the module is known

    def _manifest(self, model: nn.Module) -> ManifestWriter:
        if self.manifest is None:
            from .kinds import architecture_name, own_preprocessing

            r = self._recorded
            name = r["model"] if r["model"] is not None else architecture_name(model)
            transform = r["transform"] if r["transform"] is not None else own_preprocessing(model, name)
            self.manifest = ManifestWriter(
                self.directory,
                model=name,
                num_classes=r["num_classes"],
                classes=r["classes"],
                transform=transform,
                writer=self._writer_name,
            )
        return self.manifest

    def save(self, model: nn.Module, epoch: int, force: bool = False, step: int | None = None) -> Path | None:
        """Save ``model``'s weights as epoch ``epoch`` (``step``: the optimizer step, recorded) and
        record the file in the manifest; None when this epoch is not one to save."""
        if not force and epoch % self.every:
            return None
        manifest = self._manifest(model)  # before the file: a foreign vog_checkpoints.json refuses first
        path = self.directory / f"{self.prefix}{epoch}.pt"
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        # write to a temporary file then rename: an interrupted save never leaves a torn checkpoint
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        os.close(fd)
        try:
            torch.save(state, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        self.paths.append(path)
        manifest.add(path, epoch, step)
        return path


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    saver: CheckpointSaver | None = None,
    lr: float | None = None,
    batch_size: int = 64,
    momentum: float = 0.9,
    seed: int = 0,
    augment=None,
    log=None,
    weight_decay: float = 0.0,
    lr_schedule=None,
    generator: torch.Generator | None = None,
    optimizer: str = OPTIMIZERS[0],
) -> nn.Module:
    """A plain training loop over in-memory tensors that saves a checkpoint after each epoch.

    To audit memorized labels the network must fit them (the paper trains to 0% training error);
    :data:`fiftyone_vog.options.MEMORIZING_RECIPE` is a model and settings that do on MNIST-sized
    images (docs/results.md, *Can the network memorize?*).

    Args:
        x: (N, C, H, W) float inputs; y: (N,) int64 labels.
        optimizer: ``"sgd"`` (with ``momentum``) or ``"adamw"`` (:data:`~fiftyone_vog.options.OPTIMIZERS`).
        lr: the learning rate; default :data:`~fiftyone_vog.options.DEFAULT_LR` of the optimizer
            (SGD 0.05, AdamW 0.001).
        weight_decay: decoupled for AdamW, L2 for SGD (torch's meanings).
        augment: optional function applied to each input batch during training.
        log: optional ``log(epoch, loss, accuracy)`` callback.
        lr_schedule: optional ``lr_schedule(epoch)`` → the learning rate of that epoch (1-based).
        generator: the batch order's random generator (default: one seeded with ``seed``); pass
            your own to share it with ``augment``.
    """
    check_choice("optimizer", optimizer, OPTIMIZERS)
    lr = DEFAULT_LR[optimizer] if lr is None else lr
    g = generator if generator is not None else torch.Generator().manual_seed(seed)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, epochs + 1):
        if lr_schedule is not None:
            for group in opt.param_groups:
                group["lr"] = lr_schedule(epoch)
        model.train()
        perm = torch.randperm(len(x), generator=g)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb = augment(xb)
            opt.zero_grad()
            out = model(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int((out.argmax(1) == yb).sum())
            total += len(idx)
        if saver is not None:
            saver.save(model, epoch, force=epoch == epochs)
        if log is not None:
            log(epoch, loss_sum / total, correct / total)
    model.eval()
    return model
