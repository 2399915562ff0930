"""Field names that would shadow FiftyOne's Sample attributes, that FiftyOne reserves, Python
keywords, too-long names and windows named twice are refused before anything is written — from
the API, the CLI and the App's form (through FiftyOne's executor)."""

import os

import fiftyone.operators as foo
import pytest
from fiftyone.operators.executor import ExecutionError

import fiftyone_vog as fov
from fiftyone_vog import cli
from fiftyone_vog.app.forms import parse_windows
from fiftyone_vog.app.install import install_plugin
from fiftyone_vog.core.naming import MAX_FIELD_NAME, check_field_name

from conftest import resolve_form, small_model

COMPUTE = "@fiftyone-vog/vog/compute_vog"
SHADOWING = [
    "get_field",
    "to_dict",
    "reload",
    "save",
    "copy",
    "dataset",
    "media_type",
    "frames",
    "id",
    "filepath",
    "tags",
    "metadata",
    "created_at",
    "last_modified_at",
    "delete",
    "pk",
]


@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


def _unchanged(ds, before):
    assert set(ds.get_field_schema()) == before and not fov.list_vog_runs(ds)
    ds.reload()
    assert len(list(ds.iter_samples())) == len(ds)  # every sample still loads


@pytest.mark.parametrize("name", SHADOWING + ["x" * 5000])
def test_shadowing_and_reserved_names_are_refused_by_the_api(dataset, checkpoint_dir, name):
    before = set(dataset.get_field_schema())
    with pytest.raises(fov.VoGError, match="reserved by FiftyOne|characters long") as e:
        fov.compute_vog(dataset, checkpoint_dir, model=small_model, vog_field=name, progress=False)
    assert "choose another name" in str(e.value) and len(str(e.value)) < 300  # one line, not 5000 x's
    _unchanged(dataset, before)


def test_python_keyword_says_so(dataset, checkpoint_dir):
    with pytest.raises(fov.VoGError, match="'class' is a Python keyword"):
        fov.compute_vog(dataset, checkpoint_dir, model=small_model, vog_field="class", progress=False)


def test_derived_field_names_are_checked(dataset, checkpoint_dir):
    before = set(dataset.get_field_schema())
    # 'to' + window 'dict' would write to_dict, which shadows Sample.to_dict
    with pytest.raises(fov.VoGError, match="window 'dict' gives the field 'to_dict'.*reserved by FiftyOne"):
        fov.compute_vog(
            dataset, checkpoint_dir, model=small_model, vog_field="to", windows={"dict": [0, 1]}, progress=False
        )
    # the longest name passes, its _raw field does not
    name = "v" * MAX_FIELD_NAME
    assert check_field_name(name) == name
    with pytest.raises(
        fov.VoGError, match=f"gives the field 'vvv.*_raw', which is 104 characters long.*at most {MAX_FIELD_NAME}"
    ):
        fov.compute_vog(dataset, checkpoint_dir, model=small_model, vog_field=name, progress=False)
    with pytest.raises(fov.VoGError, match="window name='if' is a Python keyword"):
        fov.compute_vog(dataset, checkpoint_dir, model=small_model, windows={"if": [0, 1]}, progress=False)
    _unchanged(dataset, before)


def test_window_named_twice_is_refused():
    for text in ("a=0:2,a=-2:", '{"a": "0:2", "a": "-2:"}'):
        with pytest.raises(fov.VoGError, match="'a' is given twice"):
            parse_windows(text)


@pytest.mark.parametrize("windows", ["a=0:2,a=-2:", '{"a": "0:2", "a": "-2:"}'])
def test_cli_window_named_twice_exits_2(dataset, checkpoint_dir, capsys, windows):
    dataset.name = "field-names-cli"
    rc = cli.main(
        [
            "compute",
            dataset.name,
            "--checkpoints",
            checkpoint_dir,
            "--model",
            "conftest:small_model",
            "--windows",
            windows,
            "--quiet",
        ]
    )
    assert rc == 2 and "'a' is given twice" in capsys.readouterr().err
    assert not fov.list_vog_runs(dataset)


@pytest.mark.parametrize(
    "params, prop, why",
    [
        ({"vog_field": "get_field"}, "vog_field", "reserved by FiftyOne"),
        ({"vog_field": "x" * 5000}, "vog_field", "characters long"),
        ({"vog_field": "to", "windows": "dict=0:2"}, "vog_field", "'to_dict'"),
        ({"windows": "a=0:2,a=-2:"}, "windows", "given twice"),
    ],
)
def test_form_shows_name_errors_inline(dataset, checkpoint_dir, params, prop, why):
    props, val = resolve_form(COMPUTE, dataset, {"checkpoints": checkpoint_dir, **params})
    assert props[prop].invalid and why in props[prop].error_message
    assert val.invalid


def test_executor_refuses_a_shadowing_name(dataset, checkpoint_dir, monkeypatch):
    before = set(dataset.get_field_schema())
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")  # a model the checkpoints fit: the form loads one
    with pytest.raises(ExecutionError, match="reserved by FiftyOne"):
        foo.execute_operator(
            COMPUTE,
            ctx={
                "dataset": dataset,
                "params": {
                    "checkpoints": os.path.join(checkpoint_dir, "epoch_*.pt"),
                    "model": "conftest:small_model",
                    "vog_field": "save",
                },
            },
        )
    _unchanged(dataset, before)
