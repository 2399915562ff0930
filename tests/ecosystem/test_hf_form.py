"""The Compute VoG form on Hugging Face checkpoint folders: no import switch needed, each problem an
inline error on the control that fixes it (a folder without config.json, an architecture that
needs remote code, id2label against the view's labels), and notices of what was found and of the
preprocessing it picked (the model's image processor)."""

import json
import os
import shutil

import pytest

from fiftyone_vog.app.install import install_plugin

from conftest import CLASSES, resolve_form
from hf_eco import hf_dataset, images32, save_checkpoints  # noqa: F401  (fixtures)

COMPUTE = "@fiftyone-vog/vog/compute_vog"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    install_plugin()
    out = tmp_path_factory.mktemp("hf_form") / "run"
    save_checkpoints(out, "vit")
    return str(out)


@pytest.fixture(autouse=True)
def no_import_switch(monkeypatch):
    monkeypatch.delenv("FIFTYONE_VOG_ALLOW_IMPORTS", raising=False)


def _invalid(props):
    return {k: p.error_message for k, p in props.items() if p.invalid}


def test_the_form_finds_a_trainer_folder_and_its_preprocessing(run, hf_dataset):
    for model in (None, "hf"):
        props, _ = resolve_form(COMPUTE, hf_dataset, {"checkpoints": run, "model": model}, as_app=True)
        assert not _invalid(props)
        assert props["checkpoints_found"].view.label == "3 checkpoints: checkpoint-10 … checkpoint-30"
        assert props["hf_found"].view.label == (
            "Hugging Face checkpoints: ViTForImageClassification from config.json; classes in the model's order "
            "(id2label): circle, square, stripes, dots"
        )
        assert props["transform_used"].view.label == (
            "Preprocessing: the model's image processor ViTImageProcessor: resize 32×32, rescale ×0.00392157, "
            "normalize mean (0.4, 0.5, 0.6) std (0.2, 0.25, 0.3) (the model's own)"
        )
    assert "hf" in [c.value for c in props["model"].view.choices]  # offered as a model kind


def test_a_dataset_listing_the_classes_in_another_order_is_matched_by_name(run, hf_dataset):
    hf_dataset.classes["ground_truth"] = CLASSES[::-1]
    hf_dataset.save()
    props, _ = resolve_form(COMPUTE, hf_dataset, {"checkpoints": run})
    assert not _invalid(props)
    assert props["hf_found"].view.label.endswith("another order: labels are matched by name")


def test_classes_that_do_not_fit_id2label_are_refused_on_classes(run, hf_dataset):
    props, _ = resolve_form(COMPUTE, hf_dataset, {"checkpoints": run, "classes": ",".join(CLASSES[::-1])}, as_app=True)
    assert _invalid(props).keys() == {"classes"}
    assert "differ from the model's output order in" in props["classes"].error_message
    sample = hf_dataset.first()
    sample.ground_truth.label = "cat"
    sample.save()
    props, _ = resolve_form(COMPUTE, hf_dataset, {"checkpoints": run})
    assert _invalid(props).keys() == {"classes"}
    assert "labels ['cat'] in 'ground_truth' are not among the model's classes" in props["classes"].error_message


def test_a_folder_without_config_says_what_it_expected(run, tmp_path, hf_dataset):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    os.remove(out / "checkpoint-20" / "config.json")
    props, _ = resolve_form(COMPUTE, hf_dataset, {"checkpoints": str(out)}, as_app=True)
    assert _invalid(props).keys() == {"checkpoints"}
    assert (
        "checkpoint-20 has no config.json; a Hugging Face checkpoint folder holds config.json (the architecture)"
        in (props["checkpoints"].error_message)
    )


def test_an_architecture_that_needs_remote_code_is_refused_on_model(run, tmp_path, hf_dataset):
    out = tmp_path / "run"
    shutil.copytree(run, out)
    for folder in out.iterdir():
        config = json.loads((folder / "config.json").read_text())
        config["auto_map"] = {"AutoModelForImageClassification": "modeling_mine.MyViT"}
        (folder / "config.json").write_text(json.dumps(config))
    props, _ = resolve_form(COMPUTE, hf_dataset, {"checkpoints": str(out)}, as_app=True)
    assert _invalid(props).keys() == {"model"}
    message = props["model"].error_message
    assert "trust_remote_code" in message and "fiftyone-vog never runs code from a checkpoint folder" in message


def test_weights_linked_from_outside_the_app_roots_are_refused(run, tmp_path, hf_dataset, monkeypatch):
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    shutil.copytree(run, inside / "run")
    outside.mkdir()
    weights = inside / "run" / "checkpoint-20" / "model.safetensors"
    shutil.move(weights, outside / "model.safetensors")
    weights.symlink_to(outside / "model.safetensors")
    monkeypatch.setenv("FIFTYONE_VOG_APP_ROOTS", str(inside))
    props, _ = resolve_form(COMPUTE, hf_dataset, {"checkpoints": str(inside / "run")}, as_app=True)
    assert _invalid(props).keys() == {"checkpoints"}
    assert "is outside the folders the App may use on this server" in props["checkpoints"].error_message
