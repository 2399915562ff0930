"""Hostile or broken inputs: TorchScript archives are code and need an opt-in (also hidden in a
PNG), decompression bombs are refused before decoding, the App's resource asks are capped, the same
checkpoint twice is refused, 16-bit images keep their range, and errors are one line that quote no
file bytes (issue 9, items 8, 11, 12, 14 and its messages)."""

import os
import pickle
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib

import fiftyone.operators as foo
import numpy as np
import pytest
import torch
from fiftyone.operators.executor import ExecutionError
from PIL import Image
from torch import nn

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin
from fiftyone_vog.inputs.checkpoints import load_models, resolve_checkpoints
from fiftyone_vog.inputs.images import ImageDataset

from conftest import CLASSES, IMG_H, IMG_W, build_dataset, small_model

DATASET_NAME = "input-security-test"  # the conftest fixture named_dataset
COMPUTE = "@fiftyone-vog/vog/compute_vog"
CLI = [sys.executable, "-m", "fiftyone_vog.cli"]


# -- helpers -----------------------------------------------------------------------
class Evil(nn.Module):
    """A working 4-class model whose ``__setstate__``, run by ``torch.jit.load``, creates the file
    ``marker`` through ``torch.from_file(shared=True)``: loading it is running code."""

    def __init__(self, marker: str, seed: int):
        super().__init__()
        self.marker = marker
        self.w = torch.randn(len(CLASSES), 3 * IMG_H * IMG_W, generator=torch.Generator().manual_seed(seed))

    def forward(self, x):
        return x.flatten(1) @ self.w.t()

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool, torch.Tensor]:
        return (self.marker, self.training, self.w)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool, torch.Tensor]) -> None:
        self.marker = state[0]
        self.training = state[1]
        # used, so that TorchScript keeps the call: creates (and maps) the file named by the archive
        self.w = state[2] + 0.0 * torch.from_file(self.marker, shared=True, size=1, dtype=torch.float32).sum()


def _evil_archives(tmp_path, marker, n=2, name="epoch_{}.pt"):
    paths = []
    for i in range(n):
        path = tmp_path / name.format(i + 1)
        torch.jit.save(torch.jit.script(Evil(str(marker), seed=i)), str(path))
        paths.append(str(path))
    assert not marker.exists()  # saving runs nothing
    return paths


def _hide_in_png(png, archive):
    """A valid PNG with the TorchScript archive appended as a zip (offsets fixed by zipfile)."""
    Image.new("RGB", (IMG_W, IMG_H), (200, 10, 10)).save(png)
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(png, "a") as z:
        for name in src.namelist():
            z.writestr(name, src.read(name))
    with Image.open(png) as img:  # still an image
        assert img.convert("RGB").getpixel((0, 0)) == (200, 10, 10)
    return str(png)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(path, width=20000, height=20000):
    """A complete, valid 1-bit PNG of ``width``×``height`` black pixels: some 50 kB on disk."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    block = row * 500
    body = b"".join(z.compress(block) for _ in range(height // 500)) + z.compress(row * (height % 500)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b""))
    return str(path)


def _two_checkpoints(checkpoint_dir):
    return [os.path.join(checkpoint_dir, f"epoch_{i}.pt") for i in (1, 5)]


@pytest.fixture(scope="module")
def plugin():
    install_plugin()


# -- 8. TorchScript is code ----------------------------------------------------------
def test_torchscript_is_refused_by_the_api_without_opt_in(dataset, tmp_path):
    marker = tmp_path / "written-by-the-checkpoint"
    paths = _evil_archives(tmp_path, marker)
    with pytest.raises(fov.VoGError, match=r"TorchScript archive: a program .*allow_torchscript=True"):
        fov.compute_vog(dataset, paths)
    for model in (small_model, "resnet18"):  # an architecture given does not load the archive either
        with pytest.raises(fov.VoGError, match="allow_torchscript=True"):
            fov.compute_vog(dataset, paths, model=model)
    with pytest.raises(fov.VoGError, match="allow_torchscript=True"):
        load_models(paths, model=None, allow_pickle=True)  # allowing pickles is not allowing TorchScript
    assert not marker.exists()
    assert "vog" not in dataset.get_field_schema()
    # with the opt-in it loads — and runs its code: the archive really writes a file
    res = fov.compute_vog(dataset, paths, allow_torchscript=True)
    assert marker.exists() and len(res.ids) == len(dataset)


def test_torchscript_hidden_in_a_png_sample_is_refused(dataset, tmp_path):
    marker = tmp_path / "written-by-the-png"
    archives = _evil_archives(tmp_path, marker)
    pngs = [_hide_in_png(tmp_path / f"sample_{i}.png", a) for i, a in enumerate(archives)]
    dataset.add_samples([fov_sample(p) for p in pngs])  # valid images of the dataset
    with pytest.raises(fov.VoGError, match=r"sample_0\.png is a TorchScript archive"):
        fov.compute_vog(dataset, pngs, model=small_model)
    with pytest.raises(fov.VoGError, match="TorchScript archive"):
        fov.compute_vog(dataset, str(tmp_path / "sample_*.png"), model=small_model)
    assert not marker.exists()


def fov_sample(path):
    import fiftyone as fo

    return fo.Sample(filepath=path, ground_truth=fo.Classification(label=CLASSES[0]))


def test_torchscript_is_refused_by_the_cli_without_opt_in(named_dataset, tmp_path):
    marker = tmp_path / "written-by-the-cli"
    _evil_archives(tmp_path, marker)
    r = subprocess.run(
        [*CLI, "compute", DATASET_NAME, "--checkpoints", str(tmp_path / "epoch_*.pt"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ.copy(),
    )
    assert r.returncode == 2, r.stderr
    assert "--allow-torchscript" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not marker.exists()
    from fiftyone_vog.cli import build_parser

    args = build_parser().parse_args(["compute", "ds", "--checkpoints", "c", "--allow-torchscript"])
    assert args.allow_torchscript is True


def test_torchscript_from_the_app_needs_the_servers_switch(plugin, dataset, tmp_path, monkeypatch):
    monkeypatch.delenv("FIFTYONE_VOG_ALLOW_IMPORTS", raising=False)
    marker = tmp_path / "written-from-the-app"
    _evil_archives(tmp_path, marker)
    params = {"checkpoints": str(tmp_path / "epoch_*.pt"), "batch_size": 16}
    with pytest.raises(ExecutionError, match="TorchScript archive.*FIFTYONE_VOG_ALLOW_IMPORTS=1"):
        foo.execute_operator(COMPUTE, ctx={"dataset": dataset, "params": dict(params, model="resnet18")})
    with pytest.raises(ExecutionError, match="FIFTYONE_VOG_ALLOW_IMPORTS=1"):
        foo.execute_operator(COMPUTE, ctx={"dataset": dataset, "params": params})
    assert not marker.exists()
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")  # the server's owner allows it
    foo.execute_operator(COMPUTE, ctx={"dataset": dataset, "params": params})
    assert marker.exists()
    dataset.reload()
    assert "vog" in dataset.get_field_schema()


# -- 11. decompression bombs, App resource caps --------------------------------------
def test_decompression_bomb_is_refused_before_decoding(dataset, checkpoint_dir, tmp_path):
    bomb = _bomb_png(tmp_path / "bomb.png")
    assert os.path.getsize(bomb) < 200_000
    dataset.add_samples([fov_sample(bomb)])  # last: read by the loader, after the first sample's check
    with pytest.raises(fov.VoGError) as e:
        fov.compute_vog(dataset, _two_checkpoints(checkpoint_dir), model=small_model)
    msg = str(e.value)
    assert "bomb.png" in msg and "declares 20000×20000 = 400,000,000 pixels" in msg and "89,478,485" in msg, msg
    assert "max_image_pixels" in msg and "\n" not in msg
    assert "vog" not in dataset.get_field_schema()


def test_the_pixel_limit_can_be_lowered_and_raised(image_dir, tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    Image.new("RGB", (150, 150), (9, 9, 9)).save(big)  # 22,500 pixels
    jpeg = tmp_path / "big.jpg"  # another format: its header is read by PIL
    Image.new("RGB", (150, 150), (9, 9, 9)).save(jpeg)
    for path in (big, jpeg):
        with pytest.raises(fov.VoGError, match="declares 150×150 = 22,500 pixels, more than the limit of 20,000"):
            ImageDataset(["a"], [str(path)], [0], max_image_pixels=20_000)[0]
    with monkeypatch.context() as m:  # over twice PIL's own limit, which PIL refuses to open
        m.setattr(Image, "MAX_IMAGE_PIXELS", 5_000)
        with pytest.raises(fov.VoGError, match="declares 22,500 pixels, more than the limit of 5,000"):
            ImageDataset(["a"], [str(jpeg)], [0])[0]
    monkeypatch.setenv("FIFTYONE_VOG_MAX_IMAGE_PIXELS", "20000")
    with pytest.raises(fov.VoGError, match="limit of 20,000"):
        ImageDataset(["a"], [str(big)], [0])[0]
    monkeypatch.setenv("FIFTYONE_VOG_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(fov.VoGError, match="FIFTYONE_VOG_MAX_IMAGE_PIXELS='lots' is not a positive whole number"):
        ImageDataset(["a"], [str(big)], [0])
    monkeypatch.delenv("FIFTYONE_VOG_MAX_IMAGE_PIXELS")
    # raised above PIL's own guard (here lowered to 10,000, so PIL alone refuses 22,500): read, both ways
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    for transform in ("rgb", lambda img: torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float()):
        x, _, _ = ImageDataset(["a"], [str(big)], [0], transform=transform, max_image_pixels=30_000)[0]
        assert x.shape == (3, 150, 150)
    assert Image.MAX_IMAGE_PIXELS == 10_000  # PIL's setting is put back
    from fiftyone_vog.cli import build_parser

    args = build_parser().parse_args(["compute", "ds", "--checkpoints", "c", "--max-image-pixels", "5"])
    assert args.max_image_pixels == 5


def test_the_app_cannot_ask_for_more_workers_or_a_larger_batch_than_the_server_has(
    plugin, dataset, checkpoint_dir, monkeypatch
):
    from fiftyone_vog.app.forms import compute_vog_kwargs

    cores = len(os.sched_getaffinity(0))
    # a model the checkpoints fit: the form loads one, and a misfit would be the first error
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")
    params = {"checkpoints": checkpoint_dir, "model": "conftest:small_model"}
    # the executor validates the form, whose inputs carry the caps
    with pytest.raises(ExecutionError, match="num_workers"):
        foo.execute_operator(COMPUTE, ctx={"dataset": dataset, "params": dict(params, num_workers=cores + 1)})
    with pytest.raises(ExecutionError, match="batch_size"):
        foo.execute_operator(COMPUTE, ctx={"dataset": dataset, "params": dict(params, batch_size=513)})
    assert "vog" not in dataset.get_field_schema()

    class Ctx:  # and execute re-checks them: never trust the form alone
        def __init__(self, **p):
            self.params = dict(params, **p)

        def secret(self, key):
            return None

    with pytest.raises(fov.VoGError, match=f"num_workers={cores + 1} is more than this server allows"):
        compute_vog_kwargs(Ctx(num_workers=cores + 1))
    with pytest.raises(
        fov.VoGError,
        match="batch_size=513 is more than this server allows from the App .*FIFTYONE_VOG_APP_MAX_BATCH_SIZE",
    ):
        compute_vog_kwargs(Ctx(batch_size=513))
    monkeypatch.setenv("FIFTYONE_VOG_APP_MAX_BATCH_SIZE", "8")
    with pytest.raises(fov.VoGError, match="batch_size=16 is more than"):
        compute_vog_kwargs(Ctx(batch_size=16))
    assert compute_vog_kwargs(Ctx(batch_size=8, num_workers=cores))["num_workers"] == cores


# -- 12. the same checkpoint twice ---------------------------------------------------------
def test_the_same_checkpoint_twice_is_refused(dataset, checkpoint_dir, tmp_path):
    a, b = _two_checkpoints(checkpoint_dir)
    copy = str(shutil.copy(a, tmp_path / "copy.pt"))
    link = tmp_path / "link.pt"
    link.symlink_to(a)
    for paths in ([a, b, a], [a, copy], [str(link), a], [b, a, str(link)]):
        with pytest.raises(fov.VoGError) as e:
            fov.compute_vog(dataset, paths, model=small_model)
        msg = str(e.value)
        first, second = [p for p in paths if p in (a, str(copy), str(link))][:2]
        assert f"checkpoints {first} and {second} are the same file" in msg, msg
    assert "vog" not in dataset.get_field_schema()


# -- 14. 16-bit images --------------------------------------------------------------------
def test_a_16_bit_png_keeps_its_range_with_a_callable_transform(tmp_path):
    values = (np.arange(IMG_H * IMG_W).reshape(IMG_H, IMG_W) * 500).astype(np.uint16)  # 0 … 59,500
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as img:
        assert img.mode == "I;16"

    def to_tensor(img):
        assert img.mode == "RGB"
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255

    x, _, _ = ImageDataset(["a"], [str(path)], [0], transform=to_tensor)[0]
    expected = torch.from_numpy(values / 65535.0).float()
    for c in range(3):
        torch.testing.assert_close(x[c], expected, atol=1 / 255, rtol=0)
    preset, _, _ = ImageDataset(["a"], [str(path)], [0], transform="rgb")[0]  # the preset agrees
    torch.testing.assert_close(x, preset, atol=1 / 255, rtol=0)


# -- messages -----------------------------------------------------------------------------
def test_classes_as_a_string_says_it_must_be_a_list(dataset, checkpoint_dir):
    with pytest.raises(fov.VoGError, match=r"classes= must be a list of class names .*not the string 'circle'"):
        fov.compute_vog(dataset, _two_checkpoints(checkpoint_dir), model=small_model, classes="circle")


def test_empty_and_directory_checkpoint_paths_say_what_they_are(checkpoint_dir, tmp_path):
    a, b = _two_checkpoints(checkpoint_dir)
    with pytest.raises(fov.VoGError, match="a checkpoint path is empty"):
        resolve_checkpoints([a, ""])
    with pytest.raises(fov.VoGError, match="a checkpoint path is empty"):
        resolve_checkpoints("")
    with pytest.raises(
        fov.VoGError, match=f"checkpoint {tmp_path} is a directory, not a file; pass the directory alone"
    ):
        resolve_checkpoints([a, str(tmp_path)])


def _message(path, **kwargs):
    with pytest.raises(fov.VoGError) as e:
        load_models([path], model=small_model, **kwargs)
    return str(e.value)


def test_files_that_are_not_checkpoints_say_so_and_quote_no_bytes(checkpoint_dir, tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    text = tmp_path / "hostname.pt"
    text.write_bytes(b"hostname-secret\n")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(open(_two_checkpoints(checkpoint_dir)[0], "rb").read()[:300])
    formats = (
        "read are torch.save state_dicts or training checkpoints (.pt/.pth/.ckpt/.bin), .safetensors, "
        "TorchScript archives (with allow_torchscript=True) and whole pickled modules (with allow_pickle=True)"
    )
    assert _message(empty) == f"cannot read checkpoint {empty}: the file is empty (0 bytes); {formats}"
    for path in (text, truncated):
        for allow_pickle in (False, True):
            assert _message(path, allow_pickle=allow_pickle) == (
                f"cannot read checkpoint {path}: it is not a PyTorch checkpoint, or is truncated or corrupt; {formats}"
            )


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_refused_pickle_says_allow_pickle_and_why_not_weights_only(tmp_path):
    path = tmp_path / "plain-pickle.pt"
    with open(path, "wb") as f:
        pickle.dump({"w": [1.0, 2.0]}, f)  # pickled without torch.save: weights_only refuses it
    msg = _message(path)
    assert "allow_pickle=True" in msg and "arbitrary code" in msg and "trust" in msg, msg
    assert "weights_only" not in msg and "\n" not in msg, msg


def test_a_corrupt_image_in_a_loader_worker_is_one_line(image_dir, checkpoint_dir, tmp_path):
    paths, labels = image_dir
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(open(paths[0], "rb").read()[:60] + b"garbage-bytes")
    ds = build_dataset(list(paths[:7]) + [str(bad)], list(labels[:8]))
    try:
        with pytest.raises(fov.VoGError) as e:
            fov.compute_vog(ds, _two_checkpoints(checkpoint_dir), model=small_model, num_workers=1, batch_size=4)
    finally:
        ds.delete()
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg and "worker" not in msg, msg
    assert msg.startswith(f"cannot read image {bad} (sample ") and "garbage" not in msg, msg


def test_a_dangling_symlink_is_an_error_in_a_glob_and_in_a_directory(checkpoint_dir, tmp_path):
    for i in (1, 2, 3):
        shutil.copy(os.path.join(checkpoint_dir, f"epoch_{i}.pt"), tmp_path / f"epoch_{i}.pt")
    (tmp_path / "epoch_4.pt").symlink_to(tmp_path / "deleted.pt")
    (tmp_path / "epoch_9.pt").mkdir()  # a sub-directory is skipped in both
    for spec in (str(tmp_path / "epoch_*.pt"), str(tmp_path)):
        with pytest.raises(fov.VoGError, match=r"epoch_4\.pt is a broken symlink"):
            resolve_checkpoints(spec)
    (tmp_path / "epoch_4.pt").unlink()
    for spec in (str(tmp_path / "epoch_*.pt"), str(tmp_path)):
        assert [p.name for p in resolve_checkpoints(spec)] == ["epoch_1.pt", "epoch_2.pt", "epoch_3.pt"]
