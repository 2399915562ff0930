"""Hold SIGINT/SIGTERM back while something must not be cut short (putting a dataset back).

``with deferred_signals(): ...`` installs handlers, in the main thread only (Python allows
signal handlers nowhere else; in other threads, e.g. the App's executor, the block runs as
is), that record SIGINT and SIGTERM instead of acting on them. On leaving, the old handlers
come back and what arrived is delivered: SIGTERM (and SIGHUP) is sent again to this process,
so that its old handler acts on it; a SIGINT raises ``KeyboardInterrupt`` — unless an
exception is already leaving the block, or ``drop_sigint`` is set (the caller is about to
raise an interrupt of its own). Nested blocks defer to the outermost one.
"""

from __future__ import annotations

import os
import signal
import threading

_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)
_active = threading.local()


class deferred_signals:  # a context manager used like a function
    def __init__(self, drop_sigint: bool = False):
        self.drop_sigint = drop_sigint
        self.received: list[int] = []
        self._old: dict | None = None

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread() or getattr(_active, "on", False):
            return self
        self._old = {}
        for s in _SIGNALS:
            try:
                self._old[s] = signal.signal(s, self._record)
            except (ValueError, OSError):  # not settable here
                pass
        _active.on = True
        return self

    def _record(self, signum, frame):
        self.received.append(signum)

    def __exit__(self, exc_type, exc, tb):
        if self._old is None:
            return False
        for s, h in self._old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        _active.on = False
        for s in dict.fromkeys(self.received):
            if s != signal.SIGINT:
                os.kill(os.getpid(), s)
        if signal.SIGINT in self.received and exc_type is None and not self.drop_sigint:
            raise KeyboardInterrupt
        return False
