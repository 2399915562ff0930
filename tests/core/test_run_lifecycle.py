"""Runs that race, are deleted while they compute, and are signalled twice: real CLI processes, real
signals, the real database (the driver of tests/core/test_write_concurrency.py).

- Two runs of different keys whose output fields overlap (run ``vog`` with window ``x`` and run
  ``vog_x`` both write ``vog_x``): the fields are claimed before any work, so the second is refused.
- ``dataset.delete_run(key)`` while that key computes, then the compute is interrupted: the run's
  FiftyOne record is gone, its fields are left, and the ownership record still knows they are the
  run's: ``delete_vog_run`` cleans them, a compute with ``overwrite`` replaces them.
- SIGINT then SIGTERM (or SIGTERM alone) during the write: the undo runs to the end, then the
  process dies of the SIGTERM; every sample is as it was.
"""

import signal
import subprocess
import sys
import time

import fiftyone.core.odm as foo
import pytest
from test_write_concurrency import CLI, DATASET_NAME, _compute_args, _raw, _start_driver

import fiftyone_vog as fov
from fiftyone_vog.core import ownership
from fiftyone_vog.core.locks import run_lock

from conftest import small_model

#: Pauses the CLI's compute in its first scored batch (before any write) until the file T_GO exists.
SCORING_DRIVER = r"""
import os, sys, time
from fiftyone_vog.engine import VoGEngine

real = VoGEngine.score_batch

def score_batch(self, *args, **kwargs):
    if not os.path.exists(os.environ["T_READY"]):
        open(os.environ["T_READY"], "w").close()
        while not os.path.exists(os.environ["T_GO"]):
            time.sleep(0.02)
    return real(self, *args, **kwargs)

VoGEngine.score_batch = score_batch
from fiftyone_vog.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _marks(ds):
    return foo.get_db_conn()["fiftyone_vog.writing"].count_documents({"dataset_id": str(ds._doc.id)})


def test_runs_of_two_keys_never_write_the_same_fields_at_once(named_dataset, checkpoint_dir, tmp_path, env):
    driver, ready, go = tmp_path / "scoring.py", tmp_path / "ready", tmp_path / "go"
    driver.write_text(SCORING_DRIVER)
    a = subprocess.Popen(
        [sys.executable, str(driver), *_compute_args(checkpoint_dir, "--windows", "x=0:2")],
        env={**env, "T_READY": str(ready), "T_GO": str(go)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not ready.exists():  # A has claimed its fields and is scoring; nothing is written yet
            assert a.poll() is None and time.monotonic() < deadline, a.communicate()
            time.sleep(0.02)
        assert "vog_x" not in named_dataset.get_field_schema()
        b = subprocess.run(
            [*CLI, *_compute_args(checkpoint_dir, "--vog-field", "vog_x")], env=env, capture_output=True, text=True
        )
    finally:
        go.touch()
        _, err = a.communicate(timeout=300)
    assert a.returncode == 0, err
    assert b.returncode == 2, b.stderr
    line = b.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert f"field 'vog_x' of dataset {DATASET_NAME!r} is being written by the VoG run 'vog' (compute by pid" in line
    named_dataset.reload()
    assert fov.list_vog_runs(named_dataset) == ["vog"]
    owners = {e.name: e.owner for e in ownership.listing(named_dataset, kind=ownership.FIELD)}
    assert set(owners) == set(named_dataset.get_run_info("vog").config.fields) and set(owners.values()) == {"run:vog"}
    # once A is registered, the record refuses B the same way
    with pytest.raises(fov.VoGError, match="field 'vog_x' belongs to the VoG run 'vog'"):
        fov.compute_vog(named_dataset, checkpoint_dir, model=small_model, vog_field="vog_x")


def test_fiftyones_delete_run_during_an_interrupted_compute_leaves_what_our_commands_clean(
    named_dataset, checkpoint_dir, tmp_path, env
):
    fov.compute_vog(named_dataset, checkpoint_dir, model=small_model, batch_size=8)
    before, fields = _raw(named_dataset), sorted(named_dataset.get_run_info("vog").config.fields)
    a = _start_driver(
        tmp_path, env, named_dataset, _compute_args(checkpoint_dir, "--statistic", "std", "--overwrite"), go=True
    )
    named_dataset.delete_run("vog")  # FiftyOne's own delete while A writes: refused cleanup, record dropped
    a.send_signal(signal.SIGINT)
    (tmp_path / "go").touch()
    _, err = a.communicate(timeout=300)
    assert a.returncode == 130, err
    named_dataset.reload()
    assert "vog" not in named_dataset.list_runs() and _raw(named_dataset) == before
    assert ownership.names(named_dataset, "run:vog") == fields  # the record still knows they are the run's

    with pytest.raises(
        fov.VoGError,
        match=r"^fields \[.*\] of a VoG run 'vog' that is no longer registered are left on dataset .* pass "
        r"overwrite=True .* or remove them with fov.delete_vog_run\(dataset, 'vog'\)$",
    ):
        fov.compute_vog(named_dataset, checkpoint_dir, model=small_model)
    fov.delete_vog_run(named_dataset, "vog")
    assert not set(fields) & set(named_dataset.get_field_schema())
    assert ownership.listing(named_dataset) == [] and _marks(named_dataset) == 0


def test_an_orphaned_runs_fields_are_replaced_by_a_resumed_overwrite(dataset, checkpoint_dir):
    """The same state made in one process: FiftyOne's delete_run while the key is locked."""
    fov.compute_vog(dataset, checkpoint_dir, model=small_model)
    fields = sorted(dataset.get_run_info("vog").config.fields)
    with run_lock(dataset, "vog"):
        dataset.delete_run("vog")
    assert set(fields) <= set(dataset.get_field_schema()) and not dataset.has_run("vog")
    fov.compute_vog(dataset, checkpoint_dir, model=small_model, overwrite=True, resume=True, statistic="std")
    assert dataset.get_run_info("vog").config.statistic == "std"
    assert ownership.names(dataset, "run:vog") == sorted(dataset.get_run_info("vog").config.fields) == fields


@pytest.mark.parametrize("signals", [("SIGINT", "SIGTERM"), ("SIGTERM",)], ids=["sigint-then-sigterm", "sigterm"])
def test_sigterm_during_the_write_waits_for_the_undo(named_dataset, checkpoint_dir, tmp_path, env, signals):
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
    for name in signals:
        a.send_signal(getattr(signal, name))
        time.sleep(0.1)  # the SIGTERM lands while the running chunk is waited for
    _, err = a.communicate(timeout=300)
    assert a.returncode == -signal.SIGTERM, err  # it did die of the SIGTERM, once the undo was done
    named_dataset.reload()
    assert _raw(named_dataset) == before
    assert named_dataset.get_run_info("vog").config.statistic == "variance"
    assert _marks(named_dataset) == 0  # the undo finished: nothing is reported mixed
    fov.compute_vog(named_dataset, checkpoint_dir, model=small_model, overwrite=True)  # the dead lock is taken over
