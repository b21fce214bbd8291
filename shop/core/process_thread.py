"""A daemon thread that runs once per process: started on first use, and again in a
forked child (gunicorn forks its workers after the app may have started one)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


class ProcessThread:
    def __init__(self, target: Callable[[], None], name: str) -> None:
        self.target = target
        self.name = name
        self.lock = threading.Lock()
        self.pid: int | None = None

    def ensure_started(self, reset: Callable[[], None] | None = None) -> None:
        """Start the thread unless this process already has; ``reset()`` first (the
        state a forked child inherited is its parent's)."""
        if self.pid == os.getpid():
            return
        with self.lock:
            if self.pid == os.getpid():
                return
            self.pid = os.getpid()
            if reset is not None:
                reset()
            threading.Thread(target=self.target, name=self.name, daemon=True).start()
