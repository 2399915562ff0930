"""A PyTorch Lightning callback that keeps VoG-ready checkpoints while a ``lightning.Trainer`` trains.

::

    from fiftyone_vog.inputs.callbacks import VoGCheckpoint

    trainer = lightning.Trainer(callbacks=[VoGCheckpoint("runs/exp1", every_n_epochs=2, classes=classes)])
    trainer.fit(lit_module, datamodule)
    fov.compute_vog(dataset, checkpoints="runs/exp1")   # no other argument

Every ``every_n_epochs``-th epoch (and the last) it saves the network's weights alone
(``epoch_{n}.pt``: a plain ``state_dict``, no optimizer, loaded with ``weights_only=True``) and
keeps the folder's manifest (``vog_checkpoints.json``, :mod:`fiftyone_vog.inputs.manifest`) up to
date: files, epochs and steps, the architecture, the class order and the preprocessing. It writes
through :class:`fiftyone_vog.inputs.training.CheckpointSaver`, on the global rank 0 only.

Lightning is imported when :data:`VoGCheckpoint` is first used (``pip install
'fiftyone-vog[lightning]'``); importing this module does not need it.
"""

from __future__ import annotations

import functools
import os

from torch import nn

from .kinds import require_package
from .training import CheckpointSaver

#: The LightningModule attributes that usually hold the network, looked for in this order.
NETWORK_ATTRIBUTES = ("model", "net", "network", "backbone", "classifier")


def network_of(pl_module: nn.Module, attribute: str | None = None) -> nn.Module:
    """The network a LightningModule trains: its ``attribute``, else the first of
    :data:`NETWORK_ATTRIBUTES` that is a module, else the LightningModule itself."""
    from ..errors import VoGError

    if attribute is not None:
        net = getattr(pl_module, attribute, None)
        if not isinstance(net, nn.Module):
            raise VoGError(
                f"the LightningModule has no module attribute {attribute!r}; name the one holding the network"
            )
        return net
    for name in NETWORK_ATTRIBUTES:
        net = getattr(pl_module, name, None)
        if isinstance(net, nn.Module) and any(True for _ in net.parameters()):
            return net
    return pl_module


def _classes_of(trainer, pl_module):
    """The class names training knew: the datamodule's ``classes``, the module's hyperparameters',
    or the training dataset's (torchvision's ``ImageFolder`` and CIFAR have one)."""
    for owner in (getattr(trainer, "datamodule", None), getattr(pl_module, "hparams", None)):
        classes = getattr(owner, "classes", None) if owner is not None else None
        if classes is None and isinstance(owner, dict):
            classes = owner.get("classes")
        if classes:
            return list(classes)
    try:
        loader = trainer.train_dataloader
        classes = getattr(getattr(loader, "dataset", None), "classes", None)
    except Exception:  # not set up yet, or a combined loader
        classes = None
    return list(classes) if classes else None


def _make_callback_class(base):
    class VoGCheckpoint(base):
        """Saves VoG-ready checkpoints and their manifest during ``Trainer.fit``.

        Args:
            dirpath: the checkpoint folder (created; pass the same folder to ``compute_vog``).
            every_n_epochs: save every n-th epoch (1-based: epochs n, 2n, …) and the last one.
            model: the architecture's name for the manifest (``"timm:resnet18"``, ``"resnet18"``,
                ``"SmallCNN"``…); default: found for a timm network built by name alone, else none
                (then ``compute_vog`` needs ``model=``).
            classes: the class names in the network's output order; default: the datamodule's
                ``classes``, the module's ``hparams.classes``, or the training dataset's ``classes``.
            transform: the evaluation preprocessing to record (a preset name or a ``{"kind": ...}``
                description); default: a timm network's own eval transform, else none (``"auto"``).
            attribute: the LightningModule attribute that holds the network; default: the first of
                ``model``, ``net``, ``network``, ``backbone``, ``classifier``, else the whole module
                (its weights then carry no prefix, and ``model=`` must build the LightningModule).
            prefix: the files' name prefix (``epoch_`` → ``epoch_2.pt``).
        """

        def __init__(
            self,
            dirpath: str | os.PathLike,
            every_n_epochs: int = 1,
            model: str | None = None,
            classes=None,
            transform=None,
            attribute: str | None = None,
            prefix: str = "epoch_",
        ):
            super().__init__()
            if int(every_n_epochs) < 1:
                from ..errors import VoGError

                raise VoGError(f"every_n_epochs must be ≥ 1, got {every_n_epochs}")
            self.dirpath, self.every_n_epochs = dirpath, int(every_n_epochs)
            self.model, self.classes, self.transform = model, classes, transform
            self.attribute, self.prefix = attribute, prefix
            self.saver: CheckpointSaver | None = None
            self._saved_epoch = self._last_epoch = None

        def _save(self, trainer, pl_module, epoch: int, force: bool):
            if not trainer.is_global_zero or epoch == self._saved_epoch:  # one writer under DDP
                return
            if self.saver is None:
                self.saver = CheckpointSaver(
                    self.dirpath,
                    every=self.every_n_epochs,
                    prefix=self.prefix,
                    model=self.model,
                    classes=self.classes if self.classes is not None else _classes_of(trainer, pl_module),
                    transform=self.transform,
                    writer="lightning:VoGCheckpoint",
                )
            if self.saver.save(network_of(pl_module, self.attribute), epoch, force=force, step=trainer.global_step):
                self._saved_epoch = epoch

        def on_train_epoch_end(self, trainer, pl_module):
            self._last_epoch = trainer.current_epoch + 1  # 1-based, as CheckpointSaver's files
            last = trainer.max_epochs is not None and self._last_epoch >= trainer.max_epochs
            self._save(trainer, pl_module, self._last_epoch, force=last)

        def on_train_end(self, trainer, pl_module):
            # stopped before max_epochs (early stopping, max_steps): the last epoch trained is kept too
            if self._last_epoch is not None:
                self._save(trainer, pl_module, self._last_epoch, force=True)

    VoGCheckpoint.__module__ = __name__
    return VoGCheckpoint


@functools.cache
def _callback_class():
    lightning = require_package("lightning", "lightning", "the Lightning callback VoGCheckpoint")
    return _make_callback_class(lightning.pytorch.Callback)


def __getattr__(name):
    if name == "VoGCheckpoint":
        return _callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
