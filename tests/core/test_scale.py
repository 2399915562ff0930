"""Scale-out and long runs: torchrun with 2 CPU processes (gloo), resuming after an exception and
after SIGKILL, partial scores keyed by configuration."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fiftyone_vog as fov
from fiftyone_vog.core.resume import COLLECTION
from fiftyone_vog.engine import VoGEngine

from conftest import TESTS_DIR, small_model

DATASET_NAME = "scale-test"  # the conftest fixture named_dataset

CLI = [sys.executable, "-m", "fiftyone_vog.cli"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone"]


def _env(**extra):
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join([TESTS_DIR, env.get("PYTHONPATH", "")])
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    env.update(extra)
    return env


def _chunks(ds):
    import fiftyone.core.odm as foo

    return list(foo.get_db_conn()[COLLECTION].find({"dataset_id": str(ds._doc.id)}))


def _compute_args(ckpts, *extra):
    return [
        "compute",
        DATASET_NAME,
        "--checkpoints",
        os.path.join(ckpts, "epoch_*.pt"),
        "--model",
        "conftest:small_model",
        "--device",
        "cpu",
        "--windows",
        "early=0:2,late=-2:",
        "--quiet",
        *extra,
    ]


def test_torchrun_two_processes_equal_one(named_dataset, checkpoint_dir):
    r = subprocess.run(
        [
            *TORCHRUN,
            "--nproc-per-node",
            "2",
            "-m",
            "fiftyone_vog.cli",
            *_compute_args(checkpoint_dir, "--batch-size", "7"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("VoG: scored 40 samples") == 1  # rank 0 alone reports (and writes)
    named_dataset.reload()
    info = fov.get_vog_run(named_dataset, "vog")
    assert info.config.world_size == 2
    dist_values = {f: named_dataset.values(f) for f in info.config.fields}
    ref = fov.compute_vog(
        named_dataset,
        checkpoint_dir,
        model=small_model,
        vog_field="single",
        device="cpu",
        windows={"early": "0:2", "late": "-2:"},
        batch_size=7,
        progress=False,
    )
    for f, v in dist_values.items():
        single = named_dataset.values(f.replace("vog", "single", 1))
        np.testing.assert_allclose(v, single, rtol=1e-6, atol=1e-9, err_msg=f)
        assert None not in v
    assert not _chunks(named_dataset)  # partial scores are removed on success
    assert ref.config["world_size"] == 1


def test_resume_after_an_exception_and_config_keying(dataset, checkpoint_dir, monkeypatch):
    monkeypatch.setenv("FIFTYONE_VOG_FLUSH_SECONDS", "0")  # flush every batch
    kw = dict(model=small_model, device="cpu", batch_size=4, progress=False)
    fov.compute_vog(dataset, checkpoint_dir, vog_field="full", **kw)

    real = VoGEngine.score_batch
    calls = {"n": 0}

    def failing(self, x, labels):
        calls["n"] += 1
        if calls["n"] > 6:
            raise KeyboardInterrupt  # as Ctrl-C would
        return real(self, x, labels)

    monkeypatch.setattr(VoGEngine, "score_batch", failing)
    with pytest.raises(KeyboardInterrupt):
        fov.compute_vog(dataset, checkpoint_dir, vog_field="part", **kw)
    monkeypatch.setattr(VoGEngine, "score_batch", real)
    assert "part" not in dataset.get_field_schema() and not dataset.has_run("part")  # nothing visible
    assert sum(len(c["ids"]) for c in _chunks(dataset)) == 24

    # a different configuration never resumes from those scores
    other = fov.compute_vog(
        dataset, checkpoint_dir, vog_field="part", target="logit", resume=True, **kw
    )  # not the default
    assert other.config["resumed_samples"] == 0
    fov.delete_vog_run(dataset, "part")
    assert not _chunks(dataset)  # a finished run drops every chunk of its key

    with pytest.raises(KeyboardInterrupt):
        calls["n"] = 0
        monkeypatch.setattr(VoGEngine, "score_batch", failing)
        fov.compute_vog(dataset, checkpoint_dir, vog_field="part", **kw)
    monkeypatch.setattr(VoGEngine, "score_batch", real)
    res = fov.compute_vog(dataset, checkpoint_dir, vog_field="part", resume=True, **kw)
    assert res.config["resumed_samples"] == 24
    for f in ("part", "part_raw"):
        np.testing.assert_array_equal(dataset.values(f), dataset.values(f.replace("part", "full")))
    assert not _chunks(dataset)


def test_cli_killed_with_sigkill_resumes(named_dataset, checkpoint_dir):
    env = _env(FIFTYONE_VOG_FLUSH_SECONDS="0")
    proc = subprocess.Popen(
        [*CLI, *_compute_args(checkpoint_dir, "--batch-size", "1")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 300
        while sum(len(c["ids"]) for c in _chunks(named_dataset)) < 3:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no partial scores appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    named_dataset.reload()
    assert "vog" not in named_dataset.get_field_schema() and not named_dataset.has_run("vog")
    flushed = sum(len(c["ids"]) for c in _chunks(named_dataset))
    assert 3 <= flushed < 40

    r = subprocess.run(
        [*CLI, *_compute_args(checkpoint_dir, "--batch-size", "1", "--resume")],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    named_dataset.reload()
    info = fov.get_vog_run(named_dataset, "vog")
    assert info.config.resumed_samples >= flushed
    fov.compute_vog(
        named_dataset,
        checkpoint_dir,
        model=small_model,
        vog_field="whole",
        device="cpu",
        windows={"early": "0:2", "late": "-2:"},
        batch_size=1,
        progress=False,
    )
    for f in info.config.fields:
        np.testing.assert_array_equal(named_dataset.values(f), named_dataset.values(f.replace("vog", "whole", 1)))
    assert not _chunks(named_dataset)


def test_merge_places_parts_by_id_and_refuses_overlaps_and_gaps():
    import numpy as np

    from fiftyone_vog.core.distributed import merge
    from fiftyone_vog.engine import RawVoG

    def part(ids, vals):
        return RawVoG(ids=ids, raw={"all": np.array(vals, float)}, used_labels=np.zeros(len(ids), int), predicted=None)

    ids = ["a", "b", "c", "d"]
    got = merge([part(["d", "b"], [4, 2]), part(["a", "c"], [1, 3])], ids)
    assert got.raw["all"].tolist() == [1, 2, 3, 4] and got.ids == ids
    with pytest.raises(fov.VoGError, match="scored twice"):
        merge([part(["a", "b"], [1, 2]), part(["b", "c", "d"], [2, 3, 4])], ids)
    with pytest.raises(fov.VoGError, match="1 of 4 samples were not scored"):
        merge([part(["a", "b", "c"], [1, 2, 3])], ids)
    with pytest.raises(fov.VoGError, match="sample id 'z', which is not in the view"):
        merge([part(["a", "b", "c", "z"], [1, 2, 3, 4])], ids)
