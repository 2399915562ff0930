"""The shuffle audit takes as flag and backup fields only the fields it wrote itself (the ownership
record, owner ``shuffle:<label_field>``, roles ``flag`` / ``original``), through the API, the
operator and the CLI: each refused call ends in one line and the dataset as it was."""

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.operators.executor import ExecutionError

import fiftyone_vog as fov
from fiftyone_vog import cli
from fiftyone_vog.app.install import install_plugin
from fiftyone_vog.core import ownership

SHUFFLE = "@fiftyone-vog/vog/shuffle_labels"


@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


@pytest.fixture
def scored(scored_run):
    """A scored dataset with a second Classification field ``predictions`` (labels shifted by one
    class, so a restore from it would change every label)."""
    ds, _ = scored_run
    classes = ds.classes["ground_truth"]
    ds.add_sample_field("predictions", fo.EmbeddedDocumentField, embedded_doc_type=fo.Classification)
    shifted = [classes[(classes.index(c) + 1) % len(classes)] for c in ds.values("ground_truth.label")]
    ds.set_values("predictions", [fo.Classification(label=c) for c in shifted])
    return ds


def _state(ds):
    schema = ds.get_field_schema()
    return (
        {k: type(v).__name__ for k, v in schema.items()},
        {k: ds.values(k) for k in ("vog", "vog_raw", "ground_truth.label", "predictions.label")},
    )


def _cli(capsys, *args):
    code = cli.main(list(args))
    err = capsys.readouterr().err.strip()
    return code, err


def test_restore_never_deletes_a_vog_field_given_as_flag(scored, capsys):
    ds = scored
    before = _state(ds)
    with pytest.raises(fov.VoGError, match=r"^field 'vog' belongs to the VoG run 'vog', not to the shuffle of"):
        fov.restore_labels(ds, flag_field="vog")
    code, err = _cli(capsys, "shuffle-labels", ds.name, "--restore", "--flag-field", "vog")
    assert code == 2 and "\n" not in err and "field 'vog' belongs to the VoG run 'vog'" in err
    with pytest.raises(ExecutionError, match="field 'vog' belongs to the VoG run 'vog'"):
        foo.execute_operator(SHUFFLE, ctx={"dataset": ds, "params": {"action": "restore", "flag_field": "vog"}})
    assert _state(ds) == before


def test_shuffle_never_turns_a_vog_field_into_its_flag(scored, capsys):
    ds = scored
    before = _state(ds)
    with pytest.raises(fov.VoGError, match=r"^field 'vog_raw' belongs to the VoG run 'vog', not to the shuffle"):
        fov.shuffle_labels(ds, flag_field="vog_raw", overwrite=True)
    code, err = _cli(capsys, "shuffle-labels", ds.name, "--flag-field", "vog_raw", "--overwrite")
    assert code == 2 and "\n" not in err and "belongs to the VoG run 'vog'" in err
    assert _state(ds) == before
    assert isinstance(ds.get_field("vog_raw"), fo.FloatField)


def test_restore_never_copies_another_label_field_into_the_labels(scored):
    ds = scored
    fov.shuffle_labels(ds, fraction=0.25, seed=1)
    before = _state(ds)
    with pytest.raises(fov.VoGError, match=r"^field 'predictions' exists and was not written by fiftyone-vog's"):
        fov.restore_labels(ds, original_field="predictions")
    assert _state(ds) == before
    fov.restore_labels(ds)  # the audit's own fields: restored as shuffled
    assert "ground_truth_original" not in ds.get_field_schema()


def test_the_audits_own_backup_field_is_never_shuffled(scored):
    ds = scored
    truth = ds.values("ground_truth.label")
    fov.shuffle_labels(ds, fraction=0.25, seed=1)
    before = _state(ds)
    with pytest.raises(
        fov.VoGError, match=r"^field 'ground_truth_original' is the original-label field of the shuffle of"
    ):
        fov.shuffle_labels(ds, label_field="ground_truth_original", fraction=0.5, seed=2)
    with pytest.raises(ExecutionError, match="is the original-label field of the shuffle of 'ground_truth'"):
        foo.execute_operator(
            SHUFFLE, ctx={"dataset": ds, "params": {"label_field": "ground_truth_original", "fraction": 0.5}}
        )
    assert _state(ds) == before
    fov.restore_labels(ds)
    assert ds.values("ground_truth.label") == truth  # the restore still writes the true labels


def test_a_flag_field_the_user_made_is_refused_even_with_overwrite(dataset):
    dataset.add_sample_field("label_shuffled", fo.BooleanField)
    dataset.set_values("label_shuffled", [True] * len(dataset))
    with pytest.raises(fov.VoGError, match="'label_shuffled' exists and was not written by fiftyone-vog's shuffle"):
        fov.shuffle_labels(dataset, overwrite=True)
    assert dataset.values("label_shuffled") == [True] * len(dataset)
    assert "ground_truth_original" not in dataset.get_field_schema()


def test_the_record_lists_the_audit_fields_with_their_roles(scored):
    ds = scored
    fov.shuffle_labels(ds, fraction=0.25, seed=1)
    entries = {e.name: (e.owner, e.role) for e in ownership.listing(ds, owner="shuffle:ground_truth")}
    assert entries == {
        "label_shuffled": ("shuffle:ground_truth", "flag"),
        "ground_truth_original": ("shuffle:ground_truth", "original"),
    }
    fov.restore_labels(ds)
    assert ownership.listing(ds, owner="shuffle:ground_truth") == []
