"""Helpers and fixtures of the ecosystem tests (imported by its test modules): tiny random timm models saved in timm's training-script
format, a LightningModule trained by the real ``lightning.Trainer``, 32×32 images, and the naive
float64 reference built through the libraries' own loaders (never through fiftyone-vog's)."""

import argparse
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CLASSES, build_dataset, write_images
from naive import naive_vog

timm = pytest.importorskip("timm")

SIZE = 32
#: Tiny random timm architectures at 32×32: name → create_model's keyword arguments.
TIMM_MODELS = {
    "resnet": ("resnet18", {"channels": (8, 16, 32, 64), "stem_width": 8}),
    "convnext": ("convnext_atto", {"dims": (8, 16, 32, 64), "depths": (1, 1, 1, 1)}),
    "vit": ("vit_tiny_patch16_224", {"img_size": SIZE, "patch_size": 8, "depth": 2, "embed_dim": 32, "num_heads": 2}),
}


def spec(name, kwargs):
    """The ``model=`` string of a timm architecture with these keyword arguments."""
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"timm:{name}({args})" if args else f"timm:{name}"


@pytest.fixture(scope="session")
def images32(tmp_root):
    """12 generated 32×32 PNGs and their labels."""
    return write_images(os.path.join(tmp_root, "images32"), 12, seed=3, h=SIZE, w=SIZE)


@pytest.fixture
def dataset32(images32):
    ds = build_dataset(*images32)
    yield ds
    if not ds.deleted:
        ds.delete()


def script_args(name, model_kwargs, **overrides):
    """An ``argparse.Namespace`` like timm's ``train.py`` saves in its checkpoints (the settings
    that shape the model and its eval preprocessing, with train.py's defaults)."""
    args = dict(
        model=name,
        pretrained=False,
        num_classes=len(CLASSES),
        in_chans=None,
        input_size=None,
        img_size=None,
        crop_pct=None,
        mean=None,
        std=None,
        interpolation="",
        gp=None,
        bn_eps=None,
        bn_momentum=None,
        model_kwargs=dict(model_kwargs),
        model_ema=True,
        model_ema_decay=0.9,
        epochs=3,
        lr=0.05,
        batch_size=4,
        device="cpu",
        output="",
        experiment="",
    )
    args.update(overrides)
    return argparse.Namespace(**args)


def timm_eval_inputs(model, args, paths):
    """The images as timm's own eval transform makes them (``resolve_data_config(vars(args))``)."""
    from timm.data import create_transform, resolve_data_config

    tf = create_transform(**resolve_data_config(vars(args), model=model), is_training=False)
    return torch.stack([tf(Image.open(p).convert("RGB")) for p in paths])


def train_timm_script(directory, name, model_kwargs, paths, labels, epochs=3, **arg_overrides):
    """Train a tiny timm model a few SGD steps per epoch and save each epoch as timm's
    ``train.py`` does: its ``CheckpointSaver`` (``checkpoint-{epoch}.pth.tar`` with ``state_dict``,
    ``state_dict_ema``, ``optimizer``, ``args``; ``last.pth.tar`` beside them) and ``ModelEmaV3``."""
    from timm.utils import CheckpointSaver, ModelEmaV3

    torch.manual_seed(0)
    args = script_args(name, model_kwargs, **arg_overrides)
    model = timm.create_model(name, pretrained=False, num_classes=len(CLASSES), **model_kwargs)
    x = timm_eval_inputs(model, args, paths)
    y = torch.tensor([CLASSES.index(l) for l in labels])
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    ema = ModelEmaV3(model, decay=args.model_ema_decay)
    os.makedirs(directory, exist_ok=True)
    saver = CheckpointSaver(
        model=model, optimizer=opt, args=args, model_ema=ema, checkpoint_dir=directory, recovery_dir=directory
    )
    for epoch in range(epochs):
        model.train()
        for i in range(0, len(x), args.batch_size):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i : i + 4]), y[i : i + 4]).backward()
            opt.step()
            ema.update(model)
        saver.save_checkpoint(epoch)
    return args


def timm_reference(directory, name, model_kwargs, args, ds, use_ema=False, epochs=3):
    """The naive float64 VoG of every sample of ``ds`` (in ``ds``'s order) over the folder's
    ``checkpoint-*.pth.tar``, loaded by timm's own ``load_checkpoint``, inputs by timm's transform."""
    from timm.models import load_checkpoint

    from fiftyone_vog.engine import VoGOptions
    from fiftyone_vog.options import DEFAULT_TARGET

    models = []
    for epoch in range(epochs):
        m = timm.create_model(name, pretrained=False, num_classes=len(CLASSES), **model_kwargs)
        load_checkpoint(m, os.path.join(directory, f"checkpoint-{epoch}.pth.tar"), use_ema=use_ema)
        models.append(m.eval())
    paths, labels = ds.values(["filepath", "ground_truth.label"])
    x = timm_eval_inputs(models[0], args, paths)
    y = torch.tensor([CLASSES.index(l) for l in labels])
    return naive_vog(models, x, y, VoGOptions(target=DEFAULT_TARGET), list(range(epochs)))


def assert_close(got, want, rel=1e-5):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want)
    assert want.min() > 0  # vacuous on all-zero scores
    assert np.abs(got - want).max() / np.abs(want).max() < rel, np.abs(got - want).max() / np.abs(want).max()


def lightning_module(net, lr=0.05, classes=None, attribute="model", loss_weight=None):
    """A LightningModule holding ``net`` as ``self.{attribute}``, as Lightning's examples write one;
    ``loss_weight``: a class-weighted loss, whose weight is a buffer in the module's state_dict."""
    import lightning as L

    class LitClassifier(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.save_hyperparameters({"lr": lr, "classes": classes})
            setattr(self, attribute, net)
            self.loss = torch.nn.CrossEntropyLoss(weight=loss_weight)

        def forward(self, x):
            return getattr(self, attribute)(x)

        def training_step(self, batch, _):
            x, y = batch
            return self.loss(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)

    return LitClassifier()


def train_lightning(net, x, y, callbacks, epochs=3, root=None, **module_kw):
    """Fit ``net`` (inside a LightningModule) with the real ``lightning.Trainer`` on the CPU."""
    import lightning as L

    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=4, shuffle=True)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=any(isinstance(c, L.pytorch.callbacks.ModelCheckpoint) for c in callbacks),
        callbacks=callbacks,
        default_root_dir=root,
    )
    trainer.fit(lightning_module(net, **module_kw), loader)
    return trainer
