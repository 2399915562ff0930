"""Shared fixtures. FiftyOne runs against its own throw-away database, never a user's."""

import atexit
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

#: tests/ and the repository root, for tests in subfolders that run scripts or subprocesses
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS_DIR)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    """Linux: the kernel stops mongod if the test process dies without running atexit (SIGKILL)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start_mongod() -> str | None:
    """Our own throw-away mongod (FiftyOne's bundled binary) on a free loopback port.

    Every process of the test session — this one, CLI and torchrun subprocesses, the App
    server — then talks to one database that lives exactly as long as the session, instead of
    each FiftyOne process negotiating the life of a shared service. Returns its URI, or None
    where no mongod binary exists (FiftyOne then starts its own on FIFTYONE_DATABASE_DIR).
    """
    spec = importlib.util.find_spec("fiftyone")  # finds the package without importing it
    mongod = os.path.join(spec.submodule_search_locations[0], "db", "bin", "mongod") if spec else ""
    if not os.access(mongod, os.X_OK):
        mongod = shutil.which("mongod")
        if mongod is None:
            return None
    dbpath = os.path.join(_TMP, "mongo")
    os.makedirs(dbpath)
    port = _free_port()
    proc = subprocess.Popen(
        [
            mongod,
            "--dbpath",
            dbpath,
            "--port",
            str(port),
            "--bind_ip",
            "127.0.0.1",
            "--nounixsocket",
            "--logpath",
            os.path.join(_TMP, "mongod.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )

    def stop():
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    atexit.register(stop)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mongod exited with {proc.returncode}; see {os.path.join(_TMP, 'mongod.log')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return f"mongodb://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("mongod did not start within 60 s")


if "FIFTYONE_VOG_TESTS_TMP" in os.environ:
    # imported as a module by a subprocess of the session (a model spec "conftest:small_model"):
    # the session's environment is inherited; start nothing, clean nothing
    _TMP = os.environ["FIFTYONE_VOG_TESTS_TMP"]
else:
    _TMP = os.environ["FIFTYONE_VOG_TESTS_TMP"] = tempfile.mkdtemp(prefix="fiftyone-vog-tests-")
    # Registered before anything else, so it runs last: after FiftyOne and mongod have stopped.
    atexit.register(shutil.rmtree, _TMP, ignore_errors=True)
    # Must happen before fiftyone is imported anywhere in the test process.
    os.environ.pop("FIFTYONE_DATABASE_URI", None)
    os.environ["FIFTYONE_DATABASE_DIR"] = os.path.join(_TMP, "db")
    _URI = _start_mongod()
    if _URI:
        os.environ["FIFTYONE_DATABASE_URI"] = _URI
    os.environ["FIFTYONE_DATABASE_NAME"] = "fiftyone-vog-tests"
    os.environ["FIFTYONE_DATABASE_VALIDATION"] = "false"
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"
    os.environ["FIFTYONE_SHOW_PROGRESS_BARS"] = "false"
    os.environ["FIFTYONE_PLUGINS_DIR"] = os.path.join(_TMP, "plugins")
    os.environ.setdefault("FIFTYONE_DEFAULT_APP_PORT", "5151")
    # the App-side tests read and write under pytest's tmp_path: the server owner's switch allows it
    # (tests/test_app_paths.py unsets it to test the defaults)
    os.environ["FIFTYONE_VOG_APP_ROOTS"] = os.pathsep.join([tempfile.gettempdir(), os.getcwd()])
    os.makedirs(os.environ["FIFTYONE_PLUGINS_DIR"], exist_ok=True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fiftyone_vog.inputs.training import CheckpointSaver, train_classifier  # noqa: E402
from fiftyone_vog.models import SmallCNN  # noqa: E402

CLASSES = ["circle", "square", "stripes", "dots"]


def run_cli(*args, env=None, timeout=600):
    """``python -m fiftyone_vog.cli ARGS`` in a subprocess (its env: this session's, so the same
    isolated database, unless ``env`` is given)."""
    return subprocess.run(
        [sys.executable, "-m", "fiftyone_vog.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


IMG_H, IMG_W = 12, 10  # non-square on purpose


def make_images(n, seed=0, h=IMG_H, w=IMG_W):
    """Generated RGB pictures of four visually distinct classes, with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    imgs, labels = [], []
    for i in range(n):
        c = i % len(CLASSES)
        cy, cx = rng.uniform(3, h - 3), rng.uniform(3, w - 3)
        if c == 0:
            m = ((yy - cy) ** 2 + (xx - cx) ** 2) < 9
        elif c == 1:
            m = (abs(yy - cy) < 3) & (abs(xx - cx) < 3)
        elif c == 2:
            m = (yy % 3) == 0
        else:
            m = ((yy % 3) == 0) & ((xx % 3) == 0)
        img = rng.uniform(0, 0.3, (h, w, 3))
        img[m] += np.array([0.6, 0.3 * (c % 2), 0.2 * c])
        imgs.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
        labels.append(c)
    return np.stack(imgs), np.array(labels)


def to_tensor(imgs):
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255


def small_model(num_classes=len(CLASSES)):
    return SmallCNN(num_classes=num_classes, in_channels=3, width=8)


@pytest.fixture(scope="session")
def tmp_root():
    return _TMP


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_root):
    """Five checkpoints of a small CNN trained on generated images (epoch_1..epoch_5.pt)."""
    d = os.path.join(tmp_root, "ckpts")
    imgs, labels = make_images(96, seed=1)
    torch.manual_seed(0)
    train_classifier(
        small_model(),
        to_tensor(imgs),
        torch.from_numpy(labels),
        epochs=5,
        saver=CheckpointSaver(d),
        lr=0.05,
        batch_size=16,
    )
    return d


@pytest.fixture(scope="session")
def image_dir(tmp_root):
    """40 generated PNGs in a folder, with their labels."""
    return write_images(os.path.join(tmp_root, "images"), 40, seed=2)


def write_images(folder, n, **kwargs):
    """``n`` generated PNGs (:func:`make_images` with ``kwargs``) written to ``folder``:
    ``(paths, labels)``."""
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    imgs, labels = make_images(n, **kwargs)
    paths = []
    for i, img in enumerate(imgs):
        p = os.path.join(folder, f"img_{i:03d}.png")
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths, [CLASSES[l] for l in labels]


def build_dataset(paths, labels, name=None):
    import fiftyone as fo

    ds = fo.Dataset(name) if name else fo.Dataset()
    ds.add_samples([fo.Sample(filepath=p, ground_truth=fo.Classification(label=l)) for p, l in zip(paths, labels)])
    ds.classes["ground_truth"] = list(CLASSES)
    ds.save()
    return ds


@pytest.fixture
def dataset(image_dir):
    """A fresh FiftyOne dataset of the generated images (deleted afterwards)."""
    ds = build_dataset(*image_dir)
    yield ds
    if not ds.deleted:
        ds.delete()


@pytest.fixture
def named_dataset(image_dir, request):
    """A persistent dataset named by the test module's ``DATASET_NAME``, which subprocesses
    (CLI, torchrun) load by name; deleted afterwards."""
    ds = build_dataset(*image_dir, name=request.module.DATASET_NAME)
    ds.persistent = True
    yield ds
    ds.delete()


@pytest.fixture
def env():
    """The session's environment for subprocesses, with tests/ on the path so that
    "conftest:small_model" imports."""
    e = os.environ.copy()
    e["PYTHONPATH"] = os.pathsep.join([TESTS_DIR, e.get("PYTHONPATH", "")])
    return e


@pytest.fixture
def scored_run(dataset, checkpoint_dir):
    """A dataset with an existing VoG run, and a snapshot of everything it holds."""
    import fiftyone_vog as fov

    fov.compute_vog(dataset, checkpoint_dir, model=small_model)

    def snapshot():
        schema = dataset.get_field_schema()
        return (
            sorted(schema),
            {f: dataset.values(f) for f in ("vog", "vog_raw", "ground_truth.label")},
            dataset.get_run_info("vog").config.serialize(),
            dataset.list_runs(),
        )

    return dataset, snapshot


@pytest.fixture
def no_deletes_outside(tmp_path, monkeypatch):
    """A safety net for the export tests: removing anything outside this test's tmp_path fails
    (PermissionError) instead. (The code before the fix would have removed '/', the home
    directory, ... for real.)"""
    base = os.path.realpath(tmp_path)

    def guard(name, fn):
        def wrapped(path, *a, **k):
            if k.get("dir_fd") is not None:  # inside a guarded rmtree
                return fn(path, *a, **k)
            real = os.path.realpath(os.path.abspath(os.fspath(path)))
            if not (real == base or real.startswith(base + os.sep) or ".partial-" in os.path.basename(real)):
                raise PermissionError(f"test guard: {name}({path!r}) is outside the test's folder")
            return fn(path, *a, **k)

        return wrapped

    monkeypatch.setattr(shutil, "rmtree", guard("rmtree", shutil.rmtree))
    for name in ("unlink", "remove", "rmdir"):
        monkeypatch.setattr(os, name, guard(name, getattr(os, name)))


def interrupt_after(ds, checkpoint_dir, monkeypatch, batches, **kw):
    """Run ``fov.compute_vog(ds, checkpoint_dir, **kw)`` and stop it with Ctrl-C after ``batches``
    batches, each flushed as a chunk of partial scores (for the resume tests)."""
    import fiftyone_vog as fov
    from fiftyone_vog.engine import VoGEngine

    real = VoGEngine.score_batch
    calls = []

    def failing(self, x, labels):
        calls.append(1)
        if len(calls) > batches:
            raise KeyboardInterrupt
        return real(self, x, labels)

    monkeypatch.setenv("FIFTYONE_VOG_FLUSH_SECONDS", "0")
    monkeypatch.setattr(VoGEngine, "score_batch", failing)
    with pytest.raises(KeyboardInterrupt):
        fov.compute_vog(ds, checkpoint_dir, **kw)
    monkeypatch.setattr(VoGEngine, "score_batch", real)


def resolve_form(uri, ds, params, as_app=False, **request):
    """Resolve operator ``uri``'s form on the server, as the App does on every keystroke:
    ``(properties, ValidationContext)``. ``as_app``: the request names the operator, as the App's
    do (then messages are in the form's words)."""
    import fiftyone.operators as foo
    from fiftyone.operators.executor import ExecutionContext, ValidationContext

    op = foo.get_operator(uri)
    extra = {"operator_uri": uri} if as_app else {}
    ctx = ExecutionContext(
        request_params={"dataset_name": ds.name, "params": dict(params), **extra, **request},
        operator_uri=uri,
        required_secrets=op._plugin_secrets,
    )
    inputs = op.resolve_input(ctx)
    return inputs.type.properties, ValidationContext(ctx, inputs, op)


def form_props(uri, ds, params):
    """The properties of operator ``uri``'s resolved form (see :func:`resolve_form`)."""
    return resolve_form(uri, ds, params)[0]
