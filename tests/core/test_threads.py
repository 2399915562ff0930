"""torch's CPU threads for a run nobody chose a count for: the cores other processes leave idle,
measured while the checkpoints load; this process's own recent work (training just before) does
not count. Recorded in the run's config with the reason."""

import os
import subprocess
import sys
import threading
import time

import pytest
import torch

import fiftyone_vog as fov
from fiftyone_vog.core import compute
from fiftyone_vog.core.threads import CpuWindow, ThreadChoice, auto_num_threads, cpu_cores

from conftest import small_model


def test_auto_num_threads_from_numbers():
    assert auto_num_threads(cores=2, other_busy=9.8, current=2) == 1  # an overloaded machine: still 1
    assert auto_num_threads(cores=2, other_busy=0.05, current=2) == 2  # an idle machine: every core
    assert auto_num_threads(cores=2, other_busy=0.4, current=2) == 2  # a core busy under half the time is idle
    assert auto_num_threads(cores=2, other_busy=0.6, current=2) == 1
    assert auto_num_threads(cores=16, other_busy=0.2, current=16) == 16
    assert auto_num_threads(cores=16, other_busy=3.0, current=16) == 13
    assert auto_num_threads(cores=16, other_busy=0.0, current=8) == 8  # never above torch's own default
    assert auto_num_threads(cores=4, other_busy=-1.0, current=4) == 4


def _spin(stop: threading.Event):
    while not stop.is_set():
        pass


def _window(seconds: float) -> float:
    return CpuWindow().other_busy(min_window=seconds)[0]


def test_a_busy_thread_here_is_not_counted_a_busy_process_is():
    """The same busy loop, once as a thread of this process (its CPU time is this process's: not
    counted) and once as another process (counted): the other process must raise the measured load
    by most of the CPU it got. Up to three A/B pairs, since other jobs may share the machine."""
    seen = []
    for _ in range(3):
        stop = threading.Event()
        spinner = threading.Thread(target=_spin, args=(stop,), daemon=True)
        spinner.start()
        try:
            here = _window(1.0)
        finally:
            stop.set()
            spinner.join()
        proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            import psutil

            child = psutil.Process(proc.pid)
            time.sleep(0.2)  # started and spinning
            c0 = sum(child.cpu_times()[:2])
            w0 = time.monotonic()
            other = _window(1.0)
            got = (sum(child.cpu_times()[:2]) - c0) / (time.monotonic() - w0)  # cores the child used
        finally:
            proc.kill()
            proc.wait()
        seen.append((here, other, got))
        if got > 0.2 and other - here > 0.5 * got:
            return
    pytest.fail(f"(this process's busy thread, another busy process, that process's cores): {seen}")


def test_the_choice_without_psutil_falls_back_to_the_load_average(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil now fails, as where it is missing
    choice = ThreadChoice(None, torch.device("cpu"))
    choice.start()
    assert 1 <= choice.count <= torch.get_num_threads()
    assert "1-minute load average" in choice.why


def test_thread_count_and_reason_are_recorded_and_restored(dataset, checkpoint_dir, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    seen = []
    real = compute.distributed.score_samples
    monkeypatch.setattr(
        compute.distributed, "score_samples", lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k)
    )
    ckpts = os.path.join(checkpoint_dir, "epoch_*.pt")
    res = fov.compute_vog(dataset, ckpts, model=small_model, device="cpu", num_threads=1, progress=False)
    assert seen == [1] and res.config["num_threads"] == 1
    run = fov.get_vog_run(dataset, "vog").config
    assert run.num_threads == 1 and run.num_threads_why == "chosen by the caller"
    assert torch.get_num_threads() == before
    res = fov.compute_vog(dataset, ckpts, model=small_model, device="cpu", vog_field="auto", progress=False)
    assert res.config["num_threads"] == seen[-1] and 1 <= seen[-1] <= before
    assert res.config["num_threads_why"].startswith(f"idle cores of {cpu_cores()} (")
    assert compute.threads_line(res.config).startswith(f"{seen[-1]} torch thread")
    monkeypatch.setenv("OMP_NUM_THREADS", str(before))  # the user's choice is kept
    res = fov.compute_vog(dataset, ckpts, model=small_model, device="cpu", vog_field="env", progress=False)
    assert res.config["num_threads"] == before and res.config["num_threads_why"] == f"OMP_NUM_THREADS={before}"
    with pytest.raises(fov.VoGError, match="num_threads must be"):
        fov.compute_vog(dataset, ckpts, model=small_model, num_threads=0, vog_field="bad", progress=False)
