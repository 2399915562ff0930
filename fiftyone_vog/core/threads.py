"""torch's CPU threads for a run: the count, and why it was chosen.

Nobody chose a count (no ``num_threads``, no ``OMP_NUM_THREADS``) and the run is on the CPU: use
the cores that *other* processes leave idle. torch's intra-op threads wait for each other at every
operation, so a thread without a core to itself stalls all of them (docs/performance.md, *CPU
threads*). The 1-minute load average cannot tell this process's own recent work (training just
before scoring) from other processes', so the idle cores are measured directly: the machine's busy
CPU time over a short window, minus this process's own CPU time in it (``psutil``, which reads
``/proc/stat`` and ``/proc/self/stat`` on Linux); the load average is the fallback where that
fails.
"""

from __future__ import annotations

import math
import os
import time

import torch

from ..errors import VoGError

#: the shortest window over which other processes' CPU use is measured (seconds); the window
#: opens when the checkpoints start loading, so a run waits only for what loading did not cover
MIN_WINDOW = 0.2


def cpu_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def auto_num_threads(cores: int, other_busy: float, current: int) -> int:
    """The thread count for ``other_busy`` cores' worth of other processes' work on ``cores``
    cores: the idle cores, rounded to the nearest (a core busy less than half the time counts as
    idle), at least 1 and at most ``current`` (torch's own default)."""
    return max(1, min(int(current), math.floor(cores - max(0.0, other_busy) + 0.5)))


class CpuWindow:
    """Other processes' CPU use on this process's cores from construction until
    :meth:`other_busy` is asked (at least :data:`MIN_WINDOW` seconds)."""

    def __init__(self):
        import psutil  # a dependency of FiftyOne; imported here so that a missing one means the fallback

        self._psutil, self._me = psutil, psutil.Process()
        try:
            self._cpus = sorted(os.sched_getaffinity(0))  # the cores this process may use
        except (AttributeError, OSError):
            self._cpus = None  # every core
        self._t0 = time.monotonic()
        self._busy0, self._total0, self._own0 = self._read()

    def _read(self) -> tuple[float, float, float]:
        """(busy, total) CPU seconds of this process's cores since boot, and this process's own."""
        per_cpu = self._psutil.cpu_times(percpu=True)
        cpus = per_cpu if self._cpus is None else [per_cpu[i] for i in self._cpus if i < len(per_cpu)]
        busy = total = 0.0
        for t in cpus:
            fields = t._asdict()
            # guest time is already counted in user time (Linux): summing both would count it twice
            all_ = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
            total += all_
            busy += all_ - fields.get("idle", 0.0) - fields.get("iowait", 0.0)
        own = self._me.cpu_times()
        return busy, total, own.user + own.system

    def other_busy(self, min_window: float = MIN_WINDOW) -> tuple[float, float]:
        """``(cores busy with other processes' work, window seconds)``: the busy CPU time of this
        process's cores minus this process's own (all its threads) over the window, divided by the
        window's length."""
        wait = min_window - (time.monotonic() - self._t0)
        if wait > 0:
            time.sleep(wait)
        busy, total, own = self._read()
        window = time.monotonic() - self._t0
        n = len(self._cpus) if self._cpus is not None else len(self._psutil.cpu_times(percpu=True))
        elapsed = (total - self._total0) / max(1, n)  # the window as the kernel counted it, seconds
        if elapsed <= 0:
            return 0.0, window
        return max(0.0, (busy - self._busy0) - (own - self._own0)) / elapsed, window


class ThreadChoice:
    """The torch CPU thread count of one run and the reason for it (:attr:`count`, :attr:`why`).

    Given (``num_threads``) or the user's ``OMP_NUM_THREADS``: that. On a GPU: torch's default
    (the CPU threads hardly work). Else measured (:meth:`start` opens the window; the first read
    of :attr:`count` closes it): the cores other processes leave idle.
    """

    def __init__(self, num_threads: int | None, device: torch.device):
        self._count: int | None = None
        self._window: CpuWindow | None = None
        self.why = ""
        if num_threads is not None:
            if int(num_threads) < 1:
                raise VoGError(f"num_threads must be ≥ 1, got {num_threads}")
            self._count, self.why = int(num_threads), "chosen by the caller"
        elif os.environ.get("OMP_NUM_THREADS"):
            self._count, self.why = torch.get_num_threads(), f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}"
        elif device.type != "cpu":
            self._count, self.why = torch.get_num_threads(), f"torch's default (scoring on {device.type})"

    def start(self) -> None:
        """Open the measuring window (a no-op when the count is not measured, or is known)."""
        if self._count is None and self._window is None:
            try:
                self._window = CpuWindow()
            except Exception:  # no psutil, or it cannot read this OS: the load average at count time
                self._window = None

    @property
    def count(self) -> int:
        if self._count is None:
            self._count, self.why = self._measure()
        return self._count

    def _measure(self) -> tuple[int, str]:
        cores, current = cpu_cores(), torch.get_num_threads()
        if self._window is None:
            self.start()
        if self._window is not None:
            try:
                other, window = self._window.other_busy()
                n = auto_num_threads(cores, other, current)
                return n, _idle_why(n, cores, current, f"other processes used {other:.2f} cores over {window:.2f}s")
            except Exception:
                pass
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
        n = auto_num_threads(cores, load, current)
        return n, _idle_why(n, cores, current, f"1-minute load average {load:.2f}, this process's included")


def _idle_why(n: int, cores: int, current: int, measured: str) -> str:
    capped = f"; torch's default is {current}" if n == current and current < cores else ""
    return f"idle cores of {cores} ({measured}){capped}"


class torch_threads:
    """``torch.set_num_threads(n)`` for a block, then back to what it was."""

    def __init__(self, n: int):
        self.n, self.before = n, None

    def __enter__(self):
        self.before = torch.get_num_threads()
        if self.n != self.before:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if torch.get_num_threads() != self.before:
            torch.set_num_threads(self.before)
        return False
