"""Helpers and fixtures of the Hugging Face tests (imported by their modules): tiny random ViT,
ResNet and ConvNeXt image classifiers from configs (id2label set, an image processor saved beside
them), Trainer-style ``checkpoint-{step}/`` folders, a run of the real ``transformers.Trainer``
with :class:`VoGTrainerCallback`, 32×32 images, and the naive float64 reference built through
transformers' own loaders (``from_pretrained``, ``AutoImageProcessor``), never through fiftyone-vog's."""

import contextlib
import os

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CLASSES, build_dataset, write_images
from naive import naive_vog

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

SIZE = 32
ID2LABEL = dict(enumerate(CLASSES))
LABEL2ID = {c: i for i, c in ID2LABEL.items()}
#: Tiny architectures at 32×32: name → (config class, its arguments).
CONFIGS = {
    "vit": (
        "ViTConfig",
        dict(
            image_size=SIZE,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
        ),
    ),
    "resnet": ("ResNetConfig", dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")),
    "convnext": ("ConvNextConfig", dict(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2, patch_size=2)),
}


def tiny_config(name, **overrides):
    cls, kwargs = CONFIGS[name]
    return getattr(transformers, cls)(**{"id2label": ID2LABEL, "label2id": LABEL2ID, **kwargs, **overrides})


def image_processor():
    """A local image processor: resize to 32×32, rescale, normalize (not the identity, on purpose)."""
    return transformers.ViTImageProcessor(
        size={"height": SIZE, "width": SIZE}, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.25, 0.3]
    )


def save_checkpoints(directory, name, steps=(10, 20, 30), processor=True, **config):
    """Trainer-style folders ``{directory}/checkpoint-{step}/`` of one architecture, each with other
    random weights (and BatchNorm statistics), saved by ``save_pretrained``; returns their paths."""
    folders = []
    for i, step in enumerate(steps):
        torch.manual_seed(i)
        model = transformers.AutoModelForImageClassification.from_config(tiny_config(name, **config))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
        folder = os.path.join(directory, f"checkpoint-{step}")
        model.save_pretrained(folder)
        if processor:
            image_processor().save_pretrained(folder)
        folders.append(folder)
    return folders


@pytest.fixture(scope="session")
def images32(tmp_root):
    """16 generated 24×28 PNGs (the image processor resizes them to 32×32) and their labels."""
    return write_images(os.path.join(tmp_root, "hf_images"), 16, seed=4, h=24, w=28)


@pytest.fixture
def hf_dataset(images32):
    ds = build_dataset(*images32)
    yield ds
    if not ds.deleted:
        ds.delete()


@contextlib.contextmanager
def one_thread():
    """torch on one thread for a block: on this shared 2-core machine more threads than idle cores
    make every operation wait for the slowest (the reference took 40 s with 2 threads, 1.5 s with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(pixel_values=x).logits


def reference(folders, ds, **options):
    """The naive float64 VoG of every sample of ``ds`` (in ``ds``'s order) over ``folders``, each
    loaded by ``AutoModelForImageClassification.from_pretrained``, the images by its
    ``AutoImageProcessor``, the labels by ``config.id2label``."""
    from fiftyone_vog.engine import VoGOptions
    from fiftyone_vog.options import DEFAULT_TARGET

    auto = transformers.AutoModelForImageClassification
    models = [_Logits(auto.from_pretrained(f, local_files_only=True)).eval() for f in folders]
    processor = transformers.AutoImageProcessor.from_pretrained(folders[-1], local_files_only=True)
    paths, labels = ds.values(["filepath", "ground_truth.label"])
    x = torch.stack(
        [processor(images=Image.open(p).convert("RGB"), return_tensors="pt")["pixel_values"][0] for p in paths]
    )
    label2id = models[-1].model.config.label2id
    y = torch.tensor([label2id[l] for l in labels])
    with one_thread():
        return naive_vog(models, x, y, VoGOptions(**{"target": DEFAULT_TARGET, **options}), list(range(len(folders))))


def assert_close(got, want, rel=1e-5):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want)
    assert want.min() > 0  # vacuous on all-zero scores
    assert np.abs(got - want).max() / np.abs(want).max() < rel, np.abs(got - want).max() / np.abs(want).max()


class _Images(torch.utils.data.Dataset):
    def __init__(self, paths, labels, processor):
        self.items = [
            (processor(images=Image.open(p).convert("RGB"), return_tensors="pt")["pixel_values"][0], LABEL2ID[l])
            for p, l in zip(paths, labels)
        ]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        x, y = self.items[i]
        return {"pixel_values": x, "labels": y}


def train(output_dir, images, name="vit", epochs=3, callback_kwargs=None, **training):
    """A few steps of the real ``transformers.Trainer`` on CPU with :class:`VoGTrainerCallback`
    (and the image processor as ``processing_class``); returns the trainer."""
    from fiftyone_vog.inputs.hf_callback import VoGTrainerCallback

    torch.manual_seed(0)
    model = transformers.AutoModelForImageClassification.from_config(tiny_config(name))
    processor = image_processor()
    args = transformers.TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=epochs,
        per_device_train_batch_size=8,
        learning_rate=0.05,
        save_strategy="epoch",
        logging_strategy="no",
        report_to=[],
        use_cpu=True,
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
        **training,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=_Images(*images, processor),
        processing_class=processor,
        callbacks=[VoGTrainerCallback(**(callback_kwargs or {}))],
    )
    with one_thread():
        trainer.train()
    return trainer
