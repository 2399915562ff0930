"""Reading a FiftyOne view: image modes and sizes, transforms, class order."""

import fiftyone as fo
import numpy as np
import pytest
import torch
from PIL import Image

import fiftyone_vog as fov
from fiftyone_vog.inputs.images import ImageDataset, build_transform, collate, read_view

from conftest import CLASSES, small_model


def _write(path, size, mode):
    arr = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3 if mode == "RGB" else 1), dtype=np.uint8)
    Image.fromarray(arr.squeeze()).convert(mode).save(path)
    return str(path)


def test_modes_sizes_and_presets(tmp_path):
    gray = _write(tmp_path / "g.png", (10, 12), "L")
    rgb = _write(tmp_path / "c.png", (50, 40), "RGB")
    ds = ImageDataset(["a", "b"], [gray, rgb], [0, 1])
    x, label, sid = ds[0]
    assert x.shape == (3, 12, 10) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x[0], x[1])  # grayscale expanded to RGB
    assert ImageDataset(["a"], [rgb], [0], transform="gray")[0][0].shape == (1, 40, 50)
    assert ImageDataset(["a"], [gray], [0], transform="cifar")[0][0].shape == (3, 32, 32)
    assert ImageDataset(["a"], [rgb], [0], transform="imagenet")[0][0].shape == (3, 224, 224)
    custom = ImageDataset(["a"], [rgb], [0], transform=lambda img: torch.zeros(2, 3, 4))
    assert custom[0][0].shape == (2, 3, 4)
    with pytest.raises(fov.VoGError, match="different sizes"):
        collate([ds[0], ds[1]])
    with pytest.raises(fov.VoGError, match="not a preset"):
        build_transform("resnet")
    with pytest.raises(fov.VoGError, match="C×H×W tensor"):
        ImageDataset(["a"], [rgb], [0], transform=lambda img: 3)[0]


def test_class_order(dataset):
    assert read_view(dataset).classes == CLASSES  # dataset.classes for the field
    assert read_view(dataset, classes=CLASSES[::-1]).classes == CLASSES[::-1]
    dataset.classes = {}
    dataset.default_classes = ["dots", "stripes", "square", "circle"]
    assert read_view(dataset).classes == ["dots", "stripes", "square", "circle"]
    dataset.default_classes = []
    assert read_view(dataset).classes == sorted(CLASSES)  # sorted distinct labels
    data = read_view(dataset)
    labels = dataset.values("ground_truth.label")
    assert [data.classes[i] for i in data.labels] == labels


def test_unlabeled_collection_with_predicted_labels(image_dir, checkpoint_dir):
    paths, _ = image_dir
    ds = fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p) for p in paths[:6]])
    with pytest.raises(fov.VoGError, match="does not exist"):
        fov.compute_vog(ds, checkpoint_dir, model=small_model, label_mode="predicted")
    res = fov.compute_vog(ds, checkpoint_dir, model=small_model, label_mode="predicted", classes=CLASSES)
    assert len(ds.exists("vog")) == 6 and np.array_equal(res.used_labels, res.predicted)
    ds.delete()


def test_torchvision_decoding_equals_pil(tmp_path):
    """The fast decoder gives the PIL path's pixels, for every mode a file can be stored in."""
    from torchvision.transforms.functional import pil_to_tensor

    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 255, (9, 7, 3), dtype=np.uint8)
    files = {
        "rgb.png": Image.fromarray(rgb),
        "gray.png": Image.fromarray(rgb[..., 0]),
        "rgba.png": Image.fromarray(np.dstack([rgb, rgb[..., :1]])),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "img.bmp": Image.fromarray(rgb),  # not decoded by torchvision.io: PIL fallback
    }
    for name, img in files.items():
        img.save(tmp_path / name)
        for mode, preset in (("RGB", "rgb"), ("L", "gray")):
            got = ImageDataset(["a"], [str(tmp_path / name)], [0], transform=preset)[0][0]
            with Image.open(tmp_path / name) as ref:
                want = pil_to_tensor(ref.convert(mode)).float() / 255
            if mode == "L" and name != "gray.png":
                # RGB→gray weights differ by rounding between decoders: within one grey level
                assert (got - want).abs().max() <= 1 / 255 + 1e-7, name
            else:
                # same pixel values (the scaling may differ by one float ulp: x·(1/255) vs x/255)
                assert (got - want).abs().max() < 1e-6, (name, mode)


def test_batched_fetch_equals_torchvision_preset(tmp_path):
    """The loader's batched fetch (one float conversion per batch under ``rgb``/``gray``) gives
    bit for bit what torchvision's ``ToImage`` + ``ToDtype(scale=True)`` gives image by image, and
    falls back to image by image when a batch mixes sizes or bit depths (a 16-bit PNG)."""
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms import v2 as T

    rng = np.random.default_rng(2)
    paths = [_write(tmp_path / f"{i}.png", (6, 5), "RGB") for i in range(3)]
    Image.fromarray(rng.integers(0, 255, (5, 6, 3), dtype=np.uint8)).save(tmp_path / "3.jpg", quality=80)
    paths.append(str(tmp_path / "3.jpg"))
    reference = T.Compose([T.ToImage(), T.ToDtype(torch.float32, scale=True)])
    for preset, mode in (("rgb", ImageReadMode.RGB), ("gray", ImageReadMode.GRAY)):
        ds = ImageDataset(list("abcd"), paths, [0, 1, 2, 3], transform=preset)
        items = ds.__getitems__([3, 1, 0])
        assert [(label, sid) for _, label, sid in items] == [(3, "d"), (1, "b"), (0, "a")]
        for (x, _, _), i in zip(items, [3, 1, 0]):
            want = reference(decode_image(paths[i], mode=mode)).as_subclass(torch.Tensor)
            assert x.dtype == torch.float32 and torch.equal(x, want), (preset, i)
            assert torch.equal(x, ds[i][0])
        xs, labels, ids = collate(items)  # the batch stacked once, in __getitems__
        assert items.stacked is xs and ids == ["d", "b", "a"] and labels.tolist() == [3, 1, 0]
        assert torch.equal(xs, torch.stack([ds[i][0] for i in (3, 1, 0)]))
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((5, 6), 65535, dtype=np.uint16)).save(deep)  # 16-bit grayscale: white
    other = _write(tmp_path / "big.png", (8, 8), "RGB")
    ds = ImageDataset(list("xyz"), [paths[0], str(deep), other], [0, 0, 0])
    mixed = ds.__getitems__([0, 1, 2])
    assert torch.equal(mixed[0][0], ds[0][0]) and torch.equal(mixed[2][0], ds[2][0])
    assert mixed[1][0].shape == (3, 5, 6) and bool((mixed[1][0] == 1.0).all())
    with pytest.raises(fov.VoGError, match="different sizes"):
        collate(mixed)


def test_png_and_jpeg_decode_without_pil(tmp_path, monkeypatch):
    """The presets decode PNG and JPEG with torchvision's op directly (no per-call deprecation
    warning and usage logging, which cost as much as a small PNG's decode); PIL is only the fallback."""
    from fiftyone_vog.inputs import images

    png = _write(tmp_path / "a.png", (6, 5), "RGB")
    Image.open(png).save(tmp_path / "b.jpg", quality=90)
    want = [ImageDataset(["a", "b"], [png, str(tmp_path / "b.jpg")], [0, 1])[i][0] for i in (0, 1)]

    def no_pil(*a, **k):
        raise AssertionError("PIL decoded an image the op decodes")

    monkeypatch.setattr(images, "pil_tensor", no_pil)
    assert images._tv_decode() is torch.ops.image.decode_image
    ds = ImageDataset(["a", "b"], [png, str(tmp_path / "b.jpg")], [0, 1])
    for i in (0, 1):
        assert torch.equal(ds[i][0], want[i])
