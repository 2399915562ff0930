"""Hold SIGINT/SIGTERM back while something must not be cut short (putting a dataset back).

``with deferred_signals(): ...`` installs handlers, in the main thread only (Python allows
signal handlers nowhere else; in other threads, e.g. the App's executor, the block runs as
is), that record SIGINT, SIGTERM and SIGHUP instead of acting on them. On leaving, the old
handlers come back and what arrived is delivered: SIGTERM (and SIGHUP) is sent again to this
process, so that its old handler acts on it; a SIGINT raises ``KeyboardInterrupt`` — unless an
exception is already leaving the block, or ``drop_sigint`` is set (the caller is about to
raise an interrupt of its own).

``with deferred_signals(first_interrupts=True): ...`` (a write that its undo must follow) lets
the *first* of these signals interrupt the block — a ``KeyboardInterrupt`` raised where the
block is, SIGTERM and SIGHUP included, so that the block's own ``except`` puts things back —
and holds every later one back until the block is left; then a SIGTERM or SIGHUP among them
(the first one too) is sent again, as above.

Blocks nest: an inner block never installs handlers of its own, the outermost one's handlers
see every signal. An inner plain block holds signals back while it runs, also inside an outer
``first_interrupts`` block; when it is left, a signal it held back interrupts (as the first
signal of the outer block) unless an exception is already leaving it or ``drop_sigint`` is set.
"""

from __future__ import annotations

import os
import signal
import threading

_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)
_active = threading.local()  # .block: the outermost block of this (the main) thread


class deferred_signals:  # a context manager used like a function
    def __init__(self, drop_sigint: bool = False, first_interrupts: bool = False):
        self.drop_sigint = drop_sigint
        self.first_interrupts = first_interrupts
        self.received: list[int] = []
        self.holding = 0  # plain blocks (this one included) holding signals back now
        self.tripped = False  # the first signal interrupted (first_interrupts)
        self._old: dict | None = None
        self._outer: deferred_signals | None = None
        self._seen = 0  # signals of the outer block seen when this inner one began

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        outer = getattr(_active, "block", None)
        if outer is not None:
            self._outer, self._seen = outer, len(outer.received)
            if not self.first_interrupts:
                outer.holding += 1
            return self
        self._old = {}
        for s in _SIGNALS:
            try:
                self._old[s] = signal.signal(s, self._record)
            except (ValueError, OSError):  # not settable here
                pass
        self.holding = 0 if self.first_interrupts else 1
        _active.block = self
        return self

    def _record(self, signum, frame):
        self.received.append(signum)
        if self.first_interrupts and not self.holding and not self.tripped:
            self.tripped = True
            raise KeyboardInterrupt

    def __exit__(self, exc_type, exc, tb):
        outer = self._outer
        if outer is not None:
            if not self.first_interrupts:
                outer.holding -= 1
                held = len(outer.received) > self._seen
                if held and outer.first_interrupts and not outer.holding and not outer.tripped:
                    outer.tripped = True  # a signal held back here is the outer block's first
                    if exc_type is None and not self.drop_sigint:
                        raise KeyboardInterrupt
            return False
        if self._old is None:
            return False
        for s, h in self._old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        _active.block = None
        for s in dict.fromkeys(self.received):
            if s != signal.SIGINT:
                os.kill(os.getpid(), s)
        interrupt = signal.SIGINT in self.received and not self.tripped
        if interrupt and exc_type is None and not self.drop_sigint:
            raise KeyboardInterrupt
        return False
