"""export_vog_subset: directory tree, re-importable FiftyOne dataset, CSV manifest, guards."""

import csv
import os

import fiftyone as fo
import pytest

import fiftyone_vog as fov

from conftest import small_model

SCORES = [float((7 * i) % 40) / 8 for i in range(40)]


@pytest.fixture
def views_ready(dataset):
    dataset.set_values("vog", SCORES)
    dataset.set_values("vog_raw", [s * 100 for s in SCORES])
    dataset.set_values("vogue", [1.0] * 40)  # not a VoG field: no "vog_" prefix
    fov.shuffle_labels(dataset, fraction=0.25)
    fov.save_vog_views(dataset, percentile=10)
    return dataset


def _files(d):  # the export's files, without its marker
    return sorted(
        os.path.relpath(os.path.join(r, f), d)
        for r, _, fs in os.walk(d)
        for f in fs
        if f != ".fiftyone-vog-export.json"
    )


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_image_classification_tree_by_saved_view_name(views_ready, tmp_path):
    out = fov.export_vog_subset("vog-high", tmp_path / "hard", dataset=views_ready)
    assert out == str(tmp_path / "hard")
    view = views_ready.load_saved_view("vog-high")
    expected = sorted(
        os.path.join(l, os.path.basename(p)) for p, l in zip(*view.values(["filepath", "ground_truth.label"]))
    )
    assert _files(out) == expected and len(expected) == 4
    # the dataset's name works too, and the tree reads back with the labels
    out2 = fov.export_vog_subset("vog-shuffled-labels", str(tmp_path / "sh"), dataset=views_ready.name)
    back = fo.Dataset.from_dir(out2, dataset_type=fo.types.ImageClassificationDirectoryTree)
    shuffled = views_ready.load_saved_view("vog-shuffled-labels")
    assert sorted(back.values("ground_truth.label")) == sorted(shuffled.values("ground_truth.label"))
    assert len(back) == 10
    back.delete()
    # no leftover temporary directories next to the exports
    assert sorted(os.listdir(tmp_path)) == ["hard", "sh"]


def test_fiftyone_dataset_reimports_all_fields(views_ready, tmp_path):
    view = views_ready.load_saved_view("vog-low")
    out = fov.export_vog_subset(view, tmp_path / "low", dataset_type="fiftyone")
    back = fo.Dataset.from_dir(out, dataset_type=fo.types.FiftyOneDataset)
    try:
        assert len(back) == 4
        by_name = dict(zip(back.values("filepath"), back.values("vog")))
        want = dict(zip(view.values("filepath"), view.values("vog")))
        assert {os.path.basename(k): v for k, v in by_name.items()} == {os.path.basename(k): v for k, v in want.items()}
        for f in ("vog_raw", "label_shuffled", "ground_truth_original"):
            assert f in back.get_field_schema(), f
        assert all(os.path.exists(p) and p.startswith(str(tmp_path)) for p in back.values("filepath"))
    finally:
        back.delete()


def test_csv_manifest_rows_columns_and_order(views_ready, tmp_path):
    out = fov.export_vog_subset("vog-shuffled-labels", tmp_path / "m", dataset=views_ready, dataset_type="csv")
    assert out == str(tmp_path / "m" / "manifest.csv")
    rows = _read_csv(out)
    assert rows[0] == ["id", "filepath", "label", "vog", "vog_raw"]  # no run: fields named vog / vog_*
    view = views_ready.load_saved_view("vog-shuffled-labels")
    ids, paths, labels, vog, raw = view.values(["id", "filepath", "ground_truth.label", "vog", "vog_raw"])
    assert [r[0] for r in rows[1:]] == ids  # the view's order: VoG descending
    assert [float(r[3]) for r in rows[1:]] == vog == sorted(vog, reverse=True)
    assert [float(r[4]) for r in rows[1:]] == raw  # floats round-trip exactly
    assert [r[1] for r in rows[1:]] == paths and [r[2] for r in rows[1:]] == labels


def test_csv_uses_the_run_fields(dataset, checkpoint_dir, tmp_path, image_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, windows={"early": "0:2", "late": "-2:"})
    dataset.add_samples([fo.Sample(filepath=image_dir[0][0])])  # unlabeled, unscored
    out = fov.export_vog_subset(dataset, tmp_path / "all", dataset_type="csv")
    rows = _read_csv(out)
    companions = [f"vog{w}_{c}" for w in ("", "_early", "_late") for c in ("loss", "margin", "maxprob", "energy")]
    assert rows[0] == [
        "id",
        "filepath",
        "label",
        "vog",
        "vog_raw",
        "vog_early",
        "vog_early_raw",
        "vog_late",
        "vog_late_raw",
        *companions,
    ]  # every field of the run, the companions included
    assert len(rows) == 42 and rows[-1][2:] == [""] * 19  # missing values are empty cells
    assert [float(r[4]) for r in rows[1:-1]] == dataset.values("vog_raw")[:-1]


def test_non_empty_directory_needs_overwrite(views_ready, tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    fov.export_vog_subset("vog-high", d, dataset=views_ready)  # an empty directory is fine
    before = _files(d)
    for kind in ("image-classification-dir", "fiftyone", "csv"):
        with pytest.raises(fov.VoGError, match="already holds files.*overwrite=True"):
            fov.export_vog_subset("vog-low", d, dataset=views_ready, dataset_type=kind)
    assert _files(d) == before
    out = fov.export_vog_subset("vog-low", d, dataset=views_ready, dataset_type="csv", overwrite=True)
    assert _files(d) == ["manifest.csv"] and len(_read_csv(out)) == 5  # the earlier export was replaced
    f = tmp_path / "a-file"
    f.write_text("x")
    with pytest.raises(fov.VoGError, match="is a file"):
        fov.export_vog_subset("vog-low", f, dataset=views_ready, overwrite=True)


def test_bad_input(views_ready, tmp_path):
    with pytest.raises(fov.VoGError, match="pass dataset="):
        fov.export_vog_subset("vog-high", tmp_path / "a")
    with pytest.raises(fov.VoGError, match="saved view 'vog-nope' not found"):
        fov.export_vog_subset("vog-nope", tmp_path / "a", dataset=views_ready)
    with pytest.raises(fov.VoGError, match="dataset 'no-such' not found"):
        fov.export_vog_subset("vog-high", tmp_path / "a", dataset="no-such")
    with pytest.raises(fov.VoGError, match="dataset_type"):
        fov.export_vog_subset(views_ready, tmp_path / "a", dataset_type="coco")
    with pytest.raises(fov.VoGError, match="label field 'labels' does not exist"):
        fov.export_vog_subset(views_ready, tmp_path / "a", label_field="labels")
    with pytest.raises(fov.VoGError, match="no VoG field 'score'"):
        fov.export_vog_subset(views_ready, tmp_path / "a", dataset_type="csv", vog_field="score")
    assert not os.path.exists(tmp_path / "a")


def test_failure_leaves_nothing(views_ready, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fo.core.collections.SampleCollection, "export", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        fov.export_vog_subset("vog-high", tmp_path / "x", dataset=views_ready)
    assert os.listdir(tmp_path) == []
