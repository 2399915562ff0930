"""Exports and the ownership record: every file an export writes is recorded; Overwrite, the
cleanup of a failed export and the move into place remove or replace only what the record lists
and is unchanged — never another dataset's media, a user's file (added, replaced, hard-linked),
a forged marker's list, the export directory itself or a folder above it. Real files, real
datasets, the operator through FiftyOne's executor and the CLI in a subprocess."""

import json
import os
import shutil
import stat
import subprocess
import sys

import fiftyone as fo
import fiftyone.operators as foo
import pytest
from fiftyone.operators.executor import ExecutionError

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin
from fiftyone_vog.audit import export as export_mod
from fiftyone_vog.core import ownership as own

from conftest import form_props

pytestmark = pytest.mark.usefixtures("no_deletes_outside")
MARKER = ".fiftyone-vog-export.json"
DATASET_NAME = "export-record-test"  # the conftest fixture named_dataset
EXPORT = "@fiftyone-vog/vog/export_vog_subset"
API_WORDS = ("overwrite=", "(CLI:", "--overwrite")


def _tree(d):
    """Every file below ``d`` (relative) with its inode and contents."""
    out = {}
    for cur, _, fs in os.walk(d):
        for f in fs:
            p = os.path.join(cur, f)
            out[os.path.relpath(p, d)] = (os.lstat(p).st_ino, open(p, "rb").read() if not os.path.islink(p) else b"")
    return out


def _ident(p):
    st = os.lstat(p)
    return st.st_ino, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid


# -- the record --------------------------------------------------------------------------------
def test_every_file_and_folder_an_export_writes_is_recorded_with_the_dataset(dataset, tmp_path):
    d = tmp_path / "out"
    fov.export_vog_subset(dataset.limit(6), d)
    on_disk = {os.path.join(cur, n) for cur, ds, fs in os.walk(d) for n in ds + fs}
    recorded = {e.name: e for e in own.written_into(str(d))}
    assert set(recorded) == on_disk | {str(d)}  # the directory it made, too
    assert len({e.owner for e in recorded.values()}) == 1 and next(iter(recorded.values())).owner.startswith("export:")
    assert {e.dataset_id for e in recorded.values()} == {str(dataset._doc.id)}
    listed = {e.name for e in own.listing(dataset, kind=own.FILE)}
    assert on_disk - listed == {p for p in on_disk if os.path.isdir(p)}  # files under the dataset; folders as DIR
    marker = json.loads((d / MARKER).read_text())
    assert "export:" + marker["export_id"] == recorded[str(d)].owner


# -- issue case 1: Overwrite deletes only what the export wrote --------------------------------------
@pytest.mark.parametrize("kind", ["image-classification-dir", "fiftyone"])
def test_overwrite_keeps_the_media_of_a_dataset_imported_from_the_export(dataset, tmp_path, kind):
    d = tmp_path / "out"
    fov.export_vog_subset(dataset.limit(8), d, dataset_type=kind)
    fo_type = fo.types.FiftyOneDataset if kind == "fiftyone" else fo.types.ImageClassificationDirectoryTree
    second = fo.Dataset.from_dir(str(d), dataset_type=fo_type, name=f"reimported-{kind}")
    try:
        before = _tree(d)
        assert all(p.startswith(str(d)) for p in second.values("filepath"))
        for overwrite in (True, False):
            with pytest.raises(fov.VoGError, match=f"holds media of the dataset 'reimported-{kind}'.*choose an empty"):
                fov.export_vog_subset(dataset.limit(3), d, dataset_type=kind, overwrite=overwrite)
        assert _tree(d) == before and all(os.path.exists(p) for p in second.values("filepath"))
        # the exported dataset is the wrong one to ask: the re-imported one is exported into its own folder
        with pytest.raises(fov.VoGError, match="holds media of the dataset"):
            fov.export_vog_subset(second, d, dataset_type=kind, overwrite=True)
        assert _tree(d) == before
    finally:
        second.delete()
    fov.export_vog_subset(dataset.limit(3), d, dataset_type=kind, overwrite=True)  # the dataset gone: replaceable


def test_overwrite_removes_only_recorded_unchanged_files_and_names_the_rest(dataset, tmp_path):
    d = tmp_path / "out"
    fov.export_vog_subset(dataset.limit(8), d)
    ours = sorted(p for p in _tree(d) if p != MARKER)
    (d / "notes.txt").write_text("mine")  # added
    replaced, linked = d / ours[0], d / ours[1]
    os.remove(replaced)
    replaced.write_bytes(b"the user's own picture")  # same name, another inode
    keep = tmp_path / "keep.png"
    os.link(linked, keep)  # the user keeps one of ours under a name of theirs
    theirs = tmp_path / "theirs.png"
    theirs.write_bytes(b"theirs")
    os.link(theirs, d / "hardlinked.png")  # and links a file of theirs in
    kept = {"notes.txt", ours[0], ours[1], "hardlinked.png"}
    out = fov.export_vog_subset(dataset.skip(8).limit(4), d, overwrite=True)  # other samples: other names
    after = _tree(d)
    assert kept <= set(after) and not (set(ours) - kept) & set(after)  # the rest of ours is gone
    assert replaced.read_bytes() == b"the user's own picture" and (d / "hardlinked.png").read_bytes() == b"theirs"
    assert keep.read_bytes() == linked.read_bytes() and os.lstat(keep).st_nlink == 2
    for name in kept:
        assert repr(name) in out.warning, (name, out.warning)
    assert len(out.warning.splitlines()) == 1
    new = {
        os.path.join(lab, os.path.basename(p))
        for p, lab in zip(*dataset.skip(8).limit(4).values(["filepath", "ground_truth.label"]))
    }
    assert new <= set(after)


def test_a_name_the_new_export_needs_that_is_not_ours_refuses_before_anything_is_removed(dataset, tmp_path):
    """The move into place never replaces: a file of the user's where the export writes (here the
    same name as one of ours, another inode) refuses the whole export, with nothing removed."""
    d = tmp_path / "out"
    fov.export_vog_subset(dataset.limit(8), d)
    victim = d / sorted(p for p in _tree(d) if p != MARKER)[3]
    os.remove(victim)
    victim.write_bytes(b"mine")
    before = _tree(d)
    with pytest.raises(fov.VoGError, match=r"holds '.*', which fiftyone-vog did not write .* where this export writes"):
        fov.export_vog_subset(dataset.limit(8), d, overwrite=True)
    assert _tree(d) == before and [p for p in os.listdir(d) if "partial" in p] == []


def test_a_file_that_appears_where_the_export_moves_is_never_replaced(dataset, tmp_path, monkeypatch):
    """Replace, the last step: a file written into the directory during the export, where the new
    export writes, is kept; the export is refused and leaves nothing."""
    dataset.set_values("vog", [float(i) for i in range(len(dataset))])
    real = export_mod._write_csv
    d = tmp_path / "out"

    def write_and_intrude(samples, path, *a):
        real(samples, path, *a)
        (d / "manifest.csv").write_text("someone else's")

    monkeypatch.setattr(export_mod, "_write_csv", write_and_intrude)
    for overwrite, why in ((False, "changed during the export"), (True, "which fiftyone-vog did not write")):
        shutil.rmtree(d, ignore_errors=True)
        with pytest.raises(fov.VoGError, match=why):
            fov.export_vog_subset(dataset.limit(4), d, dataset_type="csv", overwrite=overwrite)
        assert sorted(os.listdir(d)) == ["manifest.csv"] and (d / "manifest.csv").read_text() == "someone else's"


def test_a_forged_marker_deletes_nothing(dataset, tmp_path):
    """A marker listing a user's files (anyone can write one) is not a record: refused, kept."""
    dataset.set_values("vog", [float(i) for i in range(len(dataset))])
    d = tmp_path / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "thesis.tex").write_text("years of work")
    (d / "sub" / "data.csv").write_text("1,2")
    forged = {"kind": "fiftyone-vog export", "version": 1, "files": ["thesis.tex", "sub/data.csv"], "dirs": ["sub"]}
    (d / MARKER).write_text(json.dumps(forged))
    before = _tree(d)
    with pytest.raises(fov.VoGError, match=r"record does not list.*never trusts one: delete that export yourself"):
        fov.export_vog_subset(dataset.limit(2), d, dataset_type="csv", overwrite=True)
    assert _tree(d) == before


def test_an_export_from_before_the_record_is_refused_in_one_line(dataset, tmp_path):
    d = tmp_path / "old"
    fov.export_vog_subset(dataset.limit(4), d)
    own._coll().delete_many({"options.root": str(d)})  # as an earlier version left it: the marker only
    before = _tree(d)
    with pytest.raises(fov.VoGError) as e:
        fov.export_vog_subset(dataset.limit(4), d, overwrite=True)
    assert "only its .fiftyone-vog-export.json" in str(e.value) and len(str(e.value).splitlines()) == 1
    assert _tree(d) == before


def test_export_folders_are_compared_with_links_resolved(dataset, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    fov.export_vog_subset(dataset.limit(4), link / "out")
    assert own.wrote_into(str(real / "out")) and own.wrote_into(str(link / "out"))
    fov.export_vog_subset(dataset.skip(4).limit(2), real / "out", overwrite=True)  # the same export, spelled otherwise
    labels = set(dataset.skip(4).limit(2).values("ground_truth.label"))
    assert set(os.listdir(real / "out")) == labels | {MARKER}


# -- issue case 2: the directory and its parents are kept ----------------------------------------
def test_an_existing_target_keeps_its_inode_mode_owner_and_group(dataset, tmp_path):
    dataset.set_values("vog", [float(i) for i in range(len(dataset))])
    d = tmp_path / "shared"
    d.mkdir()
    os.chown(d, 65534, 65534)
    os.chmod(d, 0o2770)  # setgid, group-private
    before = _ident(d)
    fov.export_vog_subset(dataset.limit(4), d)
    assert _ident(d) == before and len(os.listdir(d)) > 1
    for sub in os.listdir(d):  # folders made inside inherit the group (setgid)
        if os.path.isdir(d / sub):
            assert os.lstat(d / sub).st_gid == 65534 and os.lstat(d / sub).st_mode & stat.S_ISGID
    fov.export_vog_subset(dataset.limit(2), d, dataset_type="csv", overwrite=True)
    assert _ident(d) == before and sorted(os.listdir(d)) == [MARKER, "manifest.csv"]


@pytest.mark.parametrize("mode", [0o2770, 0o700])
def test_private_parents_are_never_removed_or_remade(dataset, tmp_path, mode):
    parent = tmp_path / "private"
    parent.mkdir()
    os.chmod(parent, mode)
    before = _ident(parent)
    fov.export_vog_subset(dataset.limit(4), parent / "a" / "b")  # missing parents are made, existing ones kept
    assert _ident(parent) == before
    fov.export_vog_subset(dataset.limit(2), parent / "a" / "b", overwrite=True)
    assert _ident(parent) == before and os.listdir(parent) == ["a"]


def test_an_empty_working_directory_survives_an_export_below_it(named_dataset, tmp_path):
    """What made it disappear: FiftyOne's ``export(overwrite=True)`` of the temporary folder ran
    ``os.removedirs`` on its parents, removing every empty one above (the working directory
    among them) and making them anew; the process's next call failed in ``os.getcwd()``."""
    install_plugin()
    work = tmp_path / "work"
    work.mkdir()
    os.chmod(work, 0o2770)
    before = _ident(work)
    code = (
        "import os, fiftyone as fo, fiftyone.operators as foo, fiftyone_vog as fov\n"
        f"ds = fo.load_dataset({DATASET_NAME!r})\n"
        "print(fov.export_vog_subset(ds.limit(4), 'out').num_samples)\n"
        "print(os.getcwd())\n"
        f"res = foo.execute_operator({EXPORT!r}, ctx={{'dataset': ds, 'params': "
        f"{{'export_dir': {str(tmp_path / 'next')!r}}}}})\n"
        "print(res.result['num_samples'])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.split() == ["4", str(work), str(len(named_dataset))], r.stderr[-2000:]
    assert _ident(work) == before and sorted(os.listdir(work)) == ["out"]


def test_the_working_directory_of_another_process_survives_an_export_into_it(named_dataset, tmp_path):
    """The App server exports (its working directory is FiftyOne's package folder, so the rule
    about the working directory cannot see it) into the empty folder a notebook or shell works
    in. Before, that folder was removed and replaced by another: the other process's next call
    failed with FileNotFoundError from os.getcwd()."""
    install_plugin()
    named_dataset.set_values("vog", [float(i) for i in range(len(named_dataset))])
    work = tmp_path / "work"
    work.mkdir()
    code = (
        "import os, sys, fiftyone as fo, fiftyone.operators as foo\n"
        f"ds = fo.load_dataset({DATASET_NAME!r})\n"
        "print('ready', flush=True); sys.stdin.readline()\n"
        "print(os.getcwd())\n"
        f"res = foo.execute_operator({EXPORT!r}, ctx={{'dataset': ds, 'params': "
        f"{{'export_dir': {str(tmp_path / 'next')!r}, 'dataset_type': 'csv'}}}})\n"
        "print('exported', res.result['num_samples'])\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=work, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        before = _ident(work)
        foo.execute_operator(
            EXPORT, ctx={"dataset": named_dataset, "params": {"export_dir": str(work), "dataset_type": "csv"}}
        )
        assert _ident(work) == before and os.path.isfile(work / "manifest.csv")
        out, _ = proc.communicate("\n", timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0 and out.split() == [str(work), "exported", str(len(named_dataset))], out


# -- the cleanup of a failed export --------------------------------------------------------------
def _failing_export(plant):
    def export(self, export_dir=None, **kw):
        os.makedirs(os.path.join(export_dir, "circle"))
        with open(os.path.join(export_dir, "circle", "half.png"), "wb") as f:
            f.write(b"half an export")
        plant(export_dir)
        raise RuntimeError("disk full")

    return export


@pytest.mark.parametrize("exists", [True, False])
def test_a_failed_export_removes_only_what_it_wrote(dataset, tmp_path, monkeypatch, exists):
    """Things that appeared in the hidden build folder and in the directory during the export, not
    written by it (moved in, hard-linked), are kept; the directory too, when it was there."""
    d = tmp_path / "out"
    if exists:
        d.mkdir()
        os.chmod(d, 0o2750)
        before = _ident(d)
    moved, linked = tmp_path / "moved.txt", tmp_path / "linked.txt"
    moved.write_text("moved in")
    os.utime(moved, (1_000_000_000, 1_000_000_000))
    linked.write_text("linked in")

    def plant(build):
        os.rename(moved, os.path.join(os.path.dirname(build), "moved.txt"))  # into the hidden folder
        os.link(linked, os.path.join(build, "circle", "linked.txt"))
        with open(d / "beside.txt", "w") as f:  # into the directory itself
            f.write("written meanwhile")

    monkeypatch.setattr(fo.core.collections.SampleCollection, "export", _failing_export(plant))
    with pytest.raises(RuntimeError, match="disk full"):
        fov.export_vog_subset(dataset.limit(4), d)
    left = _tree(d)
    assert {os.path.basename(p) for p in left} == {"moved.txt", "linked.txt", "beside.txt"}, left
    assert not any(p.endswith("half.png") for p in left)
    assert (d / "beside.txt").read_text() == "written meanwhile" and os.lstat(linked).st_nlink == 2
    if exists:
        assert _ident(d) == before


def test_a_failed_write_names_what_it_kept_in_one_line(dataset, tmp_path, monkeypatch):
    d = tmp_path / "out"

    def plant(build):
        os.link(tmp_path / "mine.txt", os.path.join(build, "mine.txt"))
        raise OSError(28, "No space left on device")

    (tmp_path / "mine.txt").write_text("mine")
    monkeypatch.setattr(fo.core.collections.SampleCollection, "export", _failing_export(plant))
    with pytest.raises(fov.VoGError) as e:
        fov.export_vog_subset(dataset.limit(4), d)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and "No space left" in msg and "mine.txt" in msg and "kept in" in msg, msg
    assert (tmp_path / "mine.txt").read_text() == "mine"


# -- the App and the CLI say the new refusals --------------------------------------------------------
def _forged(d):
    d.mkdir()
    (d / "report.docx").write_text("theirs")
    (d / MARKER).write_text(json.dumps({"kind": "fiftyone-vog export", "files": ["report.docx"], "dirs": []}))


def test_the_form_and_the_operator_refuse_in_the_forms_words(named_dataset, tmp_path):
    install_plugin()
    named_dataset.set_values("vog", [float(i) for i in range(len(named_dataset))])
    forged = tmp_path / "forged"
    _forged(forged)
    tree = tmp_path / "tree"
    fov.export_vog_subset(named_dataset.limit(4), tree)
    second = fo.Dataset.from_dir(str(tree), dataset_type=fo.types.ImageClassificationDirectoryTree)
    try:
        for d, phrase in ((forged, "Overwrite never trusts one"), (tree, "holds media of the dataset")):
            props = form_props(EXPORT, named_dataset, {"export_dir": str(d), "overwrite": True})
            msg = props["export_dir"].error_message
            assert props["export_dir"].invalid and phrase in msg and not any(w in msg for w in API_WORDS), msg
            with pytest.raises(ExecutionError, match=phrase):
                foo.execute_operator(
                    EXPORT, ctx={"dataset": named_dataset, "params": {"export_dir": str(d), "overwrite": True}}
                )
        assert (forged / "report.docx").read_text() == "theirs"
    finally:
        second.delete()
    (tree / "notes.txt").write_text("mine")  # kept, and said in the result
    res = foo.execute_operator(
        EXPORT, ctx={"dataset": named_dataset, "params": {"export_dir": str(tree), "overwrite": True}}
    )
    assert "'notes.txt'" in res.result["warning"] and (tree / "notes.txt").read_text() == "mine"


def test_the_cli_refuses_in_one_line(named_dataset, tmp_path):
    named_dataset.set_values("vog", [float(i) for i in range(len(named_dataset))])
    forged = tmp_path / "forged"
    _forged(forged)
    tree = tmp_path / "tree"
    fov.export_vog_subset(named_dataset.limit(4), tree)
    (tree / "notes.txt").write_text("mine")
    second = fo.Dataset.from_dir(str(tree), dataset_type=fo.types.ImageClassificationDirectoryTree)
    second.persistent = True
    cli = [sys.executable, "-m", "fiftyone_vog.cli", "export", DATASET_NAME, "--overwrite", "--quiet", "--export-dir"]
    try:
        for d, phrase in (
            (forged, "Overwrite never trusts one"),
            (tree, f"holds media of the dataset {second.name!r}"),
        ):
            r = subprocess.run([*cli, str(d)], capture_output=True, text=True, timeout=300)
            err = r.stderr.strip()
            assert r.returncode == 2 and len(err.splitlines()) == 1 and phrase in err, (r.stdout, err)
    finally:
        second.delete()
    r = subprocess.run([*cli, str(tree)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "kept" in r.stderr and "'notes.txt'" in r.stderr, (r.stdout, r.stderr)
    assert (forged / "report.docx").read_text() == "theirs" and (tree / "notes.txt").read_text() == "mine"
