"""What an App user can reach on the server: checkpoint and export paths from the operators stay
inside the server owner's roots (FIFTYONE_VOG_APP_ROOTS, or the defaults); outside them one
message that says nothing about the file; no error quotes a file's bytes. Through FiftyOne's
executor, on real files."""

import os
import shutil

import fiftyone.operators as foo
import pytest
from fiftyone.operators.executor import ExecutionError

import fiftyone_vog as fov
from fiftyone_vog.app.install import install_plugin

from conftest import build_dataset, form_props

PLUGIN = "@fiftyone-vog/vog"
COMPUTE = f"{PLUGIN}/compute_vog"
EXPORT = f"{PLUGIN}/export_vog_subset"
SECRET = b"Zq-secret-host-name\n"


@pytest.fixture(scope="module", autouse=True)
def plugin():
    install_plugin()


@pytest.fixture
def server(image_dir, checkpoint_dir, tmp_path, monkeypatch):
    """The defaults: a server started in tmp_path/srv, a dataset whose media are in
    tmp_path/proj/images and checkpoints in tmp_path/proj/ckpts; tmp_path/outside holds real
    checkpoints and a 'secret' file that the App must not reach."""
    monkeypatch.delenv("FIFTYONE_VOG_APP_ROOTS", raising=False)
    srv, proj, outside = tmp_path / "srv", tmp_path / "proj", tmp_path / "outside"
    for d in (srv, proj / "images", outside):
        d.mkdir(parents=True)
    shutil.copytree(checkpoint_dir, proj / "ckpts")
    shutil.copytree(checkpoint_dir, outside / "ckpts")
    (outside / "hostname").write_bytes(SECRET)
    paths = [str(proj / "images" / os.path.basename(p)) for p in image_dir[0]]
    for src, dst in zip(image_dir[0], paths):
        shutil.copy(src, dst)
    monkeypatch.chdir(srv)
    ds = build_dataset(paths, image_dir[1])
    yield ds, srv, proj, outside
    ds.delete()


def _checkpoint_error(ds, spec):
    props = form_props(COMPUTE, ds, {"checkpoints": spec, "model": "resnet18"})
    assert "checkpoints_found" not in props  # nothing listed ("67 checkpoints")
    assert props["checkpoints"].invalid, spec
    return props["checkpoints"].error_message


def _same_text(messages_by_path):
    """The messages with the path the user typed taken out: one text for all."""
    texts = {m.replace(repr(str(p)), "<path>") for p, m in messages_by_path.items()}
    assert len(texts) == 1, texts
    return texts.pop()


def test_checkpoints_outside_the_roots_get_one_message_whether_they_exist_or_not(server):
    ds, srv, proj, outside = server
    # inside the default roots (the folder above the media): found as before
    props = form_props(COMPUTE, ds, {"checkpoints": str(proj / "ckpts" / "epoch_*.pt")})
    assert not props["checkpoints"].invalid and props["checkpoints_found"].view.label.startswith("5 checkpoints")
    cases = [
        outside / "ckpts" / "epoch_*.pt",
        outside / "nothing_*.pt",  # a glob matching 5 files / none
        outside / "ckpts",
        outside / "no-such-dir",  # a directory of checkpoints / missing
        outside / "hostname",
        outside / "missing-file",  # a file / none
        "/etc/*",
        "/etc/hostname",
        "/etc/no-such-file",
        proj / ".." / "outside" / "hostname",
    ]
    text = _same_text({p: _checkpoint_error(ds, str(p)) for p in cases})
    assert "outside the folders the App may use" in text and "FIFTYONE_VOG_APP_ROOTS" in text
    assert str(srv) in text and str(proj) in text  # it names the roots, nothing about the file
    # comma-separated files: the same
    msg = _checkpoint_error(ds, f"{proj / 'ckpts' / 'epoch_1.pt'},{outside / 'hostname'}")
    assert "outside the folders" in msg and "operand" not in msg


def test_a_link_inside_a_root_that_points_out_is_outside(server):
    ds, srv, proj, outside = server
    (proj / "runs").symlink_to(outside / "ckpts")
    for spec in (proj / "runs" / "epoch_*.pt", proj / "runs", proj / "runs" / "epoch_1.pt"):
        assert "outside the folders the App may use" in _checkpoint_error(ds, str(spec))


def test_dotdot_after_a_link_globs_through_links_and_link_chains_stay_inside(server):
    """``..`` after a link leads to the link target's parent, as the OS reads it (``normpath``
    drops both and reads ``proj/ckpts``); a glob is checked part by part, so a link it would
    pass through gets the one message whether or not anything outside matches."""
    ds, srv, proj, outside = server
    (outside / "x").mkdir()
    (proj / "link").symlink_to(outside / "x")  # proj/link/.. is outside, proj/link/../ckpts its ckpts
    (proj / "zlink").symlink_to(outside / "ckpts")
    (proj / "chain-a").symlink_to(proj / "chain-b")
    (proj / "chain-b").symlink_to(outside / "ckpts")  # a link to a link that points out
    up = proj / "link" / ".." / "ckpts"
    cases = [
        up / "epoch_*.pt",  # a glob after `link/..`
        up,  # a directory
        up / "epoch_1.pt",  # a file (proj/ckpts/epoch_1.pt exists too)
        proj / "link" / "..",
        proj / "*" / "epoch_*.pt",  # matches proj/ckpts/* and, through zlink, outside/ckpts/*
        proj / "*" / "nothing_*.pt",  # matches nothing, in proj or through zlink
        proj / "l*" / ".." / "ckpts" / "*.pt",  # `..` after a wildcard that matches a link
        proj / "chain-a" / "epoch_*.pt",
        proj / "chain-a",
    ]
    assert "outside the folders the App may use" in _same_text({p: _checkpoint_error(ds, str(p)) for p in cases})
    msg = _checkpoint_error(ds, f"{up / 'epoch_1.pt'},{up / 'epoch_2.pt'}")  # a list names the file
    assert f"checkpoints {str(up / 'epoch_1.pt')!r} is outside the folders the App may use" in msg
    # links that stay inside are followed as before, also a chain of them
    (proj / "chain-c").symlink_to(proj / "chain-d")
    (proj / "chain-d").symlink_to(proj / "ckpts")
    for spec in (proj / "chain-c" / "epoch_*.pt", proj / "chain-c", proj / "chain-d" / ".." / "ckpts"):
        props = form_props(COMPUTE, ds, {"checkpoints": str(spec)})
        assert not props["checkpoints"].invalid, (spec, props["checkpoints"].error_message)
        assert props["checkpoints_found"].view.label.startswith("5 checkpoints")


def test_an_export_folder_after_a_link_and_dotdot_is_outside(server):
    ds, srv, proj, outside = server
    ds.set_values("vog", [float(i) for i in range(len(ds))])
    (outside / "x").mkdir()
    (proj / "link").symlink_to(outside / "x")
    target = proj / "link" / ".." / "new"  # the OS reads outside/new
    props = form_props(EXPORT, ds, {"export_dir": str(target)})
    assert props["export_dir"].invalid and "outside the folders the App may use" in props["export_dir"].error_message
    with pytest.raises(ExecutionError, match="outside the folders the App may use"):
        foo.execute_operator(EXPORT, ctx={"dataset": ds, "params": {"export_dir": str(target), "dataset_type": "csv"}})
    assert not os.path.exists(outside / "new") and not os.path.exists(proj / "new")


def test_execute_refuses_too_and_never_quotes_file_bytes(server):
    ds, srv, proj, outside = server
    spec = f"{outside / 'hostname'},{outside / 'hostname'}"
    with pytest.raises(ExecutionError) as exc:
        foo.execute_operator(COMPUTE, ctx={"dataset": ds, "params": {"checkpoints": spec, "model": "resnet18"}})
    msg = str(exc.value)
    assert "outside the folders the App may use" in msg
    assert "operand" not in msg and str(SECRET[0]) not in msg and "'Z'" not in msg
    # inside the roots a file that is not a checkpoint is named as such, without its bytes
    (proj / "notes.pt").write_bytes(SECRET)
    (proj / "notes2.pt").write_bytes(SECRET)
    with pytest.raises(ExecutionError) as exc:
        foo.execute_operator(
            COMPUTE,
            ctx={
                "dataset": ds,
                "params": {"checkpoints": f"{proj / 'notes.pt'},{proj / 'notes2.pt'}", "model": "resnet18"},
            },
        )
    msg = str(exc.value)
    assert "is not a PyTorch checkpoint" in msg
    assert "operand" not in msg and str(SECRET[0]) not in msg and "'Z'" not in msg and "secret" not in msg


def test_checkpoint_load_errors_never_quote_the_file(tmp_path):
    """At the source, for every caller (API and CLI too): pickle and torch quote the first byte."""
    from fiftyone_vog.inputs.checkpoints import load_checkpoint

    p = tmp_path / "hostname.pt"
    p.write_bytes(SECRET)
    for allow_pickle in (False, True):
        with pytest.raises(fov.VoGError) as exc:
            load_checkpoint(p, allow_pickle=allow_pickle)
        msg = str(exc.value)
        assert "is not a PyTorch checkpoint" in msg and "safetensors" in msg
        assert "operand" not in msg and "load key" not in msg and str(SECRET[0]) not in msg and "'Z'" not in msg


def test_exports_from_the_app_stay_inside_the_roots(server, tmp_path):
    ds, srv, proj, outside = server
    ds.set_values("vog", [float(i) for i in range(len(ds))])
    # inside: fine, from the form and the executor
    props = form_props(EXPORT, ds, {"export_dir": str(proj / "export")})
    assert not props["export_dir"].invalid
    res = foo.execute_operator(
        EXPORT, ctx={"dataset": ds, "params": {"export_dir": str(proj / "export"), "dataset_type": "csv"}}
    )
    assert res.result["num_samples"] == 40
    # outside: one message, existing or not, in the form and at execute
    (outside / "existing").mkdir()
    cases = [outside / "existing", outside / "new", "/etc", "/", "~/x"]
    msgs = {}
    for p in cases:
        props = form_props(EXPORT, ds, {"export_dir": str(p), "overwrite": True})
        assert props["export_dir"].invalid, p
        msgs[p] = props["export_dir"].error_message
    assert "outside the folders the App may use" in _same_text(msgs)
    with pytest.raises(ExecutionError, match="outside the folders the App may use"):
        foo.execute_operator(EXPORT, ctx={"dataset": ds, "params": {"export_dir": str(outside / "new")}})
    assert os.listdir(outside / "existing") == [] and not os.path.exists(outside / "new")
    # the Python API is not confined
    assert fov.export_vog_subset(ds, outside / "api", dataset_type="csv").num_samples == 40


def test_the_server_owner_sets_the_roots(server, monkeypatch):
    ds, srv, proj, outside = server
    monkeypatch.setenv("FIFTYONE_VOG_APP_ROOTS", os.pathsep.join([str(outside), "/nonexistent-root"]))
    props = form_props(COMPUTE, ds, {"checkpoints": str(outside / "ckpts" / "epoch_*.pt")})
    assert not props["checkpoints"].invalid and props["checkpoints_found"].view.label.startswith("5 checkpoints")
    msg = _checkpoint_error(ds, str(proj / "ckpts" / "epoch_*.pt"))  # the defaults no longer apply
    assert "outside the folders" in msg and str(outside) in msg and str(proj) not in msg.split("(")[1]


def test_an_app_server_in_fiftyones_package_folder_uses_the_launch_directory(server, monkeypatch):
    """``fo.launch_app`` runs the server in FiftyOne's own folder: the root is where it was launched."""
    import fiftyone.constants as foc

    from fiftyone_vog.app.roots import app_roots

    ds, srv, proj, outside = server
    monkeypatch.setenv("PWD", str(srv))
    monkeypatch.chdir(foc.SERVER_DIR)
    roots = app_roots(None)
    assert roots == [os.path.realpath(srv)] and not any(r.startswith(os.path.dirname(foc.SERVER_DIR)) for r in roots)
