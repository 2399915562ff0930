"""timm and Lightning are optional extras: without them everything else works, and what needs one
says in one line which extra installs it (tested in subprocesses where importing it fails)."""

import os
import subprocess
import sys

import pytest

from conftest import TESTS_DIR, build_dataset


def _without(tmp_path, package, *args):
    """``python ARGS`` where ``import {package}`` fails (a sitecustomize sets ``sys.modules[package] = None``)."""
    (tmp_path / "sitecustomize.py").write_text(f"import sys\nsys.modules[{package!r}] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", ""), TESTS_DIR])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, env=env)


TIMM_CODE = """
from fiftyone_vog.errors import VoGError
from fiftyone_vog.inputs.checkpoints import model_factory
from fiftyone_vog.inputs.images import resolve_transform
from fiftyone_vog.models import SmallCNN
try:
    import timm
except ImportError:
    print("no timm")
print(resolve_transform(None, SmallCNN(), "SmallCNN"))  # the rest needs no timm
try:
    model_factory("timm:resnet18")
except VoGError as e:
    print(e)
"""


def test_a_timm_name_without_timm_names_the_extra(tmp_path):
    r = _without(tmp_path, "timm", "-c", TIMM_CODE)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines() == [
        "no timm",
        "('rgb', 'default')",
        "model 'timm:resnet18' needs timm, which is not installed; pip install 'fiftyone-vog[timm]'",
    ]


@pytest.fixture
def named(image_dir):
    ds = build_dataset(*image_dir, name="fiftyone-vog-extras")
    ds.persistent = True
    yield ds
    ds.delete()


def test_the_cli_without_timm_exits_2_with_one_line(tmp_path, named, checkpoint_dir):
    r = _without(
        tmp_path, "timm", "-m", "fiftyone_vog.cli", "compute", named.name, "--checkpoints", checkpoint_dir,
        "--model", "timm:resnet18", "--quiet",
    )  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [
        "fiftyone-vog compute: error: model 'timm:resnet18' needs timm, which is not installed; "
        "pip install 'fiftyone-vog[timm]'"
    ]
    assert "vog" not in named.get_field_schema()


LIGHTNING_CODE = """
import fiftyone_vog.inputs.callbacks as callbacks  # importing the module needs no lightning
from fiftyone_vog.errors import VoGError
try:
    from fiftyone_vog.inputs.callbacks import VoGCheckpoint
except VoGError as e:
    print(e)
"""


def test_the_lightning_callback_without_lightning_names_the_extra(tmp_path):
    r = _without(tmp_path, "lightning", "-c", LIGHTNING_CODE)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == (
        "the Lightning callback VoGCheckpoint needs lightning, which is not installed; "
        "pip install 'fiftyone-vog[lightning]'"
    )


# -- Hugging Face transformers (the [transformers] extra) ----------------------------------
HF_CALLBACK_CODE = """
import fiftyone_vog.inputs.hf_callback as hf_callback  # importing the module needs no transformers
from fiftyone_vog.errors import VoGError
try:
    from fiftyone_vog.inputs.hf_callback import VoGTrainerCallback
except VoGError as e:
    print(e)
"""


def test_the_trainer_callback_without_transformers_names_the_extra(tmp_path):
    r = _without(tmp_path, "transformers", "-c", HF_CALLBACK_CODE)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == (
        "the Trainer callback VoGTrainerCallback needs transformers, which is not installed; "
        "pip install 'fiftyone-vog[transformers]'"
    )


def test_the_cli_on_hf_folders_without_transformers_exits_2_with_one_line(tmp_path, named):
    from hf_eco import save_checkpoints

    save_checkpoints(tmp_path / "run", "resnet")  # written here, where transformers is installed
    r = _without(tmp_path, "transformers", "-m", "fiftyone_vog.cli", "compute", named.name, "--checkpoints", str(tmp_path / "run"), "--quiet")  # fmt: skip
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [
        "fiftyone-vog compute: error: a Hugging Face checkpoint folder needs transformers, which is not "
        "installed; pip install 'fiftyone-vog[transformers]'"
    ]
    assert "vog" not in named.get_field_schema()
