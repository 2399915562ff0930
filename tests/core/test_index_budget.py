"""MongoDB's 64 indexes per collection: a run indexes only what the grid and the saved views sort
by, never skips one silently (the run's config, the App's notification and the CLI say which and
why), and ``index_vog_fields`` (CLI ``fiftyone-vog index``, operator ``index_vog_fields``) indexes
the others or drops what fiftyone-vog made."""

import os

import fiftyone as fo
import fiftyone.operators as foo
import pytest

import fiftyone_vog as fov
from fiftyone_vog import cli
from fiftyone_vog.app.install import install_plugin
from fiftyone_vog.core import indexes
from fiftyone_vog.options import MAX_INDEXES

from conftest import small_model

PLUGIN = "@fiftyone-vog/vog"
INDEX = f"{PLUGIN}/index_vog_fields"


@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


def _fill(ds, leave):
    """The user's own indexed fields until only ``leave`` indexes fit."""
    i = 0
    while indexes.index_count(ds) < MAX_INDEXES - leave:
        ds.add_sample_field(f"u{i}", fo.FloatField)
        ds.create_index(f"u{i}")
        i += 1


def test_a_run_indexes_what_the_grid_and_views_sort_by_not_its_windows(dataset, checkpoint_dir):
    before = indexes.index_count(dataset)
    res = fov.compute_vog(dataset, checkpoint_dir, model=small_model, windows={"late": "-2:"})
    want = {"vog", "vog_raw", "vog_loss", "vog_margin", "vog_maxprob", "vog_energy"}
    assert want <= indexes.indexed_fields(dataset) and indexes.index_count(dataset) == before + len(want)
    assert not {"vog_late", "vog_late_raw", "vog_late_loss"} & indexes.indexed_fields(dataset)
    assert res.config["indexes"]["not_indexed"] == {} and set(res.config["indexes"]["indexed"]) == want
    out = fov.index_vog_fields(dataset, ["vog_late", "vog"])  # on request; an indexed one is left as is
    assert out["indexed"] == ["vog_late"] and out["unchanged"] == ["vog"]
    assert "vog_late" in indexes.indexed_fields(dataset)
    fov.delete_vog_run(dataset, "vog")
    assert indexes.index_count(dataset) == before


def test_a_spent_budget_is_said_in_the_config_the_app_and_the_cli(dataset, checkpoint_dir, monkeypatch, capsys):
    _fill(dataset, 2)
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")
    result = foo.execute_operator(
        f"{PLUGIN}/compute_vog",
        ctx={
            "dataset": dataset,
            "params": {"checkpoints": os.path.join(checkpoint_dir, "epoch_*.pt"), "model": "conftest:small_model"},
        },
    )
    cfg = fov.get_vog_run(dataset).config.indexes
    assert cfg["indexed"] == ["vog", "vog_raw"] and indexes.index_count(dataset) == MAX_INDEXES
    assert sorted(cfg["not_indexed"]) == ["vog_energy", "vog_loss", "vog_margin", "vog_maxprob"]
    assert set(cfg["not_indexed"].values()) == {indexes.BUDGET}
    note = [r.params["message"] for r in result.executor._requests if r.operator_uri == "notify"][-1]
    assert "not indexed, MongoDB's limit of 64 indexes per dataset is reached: vog_loss" in note
    assert "'Index VoG fields' ('Drop' ticked)" in note and "--drop" not in note  # the App's words

    # asking for more than fits is refused up front, in one line; dropping ours makes room
    with pytest.raises(fov.VoGError, match=r"have 64 indexes and MongoDB allows 64: 1 more do not fit") as e:
        fov.index_vog_fields(dataset, ["vog_loss"])
    assert "\n" not in str(e.value)
    assert cli.main(["index", dataset.name, "vog_raw", "--drop"]) == 0
    assert "dropped the indexes of: vog_raw" in capsys.readouterr().out
    r = foo.execute_operator(INDEX, ctx={"dataset": dataset, "params": {"fields": ["vog_loss"]}})
    assert r.result["indexed"] == ["vog_loss"] and "Indexed vog_loss; 64 indexes in use" in r.result["summary"]

    # the CLI's compute says it too
    fov.delete_vog_run(dataset, "vog")
    _fill(dataset, 1)
    assert (
        cli.main(
            ["compute", dataset.name, "--checkpoints", checkpoint_dir, "--quiet", "--model", "conftest:small_model"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "note: not indexed, MongoDB's limit of 64 indexes per dataset is reached: vog_raw, vog_loss" in out
    assert "fiftyone-vog index DATASET FIELD... --drop" in out


def test_the_index_form_offers_only_fiftyone_vogs_unindexed_fields(dataset, checkpoint_dir):
    from conftest import resolve_form

    fov.compute_vog(dataset, checkpoint_dir, model=small_model, windows={"late": "-2:"})
    dataset.add_sample_field("mine", fo.FloatField)
    props, _ = resolve_form(INDEX, dataset, {})
    choices = [c.value for c in props["fields"].view.choices]
    assert "vog_late" in choices and "vog" not in choices and "mine" not in choices
    props, _ = resolve_form(INDEX, dataset, {"drop": True})
    assert [c.value for c in props["fields"].view.choices] == sorted(
        ["vog", "vog_raw", "vog_loss", "vog_margin", "vog_maxprob", "vog_energy"]
    )
