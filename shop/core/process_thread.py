"""A daemon thread that runs once per process: started on first use, and again in a
forked child (gunicorn forks its workers after the app may have started one)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

#: This process's id, kept up to date by a fork hook: asked several times a request,
#: so not ``os.getpid()`` — a system call each time.
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


class ProcessThread:
    def __init__(self, target: Callable[[], None], name: str) -> None:
        self.target = target
        self.name = name
        self.lock = threading.Lock()
        self.pid: int | None = None

    def ensure_started(self, reset: Callable[[], None] | None = None) -> None:
        """Start the thread unless this process already has; ``reset()`` first (the
        state a forked child inherited is its parent's)."""
        if self.pid == _pid:
            return
        with self.lock:
            if self.pid == _pid:
                return
            self.pid = _pid
            if reset is not None:
                reset()
            threading.Thread(target=self.target, name=self.name, daemon=True).start()
