"""A tiny ViT trained a few steps by the real ``transformers.Trainer`` with VoGTrainerCallback, scored
from its output folder with no other argument — through the API, the CLI (a subprocess) and the
operator (FiftyOne's executor) — to the naive float64 reference built by transformers' own loaders."""

import glob
import json
import os

import fiftyone.operators as foo
import pytest

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin
from fiftyone_vog.inputs.manifest import MANIFEST_NAME

from conftest import TESTS_DIR, build_dataset, run_cli
from hf_eco import assert_close, hf_dataset, images32, reference, train  # noqa: F401  (fixtures)

COMPUTE = "@fiftyone-vog/vog/compute_vog"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, images32):
    """The Trainer's output folder after 3 epochs of 2 steps (a checkpoint per epoch, each kept)."""
    out = str(tmp_path_factory.mktemp("hf") / "run")
    train(out, images32, epochs=3)
    return out


def _kept(out):
    return [os.path.join(out, "vog", f"checkpoint-{s}") for s in (2, 4, 6)]


def test_the_callback_keeps_each_epoch_with_its_manifest(trained):
    manifest = json.loads(open(os.path.join(trained, MANIFEST_NAME)).read())
    assert manifest["model"] == "hf" and manifest["writer"] == "transformers:VoGTrainerCallback"
    assert manifest["classes"] == ["circle", "square", "stripes", "dots"]  # id2label's order
    assert manifest["transform"]["kind"] == "hf"
    assert manifest["transform"]["image_processor"]["image_mean"] == [0.4, 0.5, 0.6]
    assert [(c["file"], c["epoch"], c["step"]) for c in manifest["checkpoints"]] == [
        ("vog/checkpoint-2", 1, 2),
        ("vog/checkpoint-4", 2, 4),
        ("vog/checkpoint-6", 3, 6),
    ]
    for folder in _kept(trained):  # the model alone, no optimizer state
        assert sorted(os.listdir(folder)) == ["config.json", "model.safetensors", "preprocessor_config.json"]


def test_the_output_folder_alone_scores_to_the_reference(trained, hf_dataset):
    res = fov.compute_vog(hf_dataset, trained)
    assert res.config.checkpoints == _kept(trained)
    assert res.config.model == "hf" and res.config.classes == ["circle", "square", "stripes", "dots"]
    pre = res.config.preprocessing
    assert pre["source"] == "manifest" and pre["transform"]["image_processor"]["image_std"] == [0.2, 0.25, 0.3]
    assert "transformers" in res.config.versions
    assert_close(hf_dataset.values("vog_raw"), reference(_kept(trained), hf_dataset))


def test_without_a_manifest_the_trainer_folders_score_the_same(trained, hf_dataset):
    """A glob over the Trainer's own checkpoint-* folders, and a folder of them without a manifest:
    config.json, id2label and preprocessor_config.json say everything."""
    folders = sorted(glob.glob(os.path.join(trained, "checkpoint-*")), key=lambda p: int(p.rsplit("-", 1)[1]))
    assert len(folders) == 3 and not os.path.exists(os.path.join(trained, "vog", MANIFEST_NAME))
    ref = reference(folders, hf_dataset)
    res = fov.compute_vog(hf_dataset, os.path.join(trained, "checkpoint-*"))
    assert res.config.checkpoints == folders and res.config.preprocessing["source"] == "model"
    assert_close(hf_dataset.values("vog_raw"), ref)
    fov.compute_vog(hf_dataset, os.path.join(trained, "vog"), vog_field="kept")
    assert_close(hf_dataset.values("kept_raw"), ref)  # the kept copies hold the same weights


def test_the_cli_scores_the_output_folder(trained, images32):
    ds = build_dataset(*images32, name="hf-cli")
    ds.persistent = True  # visible to the subprocess
    try:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")])}
        r = run_cli("compute", "hf-cli", "--checkpoints", trained, "--quiet", env=env)
        assert r.returncode == 0, r.stderr
        assert "image processor ViTImageProcessor" in r.stdout + r.stderr  # says which preprocessing it used
        ds.reload()
        assert_close(ds.values("vog_raw"), reference(_kept(trained), ds))
    finally:
        ds.delete()


def test_the_operator_scores_the_output_folder(trained, hf_dataset):
    install_plugin()
    foo.execute_operator(COMPUTE, ctx={"dataset": hf_dataset, "params": {"checkpoints": trained}})
    hf_dataset.reload()
    assert hf_dataset.get_run_info("vog").config.model == "hf"
    assert_close(hf_dataset.values("vog_raw"), reference(_kept(trained), hf_dataset))


def test_every_n_saves_keeps_what_save_total_limit_deletes(tmp_path, images32, hf_dataset):
    out = str(tmp_path / "run")
    train(out, images32, epochs=4, callback_kwargs={"every_n_saves": 2}, save_total_limit=1)
    assert [os.path.basename(p) for p in glob.glob(os.path.join(out, "checkpoint-*"))] == ["checkpoint-8"]
    kept = [os.path.join(out, "vog", f"checkpoint-{s}") for s in (4, 8)]
    same = os.path.join(out, "checkpoint-8", "model.safetensors")
    assert os.path.samefile(os.path.join(kept[1], "model.safetensors"), same)  # a hard link: no extra disk
    res = fov.compute_vog(hf_dataset, out)
    assert res.config.checkpoints == kept
    assert_close(hf_dataset.values("vog_raw"), reference(kept, hf_dataset))


def test_compute_help_says_how_to_score_hugging_face_folders():
    from fiftyone_vog.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = " ".join(sub.choices["compute"].format_help().split())
    assert "hf (or omitted) for Hugging Face checkpoint folders: the architecture in their config.json" in text
    assert "a Hugging Face Trainer output folder or a glob such as 'runs/hf/checkpoint-*'" in text
    assert "pip install 'fiftyone-vog[transformers]'" in text
