"""The plugin loads from a fresh plugins directory with no errors (FiftyOne only logs them)."""

import os

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.plugins.context as fopc
import pytest
import yaml

import fiftyone_vog
from fiftyone_vog import cli
from fiftyone_vog.app.install import PACKAGE_DIR, install_plugin, plugin_errors, uninstall_plugin
from fiftyone_vog.engine import VoGError

MANIFEST = yaml.safe_load(open(os.path.join(os.path.dirname(fiftyone_vog.__file__), "fiftyone.yml")))
PLUGIN = "@fiftyone-vog/vog"


@pytest.fixture(scope="module")
def installed():
    path = install_plugin()  # into conftest's temporary FIFTYONE_PLUGINS_DIR
    return path


def _context():
    ctxs = [c for c in fopc.build_plugin_contexts(enabled="all") if c.name == PLUGIN]
    assert len(ctxs) == 1, f"plugin {PLUGIN} found {len(ctxs)} times"
    return ctxs[0]


def test_fresh_plugins_dir_is_the_test_one(installed):
    assert os.path.dirname(installed) == os.path.realpath(fo.config.plugins_dir)
    assert os.path.islink(installed) and os.path.realpath(installed) == str(PACKAGE_DIR)


def test_every_operator_and_the_panel_register_without_errors(installed):
    pctx = _context()
    assert pctx.errors == [], "\n".join(pctx.errors)
    assert plugin_errors() == []
    registered = sorted(op.name for op in pctx.instances)
    # the manifest filters silently: a class it does not list, or a listed name without a class, is dropped
    assert registered == sorted(MANIFEST["operators"] + MANIFEST["panels"])
    assert registered == sorted(
        ["compute_vog", "save_vog_views", "shuffle_labels", "export_vog_subset", "index_vog_fields", "vog_panel"]
    )


@pytest.mark.parametrize(
    "name", ["compute_vog", "save_vog_views", "shuffle_labels", "export_vog_subset", "index_vog_fields"]
)
def test_operator_uris_resolve(installed, name):
    op = foo.get_operator(f"{PLUGIN}/{name}")
    assert op.uri == f"{PLUGIN}/{name}"
    assert not isinstance(op, foo.Panel)
    assert op.config.to_json()["name"] == name


def test_panel_resolves(installed):
    panel = foo.get_operator(f"{PLUGIN}/vog_panel")
    assert isinstance(panel, foo.Panel)
    config = panel.resolve_panel_config()
    assert config["name"] == "vog_panel" and config["label"] == "VoG"
    # the App calls these by URI; they must exist
    assert config["on_load"].endswith("vog_panel#on_load")
    assert config["on_change_view"].endswith("vog_panel#on_change_view")
    assert panel.uri in [p.uri for p in foo.list_operators(type="panel")]


def test_compute_vog_offers_delegation(installed):
    op = foo.get_operator(f"{PLUGIN}/compute_vog")
    assert op.config.allow_delegated_execution and op.config.allow_immediate_execution
    assert op.config.execute_as_generator  # streams progress to the App


def test_install_is_idempotent_and_refuses_to_clobber(installed, tmp_path):
    assert install_plugin() == installed  # same link: nothing to do
    other = tmp_path / "plugins"
    (other / "fiftyone-vog").mkdir(parents=True)
    (other / "fiftyone-vog" / "something").write_text("x")
    with pytest.raises(VoGError, match="already exists.*overwrite"):
        install_plugin(other)
    path = install_plugin(other, mode="copy", overwrite=True)
    assert not os.path.islink(path)
    assert sorted(os.listdir(path)) == sorted(p for p in os.listdir(PACKAGE_DIR) if p != "__pycache__")
    assert uninstall_plugin(other) and not os.path.exists(path)
    with pytest.raises(VoGError, match="mode="):
        install_plugin(other, mode="hardlink")


def test_copied_plugin_loads_standalone(tmp_path, monkeypatch):
    """A copy (as `fiftyone plugins download` would make) registers everything too."""
    plugins = tmp_path / "copied"
    install_plugin(plugins, mode="copy")
    monkeypatch.setattr(fo.config, "plugins_dir", str(plugins))
    pctx = _context()
    assert pctx.errors == [], "\n".join(pctx.errors)
    assert len(pctx.instances) == len(MANIFEST["operators"]) + len(MANIFEST["panels"]) == 6
    assert pctx.plugin_definition.directory == str(plugins / "fiftyone-vog")


def test_cli_install_plugin(tmp_path, capsys):
    target = tmp_path / "cli-plugins"
    assert cli.main(["install-plugin", "--plugins-dir", str(target)]) == 0
    out = capsys.readouterr().out
    assert f"installed @fiftyone-vog/vog at {target / 'fiftyone-vog'}" in out
    assert "FIFTYONE_PLUGINS_DIR" in out  # not the configured dir: says how to point FiftyOne at it
    assert os.path.islink(target / "fiftyone-vog")
    assert cli.main(["install-plugin", "--plugins-dir", str(target), "--copy"]) == 2
    assert "--overwrite" in capsys.readouterr().err
