"""Concurrent runs, signals and kills during the write of a VoG run; fields owned by other runs.

Real CLI processes and real signals. A small driver (written next to the test) runs the CLI
with the real writer in chunks of 4 samples on one thread (10 chunks for the 40 samples) and
each bulk write to the dataset's samples slowed down, so that a signal lands inside the write;
it touches a file when the write has begun and, if told, waits for a "go" file before writing.
"""

import re
import shlex
import signal
import socket
import subprocess
import sys
import time

import fiftyone.core.odm as foo
import numpy as np
import pytest

import fiftyone_vog as fov

from conftest import small_model

DATASET_NAME = "write-concurrency"  # the conftest fixture named_dataset
CLI = [sys.executable, "-m", "fiftyone_vog.cli"]

DRIVER = r"""
import os, sys, time
import pymongo.collection
import fiftyone_vog.core.writer as writer

real_bulk_set = writer.bulk_set
writer.bulk_set = lambda *a, **k: real_bulk_set(*a, chunk=4, threads=1, **k)
real = pymongo.collection.Collection.bulk_write
calls = [0]

def bulk_write(self, requests, *args, **kwargs):
    if self.name == os.environ["T_COLL"]:
        calls[0] += 1
        if calls[0] == int(os.environ.get("T_READY_AT", "1")):
            open(os.environ["T_READY"], "w").close()
            while os.environ.get("T_GO") and not os.path.exists(os.environ["T_GO"]):
                time.sleep(0.02)
        time.sleep(float(os.environ.get("T_DELAY", "0")))
    return real(self, requests, *args, **kwargs)

pymongo.collection.Collection.bulk_write = bulk_write
from fiftyone_vog.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _compute_args(checkpoint_dir, *extra):
    return [
        "compute",
        DATASET_NAME,
        "--checkpoints",
        checkpoint_dir,
        "--model",
        "conftest:small_model",
        "--batch-size",
        "8",
        "--quiet",
        *extra,
    ]


def _start_driver(tmp_path, env, dataset, args, ready_at=1, go=False, delay=0.0):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    e = {
        **env,
        "T_COLL": dataset._sample_collection_name,
        "T_READY": str(ready),
        "T_READY_AT": str(ready_at),
        "T_DELAY": str(delay),
        "T_GO": str(tmp_path / "go") if go else "",
    }
    proc = subprocess.Popen(
        [sys.executable, str(driver), *args], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the driver exited with {proc.returncode} before writing: {proc.communicate()}")
        assert time.monotonic() < deadline, "the driver never began its write"
        time.sleep(0.02)
    return proc


#: The fields a default run writes: vog/vog_raw and the companions, as messages list them (sorted).
ALL_FIELDS = ["vog", "vog_energy", "vog_loss", "vog_margin", "vog_maxprob", "vog_raw"]


def _raw(dataset, fields=("vog", "vog_raw")):
    return {str(d["_id"]): d for d in dataset._sample_collection.find({}, {f: True for f in fields})}


def _same_values(ds, dataset, checkpoint_dir, **kw):
    """Whether ``ds.vog_raw`` holds, on every sample, what an uninterrupted run of that configuration
    writes (computed on ``dataset``, another dataset of the same images)."""
    res = fov.compute_vog(dataset, checkpoint_dir, model=small_model, batch_size=8, **kw)
    want = dict(zip(dataset.values("filepath"), res["vog_raw"].tolist()))
    got = dict(zip(ds.values("filepath"), ds.values("vog_raw")))
    return got.keys() == want.keys() and all(np.isclose(got[k], want[k], rtol=1e-6) for k in want)


def _no_lock_left(ds):
    return foo.get_db_conn()["fiftyone_vog.locks"].count_documents({"dataset_id": str(ds._doc.id)}) == 0


@pytest.mark.parametrize("overwrite", [False, True], ids=["new", "overwrite"])
def test_two_cli_runs_racing_on_one_key_one_wins_the_other_exits_2(
    named_dataset, dataset, checkpoint_dir, tmp_path, env, overwrite
):
    flag = ["--overwrite"] if overwrite else []
    # A holds the key: it is in its write, and waits there until the test lets it go
    a = _start_driver(tmp_path, env, named_dataset, _compute_args(checkpoint_dir, *flag), go=True)
    try:
        b = subprocess.run(
            [*CLI, *_compute_args(checkpoint_dir, "--statistic", "std", *flag)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        (tmp_path / "go").touch()
        _, err = a.communicate(timeout=300)
    assert a.returncode == 0, err
    assert b.returncode == 2, b.stderr
    line = b.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith(
        f"fiftyone-vog compute: error: the VoG run 'vog' of dataset {DATASET_NAME!r} is "
        f"locked: compute by pid {a.pid} on {socket.gethostname()} since "
    )
    assert "wait for it to finish, or choose another vog_field" in line
    # the field is entirely A's run, and the registered run is A's
    named_dataset.reload()
    assert named_dataset.get_run_info("vog").config.statistic == "variance"
    assert _same_values(named_dataset, dataset, checkpoint_dir)
    assert _no_lock_left(named_dataset)


def test_lock_of_a_live_holder_is_refused_and_a_stale_one_taken_over(dataset, checkpoint_dir):
    """A holder on another machine: alive while its heartbeat is fresh, dead once it is older than the timeout."""
    import datetime

    locks = foo.get_db_conn()["fiftyone_vog.locks"]
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    doc = {
        "dataset_id": str(dataset._doc.id),
        "key": "vog",
        "token": "t",
        "what": "compute",
        "holder": {"host": "elsewhere", "pid": 1, "proc_start": None},
        "since": now,
        "heartbeat": now,
    }
    locks.insert_one(dict(doc))
    try:
        with pytest.raises(
            fov.VoGError,
            match=r"^the VoG run 'vog' of dataset .* is locked: compute by pid 1 on "
            r"elsewhere since .*; wait for it to finish",
        ):
            fov.compute_vog(dataset, checkpoint_dir, model=small_model)
        with pytest.raises(fov.VoGError, match="is locked"):  # a delete waits for the compute too
            fov.delete_vog_run(dataset, "vog")
        assert "vog" not in dataset.get_field_schema()
        old = now - datetime.timedelta(seconds=600)
        locks.update_one({"token": "t"}, {"$set": {"heartbeat": old}})
        fov.compute_vog(dataset, checkpoint_dir, model=small_model)  # stale: taken over
    finally:
        locks.delete_many({"token": "t"})
    assert fov.list_vog_runs(dataset) == ["vog"]
    assert _no_lock_left(dataset)


def test_sigint_twice_during_the_write_puts_every_sample_back(named_dataset, checkpoint_dir, tmp_path, env):
    fov.compute_vog(named_dataset, checkpoint_dir, model=small_model, batch_size=8)
    before = _raw(named_dataset)
    # 2 of 10 chunks written, the 3rd beginning; every write and restore of a chunk takes 0.2 s
    a = _start_driver(
        tmp_path,
        env,
        named_dataset,
        _compute_args(checkpoint_dir, "--statistic", "std", "--overwrite"),
        ready_at=3,
        delay=0.2,
    )
    a.send_signal(signal.SIGINT)
    time.sleep(0.1)  # while the running chunk is waited for
    a.send_signal(signal.SIGINT)
    time.sleep(0.25)  # while the landed chunks are put back
    a.send_signal(signal.SIGINT)
    _, err = a.communicate(timeout=300)
    assert a.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip() == (
        "fiftyone-vog compute: interrupted during the write; every sample was put back as it "
        "was and an earlier run kept"
    )
    named_dataset.reload()
    assert _raw(named_dataset) == before
    assert named_dataset.get_run_info("vog").config.statistic == "variance"
    assert foo.get_db_conn()["fiftyone_vog.writing"].count_documents({"dataset_id": str(named_dataset._doc.id)}) == 0
    assert _no_lock_left(named_dataset)


def test_sigkill_during_the_write_is_reported_with_the_repair_that_works(
    named_dataset, dataset, checkpoint_dir, tmp_path, env
):
    fov.compute_vog(named_dataset, checkpoint_dir, model=small_model, batch_size=8)
    before = _raw(named_dataset)
    a = _start_driver(
        tmp_path,
        env,
        named_dataset,
        _compute_args(checkpoint_dir, "--statistic", "std", "--overwrite"),
        ready_at=3,
        go=True,
    )
    time.sleep(0.2)
    a.kill()
    a.wait(timeout=60)
    named_dataset.reload()
    changed = [i for i, d in _raw(named_dataset).items() if d.get("vog_raw") != before[i].get("vog_raw")]
    assert len(changed) == 8  # two chunks of new values: a mixed dataset, and its run describes the old ones
    assert named_dataset.get_run_info("vog").config.statistic == "variance"

    files = checkpoint_dir  # the folder, as given: its manifest (CheckpointSaver's) is read again
    repair = shlex.join(
        [
            "fiftyone-vog",
            "compute",
            DATASET_NAME,
            "--checkpoints",
            files,
            "--model",
            "conftest:small_model",
            "--target",
            "probability",
            "--statistic",
            "std",
            "--classes",
            "circle,square,stripes,dots",
            "--vog-field",
            "vog",
            "--resume",
            "--overwrite",
        ]
    )
    for call in (fov.list_vog_runs, fov.load_vog_results, fov.get_vog_run):
        with pytest.warns(fov.MixedFieldsWarning) as caught:
            call(named_dataset)
        message = str(caught[0].message)
        assert f"the write of VoG run 'vog' on dataset {DATASET_NAME!r} (pid {a.pid} on " in message
        # the companions are written beside vog/vog_raw by default: they may be mixed too
        assert f"fields {ALL_FIELDS} may be mixed" in message
        assert f"to repair, run `{repair}`, or in Python fov.compute_vog(fo.load_dataset({DATASET_NAME!r}), " in message
        assert message.endswith(
            "statistic='std', classes=['circle', 'square', 'stripes', 'dots'], "
            "vog_field='vog', resume=True, overwrite=True)"
        )

    # a compute without overwrite says so too (and takes over the dead holder's lock to find out)
    plain = subprocess.run([*CLI, *_compute_args(checkpoint_dir)], env=env, capture_output=True, text=True, timeout=300)
    assert plain.returncode == 2 and "may be mixed" in plain.stderr and repair in plain.stderr, plain.stderr

    fixed = subprocess.run([*CLI, *shlex.split(repair)[1:]], env=env, capture_output=True, text=True, timeout=300)
    assert fixed.returncode == 0, fixed.stderr
    named_dataset.reload()
    assert _same_values(named_dataset, dataset, checkpoint_dir, statistic="std")
    assert named_dataset.get_run_info("vog").config.statistic == "std"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", fov.MixedFieldsWarning)
        assert fov.list_vog_runs(named_dataset) == ["vog"]
    assert _no_lock_left(named_dataset)


def test_a_run_never_writes_or_deletes_another_runs_field(dataset, checkpoint_dir):
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, vog_field="vog_early")
    theirs = dataset.values("vog_early")
    for overwrite in (False, True):
        with pytest.raises(
            fov.VoGError,
            match=r"^field 'vog_early' belongs to the VoG run 'vog_early' of dataset .*"
            r"choose another vog_field or window name",
        ):
            fov.compute_vog(dataset, checkpoint_dir, model=small_model, windows={"early": "0:2"}, overwrite=overwrite)
    assert "vog" not in dataset.get_field_schema() and dataset.values("vog_early") == theirs

    # a dataset written before this check existed: run 'vog' also lists the field of run 'vog_early'
    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    foo.get_db_conn().runs.update_one(
        {"_dataset_id": dataset._doc.id, "key": "vog"}, {"$push": {"config.fields": "vog_early"}}
    )
    dataset.reload()
    assert "vog_early" in fov.get_vog_run(dataset, "vog").config.fields
    fov.delete_vog_run(dataset, "vog")
    schema = dataset.get_field_schema()
    assert "vog" not in schema and "vog_raw" not in schema
    assert dataset.values("vog_early") == theirs
    assert fov.list_vog_runs(dataset) == ["vog_early"]


def test_a_failed_undo_leaves_the_mark_and_an_unsaved_views_repair_is_python(dataset, checkpoint_dir, monkeypatch):
    """The database goes away mid-write and stays away while putting back: the error says what is
    mixed, and so do later calls once it is back; for an unsaved view the repair is the Python call."""
    import pymongo.collection

    import fiftyone_vog.core.writer as writer

    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    view = dataset.match({"ground_truth.label": {"$ne": "dots"}})
    real_bulk_set, real = writer.bulk_set, pymongo.collection.Collection.bulk_write
    monkeypatch.setattr(writer, "bulk_set", lambda *a, **k: real_bulk_set(*a, chunk=4, threads=1, **k))
    calls = []

    def bulk_write(self, requests, *args, **kwargs):
        if self.name == dataset._sample_collection_name:
            calls.append(1)
            if len(calls) > 1:
                raise pymongo.errors.AutoReconnect("connection reset")
        return real(self, requests, *args, **kwargs)

    monkeypatch.setattr(pymongo.collection.Collection, "bulk_write", bulk_write)
    with pytest.raises(fov.VoGError, match=re.escape(f"fields {ALL_FIELDS} may hold the new values on some samples")):
        fov.compute_vog(view, checkpoint_dir, model=small_model, overwrite=True, statistic="std")
    monkeypatch.undo()
    with pytest.warns(
        fov.MixedFieldsWarning,
        match=re.escape(f"fields {ALL_FIELDS} may be mixed") + " .* to repair, in "
        r"Python run fov.compute_vog\(<the same view>, " + re.escape(repr(checkpoint_dir)) + ".*statistic='std'"
        r".*resume=True, overwrite=True\)$",
    ):
        assert fov.list_vog_runs(dataset) == ["vog"]
    fov.compute_vog(view, checkpoint_dir, model=small_model, overwrite=True, statistic="std", resume=True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", fov.MixedFieldsWarning)
        assert fov.get_vog_run(dataset).config.statistic == "std"
