"""Inputs that used to pass silently with wrong values (issue 16, items 9–11): animated and
multi-frame images are read as their first frame in one frame's memory; checkpoints with the same
weights in different files are refused like one file listed twice; images deeper than 8 bits are
scaled by their real bit depth, or refused naming format and mode. Real files, real datasets."""

import os
import struct
import subprocess
import sys
import zlib

import fiftyone.operators as foo
import numpy as np
import pytest
import torch
from fiftyone.operators.executor import ExecutionError
from PIL import Image, features

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin
from fiftyone_vog.inputs.checkpoints import load_models, model_factory, sha256
from fiftyone_vog.inputs.images import ImageDataset, LoaderError

from conftest import ROOT, TESTS_DIR, small_model

H, W = 6, 5
CLI = [sys.executable, "-m", "fiftyone_vog.cli"]
DATASET_NAME = "input-hardening-test"  # the conftest fixture named_dataset


# -- files written byte by byte: what PIL cannot write (16-bit RGB, 32-bit unsigned) ----------
def write_tiff(path, a, sample_format=1):
    """A baseline uncompressed little-endian TIFF of ``a`` (H×W or H×W×C; SampleFormat 1 unsigned,
    2 signed, 3 float)."""
    a = np.ascontiguousarray(a)
    h, w = a.shape[:2]
    c = 1 if a.ndim == 2 else a.shape[2]
    data = a.astype(a.dtype.newbyteorder("<")).tobytes()
    tags = [  # (tag, type: 3 short / 4 long, values), in tag order
        (256, 4, [w]),
        (257, 4, [h]),
        (258, 3, [a.dtype.itemsize * 8] * c),
        (259, 3, [1]),
        (262, 3, [2 if c >= 3 else 1]),
        (273, 4, [0]),  # strip offset, filled in below
        (277, 3, [c]),
        (278, 4, [h]),
        (279, 4, [len(data)]),
        (284, 3, [1]),
        *([(338, 3, [2])] if c == 4 else []),  # the 4th channel is alpha
        (339, 3, [sample_format] * c),
    ]
    extra_at = 8 + 2 + 12 * len(tags) + 4
    data_at = extra_at + sum(2 * len(v) for _, t, v in tags if 2 * len(v) > 4)
    entries, extra = b"", b""
    for tag, typ, values in tags:
        values = [data_at] if tag == 273 else values
        payload = b"".join(struct.pack("<H" if typ == 3 else "<I", v) for v in values)
        if len(payload) <= 4:
            entries += struct.pack("<HHI", tag, typ, len(values)) + payload.ljust(4, b"\0")
        else:
            entries += struct.pack("<HHII", tag, typ, len(values), extra_at + len(extra))
            extra += payload
    with open(path, "wb") as f:
        f.write(b"II*\0" + struct.pack("<IH", 8, len(tags)) + entries + b"\0\0\0\0" + extra + data)


def write_png16(path, a):
    """A 16-bit PNG of ``a`` (uint16, H×W×3 RGB or H×W×4 RGBA), rows unfiltered."""
    h, w, c = a.shape
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in a)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _read(path, transform="rgb"):
    return ImageDataset(["s"], [str(path)], [0], transform=transform)[0][0]


def _callable(img):
    assert img.mode == "RGB"
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255


RNG = np.random.default_rng(16)
U16 = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
U16_RGBA = RNG.integers(0, 65536, (H, W, 4), dtype=np.uint16)
U32 = RNG.integers(0, 2**32, (H, W), dtype=np.uint64).astype(np.uint32)  # values above 2**31 included


def _gray(values, scale, channels):
    return torch.from_numpy((values.astype(np.float64) / scale).astype(np.float32))[None].expand(channels, -1, -1)


# -- item 11: deeper than 8 bits ----------------------------------------------------------
def test_deep_images_are_scaled_by_their_bit_depth(tmp_path):
    """The exact tensor of each preset, computed by hand from the values written."""
    write_tiff(tmp_path / "g16.tif", U16)
    Image.fromarray(U16).save(tmp_path / "g16.png")
    write_tiff(tmp_path / "rgb16.tif", U16_RGBA[..., :3])
    write_tiff(tmp_path / "rgba16.tif", U16_RGBA)
    write_png16(tmp_path / "rgb16.png", U16_RGBA[..., :3])
    write_png16(tmp_path / "rgba16.png", U16_RGBA)
    write_tiff(tmp_path / "u32.tif", U32)
    with Image.open(tmp_path / "u32.tif") as img:
        assert img.mode == "I" and np.asarray(img).min() < 0  # PIL reads it as int32: the top bit wraps
    top8 = torch.from_numpy(((U16_RGBA[..., :3] >> 8) / 255).astype(np.float32)).permute(2, 0, 1)
    full = torch.from_numpy((U16_RGBA[..., :3] / 65535).astype(np.float32)).permute(2, 0, 1)
    cases = {  # file: (rgb preset, gray preset or None)
        "g16.tif": (_gray(U16, 65535, 3), _gray(U16, 65535, 1)),
        "g16.png": (_gray(U16, 65535, 3), _gray(U16, 65535, 1)),
        "u32.tif": (_gray(U32, 2**32 - 1, 3), _gray(U32, 2**32 - 1, 1)),
        "rgb16.tif": (top8, None),  # PIL reads 16-bit RGB(A) TIFFs as 8 bits: their top byte
        "rgba16.tif": (top8, None),
        "rgb16.png": (full, None),  # torchvision decodes 16-bit PNGs to their full range
        "rgba16.png": (full, None),
    }
    for name, (rgb, gray) in cases.items():
        torch.testing.assert_close(_read(tmp_path / name), rgb, rtol=0, atol=1e-7, msg=name)
        if gray is not None:
            torch.testing.assert_close(_read(tmp_path / name, "gray"), gray, rtol=0, atol=1e-7, msg=name)
        assert _read(tmp_path / name, "cifar").shape == (3, 32, 32)  # resized from the scaled values
    # a callable transform gets 8 bits of the same values
    want = torch.from_numpy(np.rint(U32 / (2**32 - 1) * 255) / 255).float().expand(3, -1, -1)
    torch.testing.assert_close(_read(tmp_path / "u32.tif", _callable), want, rtol=0, atol=1e-7)


@pytest.mark.parametrize(
    "values, sample_format, phrase",
    [
        (RNG.random((H, W)).astype(np.float32), 3, "mode 'F' holding floating-point values"),
        (RNG.integers(-(2**15), 2**15, (H, W)).astype(np.int16), 2, "mode 'I' holding signed 16-bit integers"),
        (RNG.integers(-(2**31), 2**31, (H, W)).astype(np.int32), 2, "mode 'I' holding signed 32-bit integers"),
    ],
    ids=["float", "int16", "int32"],
)
def test_images_without_a_bit_depth_range_are_refused_naming_format_and_mode(tmp_path, values, sample_format, phrase):
    path = tmp_path / "deep.tif"
    write_tiff(path, values, sample_format)
    for transform in ("rgb", "gray", _callable):
        with pytest.raises(LoaderError) as e:
            _read(path, transform)
        msg = str(e.value)
        assert msg.startswith(f"image {path} (sample s) is a TIFF image of {phrase}"), msg
        assert "convert it to 8- or 16-bit unsigned integers" in msg and "\n" not in msg, msg


def test_a_float_tiff_in_a_dataset_is_one_line_and_the_dataset_unchanged(dataset, checkpoint_dir, tmp_path):
    path = tmp_path / "float.tif"
    write_tiff(path, RNG.random((12, 10)).astype(np.float32), 3)
    first = dataset.first()
    first.filepath = str(path)
    first.save()
    with pytest.raises(fov.VoGError, match=r"is a TIFF image of mode 'F'"):
        fov.compute_vog(dataset, checkpoint_dir, model=small_model, device="cpu", progress=False)
    assert "vog" not in dataset.get_field_schema()


# -- item 9: animated and multi-frame images -------------------------------------------------
def _frames(n, h=48, w=64, mode="RGB"):
    """``n`` frames that all differ, as PIL images and arrays."""
    arrays = []
    for i in range(n):
        a = np.zeros((h, w), np.uint8)
        a[2 * i : 2 * i + 2, :] = 200
        a[:, : w // 2] += np.uint8(9 * i)
        arrays.append(a)
    images = [Image.fromarray(a) if mode == "L" else Image.fromarray(a).convert(mode) for a in arrays]
    return images, arrays


def _save_frames(path, images, **kw):
    images[0].save(path, save_all=True, append_images=images[1:], **kw)


FORMATS = {
    "gif": dict(mode="L", kw=dict(duration=40, loop=0)),
    "png": dict(mode="RGB", kw={}),  # APNG
    "tif": dict(mode="RGB", kw=dict(compression="tiff_deflate")),  # multi-page
    "webp": dict(mode="RGB", kw=dict(lossless=True)),
}


@pytest.mark.parametrize("ext", FORMATS)
def test_an_animated_image_is_read_as_its_first_frame(tmp_path, ext):
    if ext == "webp" and not features.check("webp"):
        pytest.skip("this Pillow has no WebP support")
    images, arrays = _frames(6, mode=FORMATS[ext]["mode"])
    path = tmp_path / f"anim.{ext}"
    _save_frames(path, images, **FORMATS[ext]["kw"])
    with Image.open(path) as img:
        assert getattr(img, "n_frames", 1) == 6
    first = torch.from_numpy(arrays[0]).float() / 255
    for transform in ("rgb", _callable):
        torch.testing.assert_close(_read(path, transform), first.expand(3, -1, -1), rtol=0, atol=1e-7)
    torch.testing.assert_close(_read(path, "gray"), first[None], rtol=0, atol=1e-7)


MEASURE = """
import resource, sys
from fiftyone_vog.inputs.images import ImageDataset

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB

folder = sys.argv[1]
for ext in sys.argv[2:]:  # warm up: one frame of the same size and format
    ImageDataset(["s"], [f"{folder}/one.{ext}"], [0])[0]
for ext in sys.argv[2:]:
    before = peak_mb()
    x = ImageDataset(["s"], [f"{folder}/many.{ext}"], [0])[0][0]
    print(f"{ext}|{tuple(x.shape)}|{peak_mb() - before:.1f}")
"""


def test_a_many_frame_image_costs_one_frames_memory(tmp_path):
    """20 frames of 500×500, peak memory in a fresh process: torchvision decoded every frame of a
    GIF (memory grew with the frame count, then the 4-D tensor failed); now one frame's worth."""
    exts = ["gif", "png", "tif"]
    for ext in exts:
        images, _ = _frames(20, h=500, w=500, mode=FORMATS[ext]["mode"])
        _save_frames(tmp_path / f"many.{ext}", images, **FORMATS[ext]["kw"])
        images[0].save(tmp_path / f"one.{ext}")
    r = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tmp_path), *exts], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line.split("|") for line in r.stdout.splitlines()]
    assert [row[0] for row in rows] == exts, r.stdout
    for _, shape, grew in rows:
        assert shape == "(3, 500, 500)" and float(grew) < 15, r.stdout  # MB of peak memory beyond one frame


# -- item 10: the same weights in another file --------------------------------------------
def _variants(a, tmp_path):
    """Files that hold exactly the weights of checkpoint ``a``, none byte-identical to it."""
    from safetensors.torch import save_file

    state = torch.load(a, weights_only=True)
    out = {
        "wrapped": tmp_path / "wrapped.ckpt",
        "lightning": tmp_path / "lightning.ckpt",
        "legacy": tmp_path / "legacy.pt",
        "safetensors": tmp_path / "epoch_1.safetensors",
    }
    torch.save({"state_dict": state, "epoch": 1, "optimizer": {}}, out["wrapped"])
    torch.save({"state_dict": {f"model.{k}": v for k, v in state.items()}}, out["lightning"])
    torch.save(state, out["legacy"], _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous() for k, v in state.items()}, out["safetensors"])
    for p in out.values():
        assert sha256(p) != sha256(a)  # the file check cannot see them
    return {k: str(v) for k, v in out.items()}


def test_the_same_weights_in_another_file_are_refused_naming_both(dataset, checkpoint_dir, tmp_path):
    a, b = (os.path.join(checkpoint_dir, f"epoch_{i}.pt") for i in (1, 5))
    for name, v in _variants(a, tmp_path).items():
        for paths in ([a, b, v], [v, b, a]):
            with pytest.raises(fov.VoGError) as e:
                fov.compute_vog(dataset, paths, model=small_model, device="cpu", progress=False)
            first, second = paths[0], paths[2]
            assert f"checkpoints {first} and {second} hold identical weights" in str(e.value), (name, str(e.value))
    assert "vog" not in dataset.get_field_schema()
    # weights that differ by one value are two checkpoints
    state = torch.load(a, weights_only=True)
    key = next(iter(state))
    state[key] = state[key].clone()
    state[key].view(-1)[0] += 1e-6
    torch.save(state, tmp_path / "nudged.pt")
    fov.compute_vog(dataset, [a, str(tmp_path / "nudged.pt")], model=small_model, device="cpu", progress=False)
    assert "vog" in dataset.get_field_schema()


def test_the_same_weights_are_refused_from_the_cli_and_the_app(named_dataset, checkpoint_dir, tmp_path, monkeypatch):
    a, b = (os.path.join(checkpoint_dir, f"epoch_{i}.pt") for i in (1, 5))
    v = _variants(a, tmp_path)["safetensors"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS_DIR, ROOT, os.environ.get("PYTHONPATH", "")]))
    argv = ["compute", DATASET_NAME, "--checkpoints", f"{a},{b},{v}", "--model", "conftest:small_model"]
    r = subprocess.run(
        [*CLI, *argv, "--device", "cpu", "--quiet"], capture_output=True, text=True, env=env, timeout=600
    )
    assert "Traceback" not in r.stderr and r.returncode == 2, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"checkpoints {a} and {v} hold identical weights" in lines[0], r.stderr
    install_plugin()
    monkeypatch.setenv("FIFTYONE_VOG_APP_ROOTS", os.pathsep.join([checkpoint_dir, str(tmp_path)]))
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")  # for model="conftest:small_model"
    params = {"checkpoints": f"{a},{b},{v}", "model": "conftest:small_model"}
    with pytest.raises(ExecutionError, match="hold identical weights"):
        foo.execute_operator("@fiftyone-vog/vog/compute_vog", ctx={"dataset": named_dataset, "params": params})
    assert "vog" not in named_dataset.get_field_schema()


# -- the model spec: a module instance is a model, not a factory --------------------------
def test_a_module_instance_named_by_module_callable_is_copied(tmp_path, monkeypatch, checkpoint_dir):
    (tmp_path / "my_models.py").write_text(
        "from fiftyone_vog.models import SmallCNN\nnet = SmallCNN(num_classes=4, in_channels=3, width=8)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    factory = model_factory("my_models:net", num_classes=4)
    import my_models

    m = factory()
    assert isinstance(m, torch.nn.Module) and m is not my_models.net
    paths = [os.path.join(checkpoint_dir, f"epoch_{i}.pt") for i in (1, 5)]
    ours, ref = load_models(paths, "my_models:net"), load_models(paths, small_model)
    for x, y in zip(ours, ref):
        for (k, t), (_, u) in zip(x.state_dict().items(), y.state_dict().items()):
            assert torch.equal(t, u), k
