"""Hugging Face checkpoint folders scored by compute_vog equal the naive float64 reference built by
transformers' own loaders: a ViT, a ResNet and a ConvNeXt from tiny configs."""

import json
import os
import shutil
from collections import OrderedDict

import pytest
import torch

import fiftyone_vog as fov
from fiftyone_vog.errors import VoGError

from conftest import CLASSES
from hf_eco import (  # noqa: F401  (fixtures)
    assert_close,
    hf_dataset,
    images32,
    reference,
    save_checkpoints,
    tiny_config,
    transformers,
)


@pytest.mark.parametrize("name", ["vit", "resnet", "convnext"])
def test_trainer_output_folder_scores_to_the_reference(tmp_path, hf_dataset, name):
    folders = save_checkpoints(tmp_path / "run", name, steps=(5, 40, 300))  # by step, numerically
    res = fov.compute_vog(hf_dataset, str(tmp_path / "run"))
    assert res.config.checkpoints == [os.path.abspath(f) for f in folders]
    assert_close(hf_dataset.values("vog_raw"), reference(folders, hf_dataset))


def test_float64_scores_equal_the_reference_to_1e_10(tmp_path, hf_dataset):
    folders = save_checkpoints(tmp_path / "run", "vit")
    fov.compute_vog(hf_dataset, folders, precision="float64")  # a list of folders, in training order
    assert_close(hf_dataset.values("vog_raw"), reference(folders, hf_dataset), rel=1e-10)


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    return save_checkpoints(tmp_path_factory.mktemp("vit") / "run", "vit")


def _copy_run(vit_run, tmp_path, edit=None, which=None):
    """A copy of the run's folders, ``edit(config)`` applied to the config.json of each (or of ``which``)."""
    out = tmp_path / "run"
    for i, folder in enumerate(vit_run):
        target = out / os.path.basename(folder)
        shutil.copytree(folder, target)
        if edit is not None and (which is None or i in which):
            config = json.loads((target / "config.json").read_text())
            edit(config)
            (target / "config.json").write_text(json.dumps(config))
    return str(out)


def test_labels_match_the_models_order_by_name_whatever_the_datasets_order(vit_run, hf_dataset):
    """The decision: remapped. id2label is the model's output order and FiftyOne labels are names,
    so a dataset that lists its classes in another order is scored by name, exactly."""
    hf_dataset.classes["ground_truth"] = list(reversed(CLASSES))
    hf_dataset.default_classes = ["dots", "circle", "square", "stripes"]
    hf_dataset.save()
    res = fov.compute_vog(hf_dataset, vit_run)
    assert res.config.classes == CLASSES  # id2label's order, recorded
    assert_close(hf_dataset.values("vog_raw"), reference(vit_run, hf_dataset))


def _refused(ds, checkpoints, match, **kwargs):
    before = sorted(ds.get_field_schema())
    with pytest.raises(VoGError, match=match) as e:
        fov.compute_vog(ds, checkpoints, **kwargs)
    assert "\n" not in str(e.value)
    assert sorted(ds.get_field_schema()) == before and ds.list_runs() == []  # before any work


def test_class_orders_that_cannot_be_matched_are_refused(vit_run, tmp_path, hf_dataset):
    _refused(hf_dataset, vit_run, r"differ from the model's output order in .*config.json", classes=CLASSES[::-1])
    sample = hf_dataset.first()
    sample.ground_truth.label = "cat"
    sample.save()
    _refused(hf_dataset, vit_run, r"labels \['cat'\] .* not among the 4 classes the model was trained on.*config.json")


def test_placeholder_id2label_needs_classes(vit_run, tmp_path, hf_dataset):
    def placeholders(config):
        config["id2label"] = {str(i): f"LABEL_{i}" for i in range(4)}
        config["label2id"] = {f"LABEL_{i}": i for i in range(4)}

    run = _copy_run(vit_run, tmp_path, placeholders)
    _refused(hf_dataset, run, r"no class names .*LABEL_0 … LABEL_3.*pass classes= in the model's output order")
    _refused(hf_dataset, run, r"lists 3 classes but the model .* has 4 outputs", classes=CLASSES[:3])
    res = fov.compute_vog(hf_dataset, run, classes=CLASSES)
    assert res.config.classes == CLASSES
    assert_close(hf_dataset.values("vog_raw"), reference(vit_run, hf_dataset))  # the same weights


@pytest.mark.parametrize(
    "edit, which, match",
    [
        (
            lambda c: c.update(auto_map={"AutoModelForImageClassification": "modeling_my.MyViT"}),
            None,
            r"defined by Python code in the folder .*trust_remote_code; fiftyone-vog never runs code",
        ),
        (
            lambda c: c.update(model_type="my_vit", auto_map={"AutoConfig": "configuration_my.MyConfig"}),
            None,
            r"defined by Python code in the folder",
        ),
        (lambda c: c.update(model_type="bert"), None, r"'bert' model, which has no image-classification head"),
        (lambda c: c.update(model_type="not_a_model"), None, r"model_type 'not_a_model', which this transformers"),
        (lambda c: c["id2label"].update({"3": "ovals"}), [2], r"other classes than .*not of one training run"),
    ],
    ids=["auto_map", "remote_config", "no_head", "unknown_type", "classes_differ"],
)
def test_configs_that_would_need_code_or_do_not_classify_are_refused(vit_run, tmp_path, hf_dataset, edit, which, match):
    _refused(hf_dataset, _copy_run(vit_run, tmp_path, edit, which), match)


def test_folders_that_are_not_checkpoints_say_what_they_expected(vit_run, tmp_path, hf_dataset):
    run = _copy_run(vit_run, tmp_path)
    os.remove(os.path.join(run, "checkpoint-20", "config.json"))
    _refused(hf_dataset, run, r"checkpoint-20 has no config.json; a Hugging Face checkpoint folder holds config.json")
    run = _copy_run(vit_run, tmp_path / "b")
    os.remove(os.path.join(run, "checkpoint-30", "model.safetensors"))
    _refused(hf_dataset, run, r"checkpoint-30 has config.json but no weights")
    _refused(hf_dataset, vit_run[0], r"is one Hugging Face checkpoint; .* pass the Trainer's output folder")
    _refused(
        hf_dataset,
        vit_run,
        r"builds the architecture of Hugging Face checkpoint folders|leave model= out",
        model="resnet18",
    )


def test_weights_that_do_not_fit_the_config_are_refused(vit_run, tmp_path, hf_dataset):
    run = _copy_run(vit_run, tmp_path, lambda c: c.update(hidden_size=16, intermediate_size=32), [1])
    with pytest.raises(
        VoGError, match=r"checkpoint-20 do not fit its config.json \(mismatched keys|transformers cannot build"
    ):
        fov.compute_vog(hf_dataset, run)
    assert hf_dataset.list_runs() == []


def test_a_module_given_for_the_folders_scores_them_or_says_what_does_not_fit(tmp_path, hf_dataset):
    folders = save_checkpoints(tmp_path / "run", "resnet")
    same = lambda: transformers.AutoModelForImageClassification.from_config(tiny_config("resnet"))  # noqa: E731
    fov.compute_vog(hf_dataset, str(tmp_path / "run"), model=same)  # the folder's weight names: loaded as they are
    assert_close(hf_dataset.values("vog_raw"), reference(folders, hf_dataset))
    other = torch.nn.Sequential(OrderedDict(flat=torch.nn.Flatten(), fc=torch.nn.Linear(3 * 32 * 32, 4)))
    hf_dataset.delete_sample_field("vog_raw")
    hf_dataset.delete_runs()
    _refused(
        hf_dataset,
        str(tmp_path / "run"),
        r"do not fit the model given \(2 missing, e\.g\. fc\.bias, fc\.weight; \d+ unexpected, e\.g\. .*\); "
        r"leave model= out to build the architecture its config\.json names",
        model=other,
    )


@pytest.mark.parametrize("model", ["hf:./run", "hf:vit_base"])
def test_a_folder_or_name_after_hf_says_to_pass_the_folder_as_the_checkpoints(checkpoint_dir, hf_dataset, model):
    match = (
        rf"^model '{model}': .*config\.json, not from the model; pass the Trainer's output folder .* as the checkpoints"
    )
    _refused(hf_dataset, checkpoint_dir, match, model=model)
