"""A run made in the App (the plugin loaded from the plugins directory, as the App server and a
delegated worker load it) records the package's own import path, so that every later Python or
CLI process loads it as a VoG run without "Unable to load ... falling back to base class"; runs
stored under the plugin's import path by earlier versions are rewritten once when read.

Each door runs in a fresh subprocess: one that imported ``fiftyone_vog`` itself would hide the
bug (both import paths would then load in it)."""

import json
import os
import subprocess
import sys

import pytest

from fiftyone_vog.app.install import install_plugin

from conftest import TESTS_DIR, build_dataset, small_model

PLUGIN = "@fiftyone-vog/vog"
OURS = "fiftyone_vog.core.runs"
#: where the plugin's classes used to be recorded (FiftyOne's module name for the plugin + the path)
PLUGIN_PATH = "fiftyone.plugins.orgs.fiftyone_vog.vog.core.runs"
WARNINGS = ("Unable to load", "falling back", "ModuleNotFoundError")

# The App's way: the plugin from the plugins directory, the operator through FiftyOne's executor,
# in a process that never imported fiftyone_vog (the App server, `fiftyone delegated launch`).
COMPUTE_AS_THE_APP = """
import json, sys
import fiftyone as fo, fiftyone.operators as foo
ds = fo.load_dataset(sys.argv[1])
params = {"checkpoints": sys.argv[2], "model": "conftest:small_model", "batch_size": 16}
if sys.argv[3] == "delegated":
    from fiftyone.operators.delegated import DelegatedOperationService
    foo.execute_operator("@fiftyone-vog/vog/compute_vog", ctx={"dataset": ds, "params": params}, request_delegation=True)
    DelegatedOperationService().execute_queued_operations(dataset_name=ds.name)
else:
    foo.execute_operator("@fiftyone-vog/vog/compute_vog", ctx={"dataset": ds, "params": params})
print(json.dumps({"package": sys.modules["fiftyone_vog"].__file__}))
"""

# A later process: the Python API, fresh.
READ_WITH_THE_API = """
import json, sys
import fiftyone as fo
import fiftyone_vog as fov
from fiftyone_vog.core.runs import VoGResults, VoGRunConfig
ds = fo.load_dataset(sys.argv[1])
out = {"runs": fov.list_vog_runs(ds)}
out["config"] = isinstance(fov.get_vog_run(ds, "vog").config, VoGRunConfig)
out["results"] = isinstance(fov.load_vog_results(ds, "vog"), VoGResults)
out["info"] = isinstance(ds.get_run_info("vog").config, VoGRunConfig)  # FiftyOne's own call
print(json.dumps(out))
"""


def _env(plugins_dir, **extra):
    env = os.environ.copy()  # conftest's FIFTYONE_* settings: the same throw-away database
    env["PYTHONPATH"] = os.pathsep.join([TESTS_DIR, env.get("PYTHONPATH", "")])  # conftest:small_model
    env["FIFTYONE_PLUGINS_DIR"] = str(plugins_dir)
    env["FIFTYONE_VOG_ALLOW_IMPORTS"] = "1"  # the model is a module:callable spec
    env.update(extra)
    return env


def _python(script, *args, env):
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # FiftyOne logs its warnings to stdout (fo.config.logging_destination), tracebacks to stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout + proc.stderr


def _no_warning(output):
    assert not any(w in output for w in WARNINGS), output[-3000:]


def _run_doc(ds, key="vog"):
    import fiftyone.core.odm as foo_odm

    return foo_odm.get_db_conn().runs.find_one({"_dataset_id": ds._doc.id, "key": key})


def _stored_results_cls(ds, key="vog"):
    import fiftyone.core.odm as foo_odm
    import gridfs
    from bson import json_util

    fs = gridfs.GridFS(foo_odm.get_db_conn())
    return json_util.loads(fs.get(_run_doc(ds, key)["results"]).read().decode())["cls"]


@pytest.fixture
def named(image_dir, request):
    ds = build_dataset(*image_dir, name=f"import-path-{request.node.name[:40]}")
    ds.persistent = True  # visible to the subprocesses
    yield ds
    ds.delete()


@pytest.mark.parametrize("mode", ["link", "copy"])
def test_a_run_made_in_the_app_loads_in_a_fresh_process_without_a_warning(named, checkpoint_dir, tmp_path, mode):
    plugins = tmp_path / "plugins"
    install_plugin(plugins, mode=mode)  # install-plugin's link, or its --copy
    env = _env(plugins)
    # the link runs as immediate, the copy as a delegated run (what a worker executes)
    made, output = _python(
        COMPUTE_AS_THE_APP,
        named.name,
        os.path.join(checkpoint_dir, "epoch_*.pt"),
        "immediate" if mode == "link" else "delegated",
        env=env,
    )
    _no_warning(output)
    if mode == "copy":  # the copy runs as the package itself, under the package's own name
        assert made["package"] == str(plugins / "fiftyone-vog" / "__init__.py")
    assert _run_doc(named)["config"]["cls"] == f"{OURS}.VoGRunConfig"
    assert _stored_results_cls(named) == f"{OURS}.VoGResults"

    read, output = _python(READ_WITH_THE_API, named.name, env=env)
    _no_warning(output)
    assert read == {"runs": ["vog"], "config": True, "results": True, "info": True}
    if mode == "link":  # the CLI, a process of its own for each command: list, info, delete
        for args, expect in [
            (("list",), "vog\t"),
            (("info", "vog"), "fields: vog, vog_raw"),
            (("delete", "vog", "--yes"), "deleted VoG run 'vog'"),
        ]:
            cli = subprocess.run(
                [sys.executable, "-m", "fiftyone_vog.cli", "runs", args[0], named.name, *args[1:]],
                capture_output=True,
                text=True,
                timeout=600,
                env=env,
            )
            assert cli.returncode == 0 and expect in cli.stdout, cli.stdout + cli.stderr
            _no_warning(cli.stdout + cli.stderr)
        named.reload()
        assert named.list_runs() == [] and "vog" not in named.get_field_schema()


def test_a_run_stored_under_the_plugin_path_is_rewritten_once_on_read(named, checkpoint_dir, tmp_path):
    """What earlier versions wrote from the App: both class paths under the plugin's module name.
    The first read through the API rewrites them (the run document and the stored results); the
    next process finds nothing to rewrite and no warning either."""
    import fiftyone.core.odm as foo_odm
    import gridfs
    from bson import json_util

    import fiftyone_vog as fov

    fov.compute_vog(named, checkpoint_dir, model=small_model, progress=False)
    # as an earlier version's App run stored it
    db = foo_odm.get_db_conn()
    doc = _run_doc(named)
    fs = gridfs.GridFS(db)
    results = json_util.loads(fs.get(doc["results"]).read().decode())
    results["cls"] = f"{PLUGIN_PATH}.VoGResults"
    new_id = fs.put(json_util.dumps(results).encode(), content_type="application/json")
    fs.delete(doc["results"])
    db.runs.update_one({"_id": doc["_id"]}, {"$set": {"config.cls": f"{PLUGIN_PATH}.VoGRunConfig", "results": new_id}})
    # a run of another type under a plugin path is not ours: left as it is
    other = named.init_run(method="someone.else")
    named.register_run("other", other)
    db.runs.update_one({"_dataset_id": named._doc.id, "key": "other"}, {"$set": {"config.cls": f"{PLUGIN_PATH}.X"}})

    env = _env(tmp_path / "no-plugins")
    read, output = _python(READ_WITH_THE_API, named.name, env=env)
    _no_warning(output)
    assert read == {"runs": ["vog"], "config": True, "results": True, "info": True}
    assert _run_doc(named)["config"]["cls"] == f"{OURS}.VoGRunConfig"
    assert _stored_results_cls(named) == f"{OURS}.VoGResults"
    assert len(list(fs.find({"_id": new_id}))) == 0  # the old results file went; one file per run
    assert _run_doc(named, "other")["config"]["cls"] == f"{PLUGIN_PATH}.X"

    read, output = _python(READ_WITH_THE_API, named.name, env=env)
    _no_warning(output)
    assert read["results"]
