"""Export never deletes what it did not write: media, foreign files, roots, home, the working
directory, links out; Overwrite replaces only what the ownership record lists as an earlier
export's (the marker is information); a failed write is one line and leaves nothing behind. Real files, real datasets, a real CLI process."""

import json
import os
import resource
import shutil
import subprocess
import sys

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.operators.executor import ExecutionError

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin

from conftest import build_dataset, form_props

MARKER = ".fiftyone-vog-export.json"  # the documented name of the export marker
DATASET_NAME = "export-safety-test"  # the conftest fixture named_dataset
EXPORT = "@fiftyone-vog/vog/export_vog_subset"


pytestmark = pytest.mark.usefixtures("no_deletes_outside")


def _all_files(d):
    return sorted(os.path.relpath(os.path.join(r, f), d) for r, _, fs in os.walk(d) for f in fs)


def _csv_rows(path):
    with open(path) as f:
        return f.read().splitlines()


@pytest.fixture
def own_media(image_dir, tmp_path):
    """A dataset whose media are copies in tmp_path/media (so that a bug cannot remove the
    session's images)."""
    media = tmp_path / "media"
    media.mkdir()
    paths = []
    for p in image_dir[0]:
        paths.append(str(media / os.path.basename(p)))
        shutil.copy(p, paths[-1])
    ds = build_dataset(paths, image_dir[1])
    ds.set_values("vog", [float(i) for i in range(len(ds))])
    yield ds, media
    ds.delete()


@pytest.mark.parametrize("kind", ["image-classification-dir", "csv"])
def test_the_datasets_media_and_folders_above_them_are_never_replaced(own_media, tmp_path, kind):
    ds, media = own_media
    before = _all_files(media)
    for target in (media, tmp_path):  # the media folder, and a folder holding it
        with pytest.raises(fov.VoGError, match="holds media of the dataset.*choose an empty or new directory"):
            fov.export_vog_subset(ds.limit(3), target, dataset_type=kind, overwrite=True)
    assert _all_files(media) == before and len(before) == 40
    # a marker planted in the media folder changes nothing
    (media / MARKER).write_text(json.dumps({"kind": "fiftyone-vog export", "files": before, "dirs": []}))
    with pytest.raises(fov.VoGError, match="holds media"):
        fov.export_vog_subset(ds.limit(3), media, dataset_type=kind, overwrite=True)
    assert set(_all_files(media)) == set(before) | {MARKER}
    # a new folder beside the media is fine
    out = fov.export_vog_subset(ds.limit(3), tmp_path / "export", dataset_type=kind)
    assert os.path.isdir(tmp_path / "export") and out.num_samples == 3


def test_roots_home_and_the_working_directory_are_never_replaced(dataset, tmp_path, monkeypatch):
    home = tmp_path / "home"
    work = home / "project" / "sub"
    work.mkdir(parents=True)
    (home / "notes.txt").write_text("mine")
    (work / "train.py").write_text("print()")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    dataset.set_values("vog", [1.0] * len(dataset))  # a valid export in every other respect
    before = _all_files(tmp_path)
    cases = {
        "/": "is a filesystem root",
        "~": "is the home directory",
        ".": "is the working directory",
        "..": "holds the working directory",
        str(home / "project"): "holds the working directory",
        str(tmp_path): "holds the home directory",
    }
    for target, why in cases.items():
        with pytest.raises(fov.VoGError, match=f"{why}.*choose an empty or new directory"):
            fov.export_vog_subset(dataset.limit(2), target, dataset_type="csv", overwrite=True)
    assert _all_files(tmp_path) == before


def test_a_directory_of_someone_elses_files_is_refused_and_kept(dataset, tmp_path):
    d = tmp_path / "theirs"
    (d / "sub").mkdir(parents=True)
    (d / "report.docx").write_text("a")
    (d / "sub" / "data.bin").write_text("b")
    for overwrite in (False, True):
        with pytest.raises(fov.VoGError, match="no fiftyone-vog export wrote.*choose an empty or new directory"):
            fov.export_vog_subset(dataset.limit(2), d, dataset_type="csv", overwrite=overwrite)
    assert _all_files(d) == ["report.docx", os.path.join("sub", "data.bin")]
    assert sorted(os.listdir(tmp_path)) == ["theirs"]  # no partial export left beside it


def test_a_symlink_pointing_out_is_refused(dataset, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    link = tmp_path / "out"
    link.symlink_to(elsewhere)
    for overwrite in (False, True):
        with pytest.raises(fov.VoGError, match="is a symbolic link.*do not follow links"):
            fov.export_vog_subset(dataset.limit(2), link, dataset_type="csv", overwrite=overwrite)
    assert _all_files(elsewhere) == ["keep.txt"] and link.is_symlink()
    # an earlier export whose class folder was replaced by a link out: Overwrite refuses (the new
    # export writes there), the link's target keeps its files
    d = tmp_path / "tree"
    fov.export_vog_subset(dataset.limit(4), d)
    label = sorted(p for p in os.listdir(d) if p != MARKER)[0]
    shutil.rmtree(d / label)
    (d / label).symlink_to(elsewhere)
    with pytest.raises(fov.VoGError, match=f"holds '{label}', which fiftyone-vog did not write.*where this export"):
        fov.export_vog_subset(dataset.limit(4), d, overwrite=True)
    assert _all_files(elsewhere) == ["keep.txt"] and (d / label).is_symlink()


def test_a_link_then_dotdot_is_checked_where_the_os_resolves_it(own_media, tmp_path, monkeypatch):
    """``a/link/..`` is the folder above the link's target (the OS resolves the link first), not
    ``a`` as a lexical normpath says: the checks, the App roots and the export itself use that."""
    ds, media = own_media
    (media / "sub").mkdir()
    a = tmp_path / "a"
    a.mkdir()
    (a / "to-media").symlink_to(media / "sub")
    before = _all_files(media)
    for overwrite in (False, True):  # it is the media folder: refused whatever Overwrite says
        with pytest.raises(fov.VoGError, match=f"export_dir {media} holds media of the dataset"):
            fov.export_vog_subset(ds.limit(3), f"{a}/to-media/..", dataset_type="csv", overwrite=overwrite)
    assert _all_files(media) == before and sorted(os.listdir(a)) == ["to-media"]
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (a / "to-b").symlink_to(tmp_path / "b" / "deep")
    out = fov.export_vog_subset(ds.limit(3), f"{a}/to-b/../out", dataset_type="csv")
    assert out == str(tmp_path / "b" / "out" / "manifest.csv") and not os.path.lexists(a / "out")
    # the App: inside its root as written, outside once the link is resolved
    install_plugin()
    root, outside = tmp_path / "root", tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    root.mkdir()
    (root / "out-link").symlink_to(outside / "deep")
    monkeypatch.setenv("FIFTYONE_VOG_APP_ROOTS", str(root))
    props = _form(ds, {"export_dir": f"{root}/out-link/../x", "dataset_type": "csv"})
    assert props["export_dir"].invalid and "outside the folders the App may use" in props["export_dir"].error_message
    with pytest.raises(ExecutionError, match="outside the folders the App may use"):
        foo.execute_operator(EXPORT, ctx={"dataset": ds, "params": {"export_dir": f"{root}/out-link/../x"}})
    assert os.listdir(outside) == ["deep"] and sorted(os.listdir(root)) == ["out-link"]


def test_a_nul_byte_in_export_dir_is_one_line_everywhere(named_dataset, tmp_path, capsys):
    """Python's file functions raise a bare ValueError for a NUL byte: the API, the form, the
    operator and the CLI say it in one line instead (argv cannot hold a NUL: the CLI is called
    in-process)."""
    from fiftyone_vog.cli import main

    install_plugin()
    named_dataset.set_values("vog", [float(i) for i in range(len(named_dataset))])
    bad = f"{tmp_path}/o\0ut"
    with pytest.raises(fov.VoGError) as e:
        fov.export_vog_subset(named_dataset.limit(2), bad, dataset_type="csv")
    assert "export_dir" in str(e.value) and "NUL byte" in str(e.value) and len(str(e.value).splitlines()) == 1
    props = _form(named_dataset, {"export_dir": bad})
    msg = props["export_dir"].error_message
    assert props["export_dir"].invalid and "NUL byte" in msg and "export_dir" not in msg.replace(str(tmp_path), ""), msg
    with pytest.raises(ExecutionError, match="NUL byte"):
        foo.execute_operator(EXPORT, ctx={"dataset": named_dataset, "params": {"export_dir": bad}})
    capsys.readouterr()
    assert main(["export", DATASET_NAME, "--export-dir", bad, "--dataset-type", "csv", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "NUL byte" in err, err
    assert os.listdir(tmp_path) == []


def test_overwrite_replaces_only_what_the_record_lists(dataset, tmp_path):
    dataset.set_values("vog", [float(i) for i in range(len(dataset))])
    d = tmp_path / "hard"
    first = fov.export_vog_subset(dataset.limit(8), d)
    marker = json.loads((d / MARKER).read_text())
    assert marker["kind"] == "fiftyone-vog export" and marker["num_samples"] == 8 and marker["export_id"]
    assert sorted(marker["files"]) == sorted(f for f in _all_files(d) if f != MARKER)
    assert first.num_samples == 8 and first.warning is None
    # without Overwrite: refused, named
    with pytest.raises(fov.VoGError, match="already holds files.*overwrite=True"):
        fov.export_vog_subset(dataset.limit(3), d)
    # with Overwrite: the earlier export is replaced, folders of labels no longer exported are gone
    out = fov.export_vog_subset(dataset.limit(3), d, overwrite=True)
    labels = set(dataset.limit(3).values("ground_truth.label"))
    assert set(os.listdir(d)) == labels | {MARKER} and out.num_samples == 3 and out.warning is None
    # a file the user added since is kept, and named
    (d / "my-notes.txt").write_text("mine")
    out = fov.export_vog_subset(dataset.limit(5), d, overwrite=True)
    assert (d / "my-notes.txt").read_text() == "mine" and "'my-notes.txt'" in out.warning
    # a marker edited to list files outside the directory removes nothing outside
    (tmp_path / "victim.txt").write_text("v")
    m = json.loads((d / MARKER).read_text())
    m["files"] += ["../victim.txt", str(tmp_path / "victim.txt")]
    (d / MARKER).write_text(json.dumps(m))  # the marker is the user's now: kept, and in the way
    with pytest.raises(fov.VoGError, match=f"holds '{MARKER}', which fiftyone-vog did not write"):
        fov.export_vog_subset(dataset.limit(5), d, dataset_type="csv", overwrite=True)
    os.remove(d / MARKER)
    fov.export_vog_subset(dataset.limit(5), d, dataset_type="csv", overwrite=True)
    assert (tmp_path / "victim.txt").read_text() == "v"
    assert sorted(os.listdir(d)) == [MARKER, "manifest.csv", "my-notes.txt"] and len(_csv_rows(d / "manifest.csv")) == 6
    assert sorted(os.listdir(tmp_path)) == ["hard", "victim.txt"]  # no partial or old copy left


def test_sample_count_is_reported_by_the_api_the_operator_and_the_cli(named_dataset, tmp_path):
    install_plugin()
    named_dataset.set_values("vog", [float(i) for i in range(len(named_dataset))])
    out = fov.export_vog_subset(named_dataset.limit(6), tmp_path / "api", dataset_type="csv")
    assert out.num_samples == 6 and out == str(tmp_path / "api" / "manifest.csv")
    res = foo.execute_operator(
        EXPORT,
        ctx={"view": named_dataset.limit(7), "params": {"export_dir": str(tmp_path / "op"), "dataset_type": "csv"}},
    )
    assert res.result["num_samples"] == 7
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fiftyone_vog.cli",
            "export",
            DATASET_NAME,
            "--export-dir",
            str(tmp_path / "cli"),
            "--dataset-type",
            "csv",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and f"exported {len(named_dataset)} samples" in r.stdout, r.stderr


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (300, 300))  # the export's files cannot grow past 300 bytes


def test_a_write_that_fails_is_one_line_exit_2_and_leaves_nothing(named_dataset, tmp_path):
    """A real failed write (the kernel refuses a file past RLIMIT_FSIZE: EFBIG, as a full disk gives
    ENOSPC), and an export into a symlink, from the CLI."""
    named_dataset.set_values("vog", [float(i) for i in range(len(named_dataset))])
    parent = tmp_path / "exports"
    parent.mkdir()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fiftyone_vog.cli",
            "export",
            DATASET_NAME,
            "--export-dir",
            str(parent / "m"),
            "--dataset-type",
            "csv",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        preexec_fn=_limit_file_size,
    )
    assert r.returncode == 2, (r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "cannot write the export to" in err and "File too large" in err and "Nothing was changed" in err
    assert os.listdir(parent) == []  # no partial export
    link = tmp_path / "link"
    link.symlink_to(parent)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fiftyone_vog.cli",
            "export",
            DATASET_NAME,
            "--export-dir",
            str(link),
            "--overwrite",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "is a symbolic link" in r.stderr and os.listdir(parent) == []


def _form(ds, params):
    return form_props(EXPORT, ds, params)


def test_the_form_says_what_overwrite_replaces_and_offers_vog_fields_only_for_csv(dataset, tmp_path):
    install_plugin()
    dataset.set_values("vog", [1.0] * len(dataset))
    props = _form(dataset, {"export_dir": str(tmp_path / "new")})
    help_text = props["overwrite"].view.description
    assert "only the files it wrote" in help_text and "record" in help_text and "never overwritten" in help_text
    assert f"{MARKER} is information only" in help_text
    assert "vog_field" not in props  # ignored by the tree: not offered
    props = _form(dataset, {"export_dir": str(tmp_path / "new"), "dataset_type": "csv"})
    assert isinstance(props["vog_field"].view, fo.operators.types.DropdownView)
    assert [c.value for c in props["vog_field"].view.choices] == ["vog"]
    # a folder of someone else's files: the inline error names the fix, Overwrite or not
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "x.txt").write_text("x")
    props = _form(dataset, {"export_dir": str(tmp_path / "theirs"), "overwrite": True})
    assert props["export_dir"].invalid and "choose an empty or new directory" in props["export_dir"].error_message


def test_cli_help_says_what_overwrite_replaces(capsys):
    from fiftyone_vog.cli import main

    with pytest.raises(SystemExit):
        main(["export", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--overwrite replaces only the files that export wrote and that are unchanged" in out
    assert "ownership record" in out and f"{MARKER} is information only" in out.replace("- ", "-")
