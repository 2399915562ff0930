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


#: Importing a callback's module needs no extra; importing the callback names the extra it needs.
CALLBACK_CODE = """
import fiftyone_vog.inputs.{module} as module
from fiftyone_vog.errors import VoGError
try:
    from fiftyone_vog.inputs.{module} import {name}
except VoGError as e:
    print(e)
"""


@pytest.mark.parametrize(
    "module, name, package, what",
    [
        ("callbacks", "VoGCheckpoint", "lightning", "the Lightning callback"),
        ("hf_callback", "VoGTrainerCallback", "transformers", "the Trainer callback"),
    ],
)
def test_a_callback_without_its_library_names_the_extra(tmp_path, module, name, package, what):
    r = _without(tmp_path, package, "-c", CALLBACK_CODE.format(module=module, name=name))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == (
        f"{what} {name} needs {package}, which is not installed; pip install 'fiftyone-vog[{package}]'"
    )


# -- Hugging Face transformers (the [transformers] extra) ----------------------------------


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
