"""One check that a field holds fo.Classification labels, one source of a label field's classes:
compute_vog, shuffle_labels and export_vog_subset say the same thing."""

import fiftyone as fo
import pytest

import fiftyone_vog as fov
from fiftyone_vog.inputs.images import read_view
from fiftyone_vog.inputs.labels import check_classification_field, declared_classes

from conftest import CLASSES, small_model


def test_one_message_for_a_missing_or_wrong_label_field(dataset, checkpoint_dir, tmp_path):
    dataset.set_values("name", ["x"] * len(dataset))
    calls = {
        "compute_vog": lambda f: fov.compute_vog(dataset, checkpoint_dir, model=small_model, label_field=f),
        "shuffle_labels": lambda f: fov.shuffle_labels(dataset, label_field=f),
        "export": lambda f: fov.export_vog_subset(
            dataset, str(tmp_path / "out"), dataset_type="image-classification-dir", label_field=f
        ),
    }
    for who, call in calls.items():
        with pytest.raises(fov.VoGError) as e:
            call("labels")
        msg = str(e.value)
        assert msg.startswith("label field 'labels' does not exist: "), (who, msg)
        assert msg.endswith("pass label_field= one of its Classification fields: ground_truth"), (who, msg)
        with pytest.raises(fov.VoGError, match=r"'name' is StringField\(\), not a fo.Classification field"):
            call("name")
    with pytest.raises(fov.VoGError, match="shuffle_labels needs one"):
        check_classification_field(dataset, "name", "shuffle_labels")


def test_declared_classes(dataset):
    assert declared_classes(dataset, "ground_truth") == CLASSES
    dataset.classes = {}
    dataset.default_classes = ["b", "a"]
    assert declared_classes(dataset, "ground_truth") == ["b", "a"]
    dataset.default_classes = []
    assert declared_classes(dataset, "ground_truth") is None
    assert read_view(dataset, "ground_truth").classes == sorted(set(dataset.values("ground_truth.label")))
    dataset.add_sample_field("other", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    assert check_classification_field(dataset, "other") is None
