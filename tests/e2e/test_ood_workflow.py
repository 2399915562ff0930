"""The paper's ImageNet-O audit on generated folders, end to end through the operators:
add an unlabeled folder with FiftyOne's add_images_dir(tags="ood"), score with
label_mode="auto", open the vog-ood view and see where the OOD images fall."""

import os

import fiftyone.operators as foo
import numpy as np
import pytest
from PIL import Image

import fiftyone_vog as fov
from fiftyone_vog.analysis import share_by_percentile_from_view
from fiftyone_vog.app.install import install_plugin

from conftest import build_dataset

PLUGIN = "@fiftyone-vog/vog"


@pytest.fixture
def ood_dir(tmp_path):
    """Images unlike any training class: smooth colour gradients."""
    rng = np.random.default_rng(9)
    yy, xx = np.mgrid[0:12, 0:10]
    for i in range(12):
        a, b = rng.uniform(-1, 1, 2)
        img = np.stack([(a * yy + b * xx) % 1, (b * yy) % 1, (a * xx) % 1], -1)
        Image.fromarray((img * 255).astype(np.uint8)).save(tmp_path / f"ood_{i:02d}.png")
    return str(tmp_path)


def test_ood_audit_through_the_operators(image_dir, checkpoint_dir, ood_dir, monkeypatch):
    install_plugin()
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")
    ds = build_dataset(*image_dir)
    ds.add_images_dir(ood_dir, tags="ood")  # no labels
    assert len(ds.match_tags("ood")) == 12 and len(ds.exists("ground_truth", False)) == 12

    params = {"checkpoints": os.path.join(checkpoint_dir, "epoch_*.pt"), "model": "conftest:small_model"}
    # label_mode="true" cannot score unlabeled samples: the operator reports the API's error
    with pytest.raises(Exception, match="label_mode='auto'"):
        foo.execute_operator(f"{PLUGIN}/compute_vog", ctx={"dataset": ds, "params": params}).raise_exceptions()
    assert "vog" not in ds.get_field_schema()

    foo.execute_operator(f"{PLUGIN}/compute_vog", ctx={"dataset": ds, "params": {**params, "label_mode": "auto"}})
    assert len(ds.exists("vog")) == 52
    foo.execute_operator(f"{PLUGIN}/save_vog_views", ctx={"dataset": ds, "params": {"vog_field": "vog"}})

    ood = ds.load_saved_view("vog-ood")
    assert sorted(ood.values("filepath")) == sorted(ds.match_tags("ood").values("filepath"))
    scores = ood.values("vog_raw")
    assert scores == sorted(scores, reverse=True)  # by raw VoG, highest first (z-scores hide OOD samples)
    # where do the OOD images fall in the ranking? every sample is in exactly one bin
    share = share_by_percentile_from_view(ds, "vog", tag="ood", bins=4)
    assert sum(share.counts) == 52 and sum(share.flagged) == 12
    assert share.overall_share == pytest.approx(12 / 52)
    # the OOD samples were scored on the trained model's prediction (the run says auto)
    assert fov.get_vog_run(ds, "vog").config.label_mode == "auto"
    ds.delete()
