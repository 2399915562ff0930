"""Hugging Face checkpoint folders scored by compute_vog equal the naive float64 reference built by
transformers' own loaders: a ViT, a ResNet and a ConvNeXt from tiny configs."""

import os

import pytest

import fiftyone_vog as fov

from hf_eco import assert_close, hf_dataset, images32, reference, save_checkpoints  # noqa: F401  (fixtures)


@pytest.mark.parametrize("name", ["vit", "resnet", "convnext"])
def test_trainer_output_folder_scores_to_the_reference(tmp_path, hf_dataset, name):
    folders = save_checkpoints(tmp_path / "run", name, steps=(5, 40, 300))  # by step, numerically
    res = fov.compute_vog(hf_dataset, str(tmp_path / "run"))
    assert res.config.checkpoints == [os.path.abspath(f) for f in folders]
    assert_close(hf_dataset.values("vog_raw"), reference(folders, hf_dataset))
