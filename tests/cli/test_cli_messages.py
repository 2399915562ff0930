"""Bad input on the CLI and in the App's forms: one line naming the problem and the fix.

Every CLI case runs the real ``fiftyone-vog`` in a subprocess (against the session's own
MongoDB) and must exit 2 with a single-line stderr, never a traceback. The form cases go
through FiftyOne's executor and ``resolve_input``, as the App does.
"""

import os
import socket
import subprocess
import sys

import fiftyone.operators as foo
import pytest
from fiftyone.operators.executor import ExecutionContext, ExecutionError

from fiftyone_vog.app.install import install_plugin

from conftest import TESTS_DIR, build_dataset, form_props

CLI = [sys.executable, "-m", "fiftyone_vog.cli"]
NAME = "cli-messages"
PLUGIN = "@fiftyone-vog/vog"
MODEL = "conftest:small_model"


def _env(**extra):
    env = os.environ.copy()  # conftest's FIFTYONE_* settings: the same throw-away database
    env["PYTHONPATH"] = os.pathsep.join([TESTS_DIR, env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _cli(*args, env=None, timeout=600):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, env=env or _env())


@pytest.fixture(scope="module")
def named(image_dir):
    ds = build_dataset(*image_dir, name=NAME)
    ds.persistent = True  # visible to the subprocesses
    ds.set_values("vog", [float(i) for i in range(len(ds))])
    yield ds
    ds.delete()


@pytest.fixture(scope="module")
def a_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("files") / "a_file.txt"
    path.write_text("not a directory\n")
    return str(path)


def _compute(ckpts, *extra):
    return [
        "compute",
        NAME,
        "--checkpoints",
        ckpts,
        "--vog-field",
        "fresh",
        "--model",
        MODEL,
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


# (id, argv builder, extra env, phrase the one line must contain)
CASES = [
    ("windows-bad-json", lambda c, f: _compute(c, "--windows", "{bad json"), {}, "--windows: invalid JSON"),
    ("windows-a=x", lambda c, f: _compute(c, "--windows", "a=x"), {}, "is not a slice"),
    ("windows-early=a", lambda c, f: _compute(c, "--windows", "early=a"), {}, "is not a slice"),
    ("windows-null", lambda c, f: _compute(c, "--windows", '{"a": null}'), {}, "window 'a'"),
    ("windows-duplicate", lambda c, f: _compute(c, "--windows", "a=0:2,a=-2:"), {}, "window 'a' is given twice"),
    ("num-workers", lambda c, f: _compute(c, "--num-workers", "-1"), {}, "num_workers must be ≥ 0"),
    ("num-classes", lambda c, f: _compute(c, "--num-classes", "-1"), {}, "num_classes must be ≥ 1"),
    ("device-bogus", lambda c, f: [*_compute(c)[:-3], "--device", "bogus", "--quiet"], {}, "device='bogus'"),
    ("device-meta", lambda c, f: [*_compute(c)[:-3], "--device", "meta", "--quiet"], {}, "device='meta'"),
    ("model-colon", lambda c, f: [*_compute(c)[:6], "--model", ":x", "--device", "cpu"], {}, "model=':x'"),
    # with imports (always on in the CLI): a callable that needs arguments / returns no nn.Module
    ("model-needs-arguments", lambda c, f: _compute(c, "--model", "os:system"), {}, "'os:system' needs arguments"),
    ("model-not-a-module", lambda c, f: _compute(c, "--model", "builtins:dict"), {}, "returned dict, not an nn.Module"),
    ("model-class-needs-arguments", lambda c, f: _compute(c, "--model", "torch.nn:Linear"), {}, "(in_features, out_f"),
    ("flush-seconds", lambda c, f: _compute(c), {"FIFTYONE_VOG_FLUSH_SECONDS": "abc"}, "FIFTYONE_VOG_FLUSH_SECONDS"),
    ("seed-negative", lambda c, f: ["shuffle-labels", NAME, "--seed", "-1"], {}, "seed must be an integer ≥ 0"),
    ("seed-float", lambda c, f: ["shuffle-labels", NAME, "--seed", "1.5"], {}, "--seed"),
    ("report-out-dir-file", lambda c, f: ["report", NAME, "--out-dir", f], {}, "is a file"),
    (
        "report-early-field",
        lambda c, f: ["report", NAME, "--out-dir", f + ".d", "--early-field", "filepath"],
        {},
        "early_field='filepath' holds",
    ),
    ("report-bins-0", lambda c, f: ["report", NAME, "--out-dir", f + ".d", "--bins", "0"], {}, "bins must be"),
    ("plugins-dir-file", lambda c, f: ["install-plugin", "--plugins-dir", f], {}, "is a file"),
]


@pytest.mark.parametrize("argv, env, phrase", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cli_bad_input_is_one_line_and_exit_2(named, checkpoint_dir, a_file, argv, env, phrase):
    r = _cli(*argv(checkpoint_dir, a_file), env=_env(**env))
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 2, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert phrase in lines[0], lines[0]
    assert lines[0].startswith("fiftyone-vog ")
    assert "fresh" not in named.get_field_schema()  # nothing was written


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is: nothing listens there


# The CLI's main in a real process, timed from after the imports (which alone take several
# seconds on a loaded machine): before the fix it waited 63 s, then printed a traceback.
TIMED_MAIN = (
    "import sys, time; import fiftyone, fiftyone_vog, fiftyone_vog.cli as cli; t = time.monotonic(); "
    "rc = cli.main(sys.argv[1:]); print(f'ELAPSED {time.monotonic() - t:.2f}'); sys.exit(rc)"
)


@pytest.mark.parametrize("command", [["views", NAME], ["shuffle-labels", NAME, "--seed", "3"]])
def test_database_down_is_one_line_within_seconds(command):
    env = _env(FIFTYONE_DATABASE_URI=f"mongodb://user:secret@127.0.0.1:{_closed_port()}")
    r = subprocess.run(
        [sys.executable, "-c", TIMED_MAIN, *command], capture_output=True, text=True, timeout=300, env=env
    )
    assert "ELAPSED" in r.stdout, (r.stdout, r.stderr[-3000:])
    elapsed = float(r.stdout.split("ELAPSED")[1])
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 2, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert "cannot reach the FiftyOne database" in line and "FIFTYONE_DATABASE_URI" in line
    assert "unchanged" in line and "secret" not in line  # never echo a password
    assert elapsed < 15, elapsed


def test_an_export_dir_with_a_nul_byte_is_one_line(named, tmp_path):
    """argv cannot carry a NUL byte: the CLI's main gets it from Python, in a real process."""
    code = "import sys, fiftyone_vog.cli as cli; sys.exit(cli.main(sys.argv[1:-1] + [sys.argv[-1] + chr(0) + 'x']))"
    argv = ["export", NAME, "--dataset-type", "csv", "--quiet", "--export-dir", str(tmp_path / "out")]
    r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300, env=_env())
    assert "Traceback" not in r.stderr and r.returncode == 2, r.stderr[-3000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "contains a NUL byte" in lines[0], r.stderr
    assert os.listdir(tmp_path) == []


# -- the App's forms, through FiftyOne's executor ------------------------------------
@pytest.fixture(scope="module")
def plugin():
    install_plugin()


def test_form_windows_null_is_an_inline_error(plugin, dataset, checkpoint_dir):
    props = form_props(f"{PLUGIN}/compute_vog", dataset, {"checkpoints": checkpoint_dir, "windows": '{"a": null}'})
    assert props["windows"].invalid and "window 'a'" in props["windows"].error_message


def test_form_device_meta_is_an_inline_error(plugin, dataset, checkpoint_dir):
    props = form_props(f"{PLUGIN}/compute_vog", dataset, {"checkpoints": checkpoint_dir, "device": "meta"})
    assert props["device"].invalid and "device='meta'" in props["device"].error_message
    props = form_props(f"{PLUGIN}/compute_vog", dataset, {"checkpoints": checkpoint_dir, "device": "cpu"})
    assert not props["device"].invalid


@pytest.mark.parametrize("seed", [-1, None, 1.5])
def test_shuffle_seed_must_be_a_whole_number(plugin, dataset, seed):
    uri = f"{PLUGIN}/shuffle_labels"
    props = form_props(uri, dataset, {"seed": seed})
    assert props["seed"].invalid and "seed" in props["seed"].error_message
    before = dataset.values("ground_truth.label")
    with pytest.raises(ExecutionError, match="seed"):
        foo.execute_operator(uri, ctx={"dataset": dataset, "params": {"seed": seed}})
    assert dataset.values("ground_truth.label") == before and "label_shuffled" not in dataset.get_field_schema()


def test_form_percentile_follows_the_api_rule(plugin, dataset, checkpoint_dir):
    """One rule, the API's: 0 < percentile <= 100 (the form capped it at 50)."""
    import fiftyone_vog as fov

    from conftest import small_model

    uri = f"{PLUGIN}/save_vog_views"
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, device="cpu", progress=False)
    foo.execute_operator(uri, ctx={"dataset": dataset, "params": {"vog_field": "vog", "percentile": 80}})
    assert len(dataset.load_saved_view("vog-high")) == 32
    props = form_props(uri, dataset, {"vog_field": "vog", "percentile": 120})
    assert props["percentile"].invalid and "(0, 100]" in props["percentile"].error_message


@pytest.mark.parametrize("value, ok", [(1, True), (0, False)])
def test_form_batch_size_says_at_least_1(plugin, dataset, checkpoint_dir, value, ok):
    """FiftyOne's own min check says "must be greater than 1" while 1 is accepted."""
    uri = f"{PLUGIN}/compute_vog"
    op = foo.get_operator(uri)
    ctx = ExecutionContext(
        request_params={"dataset_name": dataset.name, "params": {"checkpoints": checkpoint_dir, "batch_size": value}},
        operator_uri=uri,
        required_secrets=op._plugin_secrets,
    )
    from fiftyone.operators.executor import ValidationContext

    inputs = op.resolve_input(ctx)
    val = ValidationContext(ctx, inputs, op)
    msgs = [e.reason for e in val.errors]
    assert not any("greater than" in m for m in msgs), msgs
    prop = inputs.type.properties["batch_size"]
    assert bool(prop.invalid) is not ok
    if not ok:
        assert "at least 1" in prop.error_message


def test_grouped_dataset_error_names_select_group_slices(image_dir):
    import fiftyone as fo

    from fiftyone_vog.inputs.images import read_view

    ds = fo.Dataset()
    ds.add_group_field("group", default="left")
    paths, labels = image_dir
    group = fo.Group()
    ds.add_samples(
        [fo.Sample(filepath=paths[0], group=group.element("left"), ground_truth=fo.Classification(label=labels[0]))]
    )
    try:
        with pytest.raises(Exception, match=r"select_group_slices\('left'\)"):
            read_view(ds, "ground_truth", None)
    finally:
        ds.delete()


def test_options_table_imports_neither_torch_nor_fiftyone():
    """The options table and the errors load on their own: a fresh interpreter imports no torch, no FiftyOne."""
    code = (
        "import sys, fiftyone_vog.options, fiftyone_vog.errors; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'fiftyone')))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", (r.stdout, r.stderr)


def test_one_windows_parser_for_cli_and_form():
    from fiftyone_vog import cli, options
    from fiftyone_vog.app import forms

    text = "early=0:2,late=-2:,mid=1+2"
    want = {"early": "0:2", "late": "-2:", "mid": [1, 2]}
    assert options.parse_windows(text) == cli._windows(text) == forms.parse_windows(text) == want
    assert forms.parse_windows('{"a": [0, "epoch_2.pt"]}') == {"a": [0, "epoch_2.pt"]}
    with pytest.raises(options.OptionError, match="given twice"):
        options.parse_windows('{"a": "0:2", "a": "-2:"}')


@pytest.mark.parametrize("fraction, ok", [(0, True), (1, True), (-0.1, False), (None, False)])
def test_form_fraction_is_checked_with_its_own_words(plugin, dataset, fraction, ok):
    props = form_props(f"{PLUGIN}/shuffle_labels", dataset, {"fraction": fraction})
    assert bool(props["fraction"].invalid) is not ok
    if not ok:
        assert "from 0 to 1" in props["fraction"].error_message


@pytest.mark.parametrize("checkpoints", [5, {"epoch_1.pt": 1}, ["epoch_1.pt", 3], [None, None]])
def test_operator_checkpoints_that_are_not_paths_are_one_line(plugin, dataset, checkpoint_dir, checkpoints):
    uri = f"{PLUGIN}/compute_vog"
    props = form_props(uri, dataset, {"checkpoints": checkpoints, "model": MODEL})
    assert props["checkpoints"].invalid and "checkpoints must be a glob" in props["checkpoints"].error_message
    with pytest.raises(ExecutionError) as e:
        foo.execute_operator(uri, ctx={"dataset": dataset, "params": {"checkpoints": checkpoints, "model": MODEL}})
    assert "checkpoints must be a glob" in str(e.value) and "TypeError" not in str(e.value)
    import fiftyone_vog as fov

    with pytest.raises(fov.VoGError, match="checkpoints must be a glob"):  # the API says the same
        fov.compute_vog(dataset, checkpoints, model=MODEL)
    assert "vog" not in dataset.get_field_schema()


@pytest.mark.parametrize(
    "model, phrase", [("os:system", "'os:system' needs arguments (command)"), ("builtins:dict", "returned dict")]
)
def test_a_model_callable_that_is_no_factory_is_one_line_in_the_app(
    plugin, dataset, checkpoint_dir, monkeypatch, model, phrase
):
    monkeypatch.setenv("FIFTYONE_VOG_ALLOW_IMPORTS", "1")  # the server owner's switch is on
    uri = f"{PLUGIN}/compute_vog"
    props = form_props(uri, dataset, {"checkpoints": checkpoint_dir, "model": model})
    assert props["model"].invalid and phrase in props["model"].error_message
    with pytest.raises(ExecutionError) as e:
        foo.execute_operator(uri, ctx={"dataset": dataset, "params": {"checkpoints": checkpoint_dir, "model": model}})
    assert phrase in str(e.value) and "TypeError" not in str(e.value)
    assert "vog" not in dataset.get_field_schema()


def test_an_export_dir_with_a_nul_byte_is_one_line_in_the_app_and_the_api(plugin, dataset, tmp_path):
    import fiftyone_vog as fov

    dataset.set_values("vog", [float(i) for i in range(len(dataset))])
    bad = str(tmp_path / "out") + "\x00x"
    with pytest.raises(fov.VoGError, match="contains a NUL byte"):
        fov.export_vog_subset(dataset, bad, dataset_type="csv")
    uri = f"{PLUGIN}/export_vog_subset"
    props = form_props(uri, dataset, {"export_dir": bad})
    assert props["export_dir"].invalid and "contains a NUL byte" in props["export_dir"].error_message
    with pytest.raises(ExecutionError, match="contains a NUL byte"):
        foo.execute_operator(uri, ctx={"dataset": dataset, "params": {"export_dir": bad, "dataset_type": "csv"}})
    assert os.listdir(tmp_path) == []
