"""The beat schedule of the embedded default, run inside ``shanhuo run``.

Without a broker there is no ``celery beat``: eager Celery runs tasks when they are
sent, and nothing sends the periodic ones, so unpaid orders would never expire.
``shanhuo run`` therefore starts one ``EmbeddedBeat``: a daemon thread that runs each
entry of the app's ``beat_schedule`` in-process when it is due (with Celery's own
schedule objects, so a crontab entry works too), each in its own app context, and
stops when its stop event is set (at exit). The command starts it once per process,
in the process that serves (not in the reloader's watching parent). With a broker,
``celery beat`` is the one scheduler and this never starts.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

from celery.schedules import maybe_schedule
from flask import Flask

log = logging.getLogger(__name__)

_running: EmbeddedBeat | None = None  #: one per process
_lock = threading.Lock()


class EmbeddedBeat:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.celery = app.extensions["celery"]
        self.entries: dict[str, dict[str, Any]] = dict(self.celery.conf.beat_schedule)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="shanhuo-beat", daemon=True)

    def start(self) -> None:
        self.thread.start()
        names = ", ".join(sorted(self.entries))
        log.info("embedded beat: started in this process (%s)", names)

    def stop(self, timeout: float = 10) -> None:
        """Ask the loop to end and wait for the task it may be running."""
        self.stopping.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def _loop(self) -> None:
        schedules = {
            name: maybe_schedule(entry["schedule"], app=self.celery)
            for name, entry in self.entries.items()
        }
        last_run = {name: schedule.now() for name, schedule in schedules.items()}
        while not self.stopping.is_set():
            waits = []
            for name, schedule in schedules.items():
                due, next_check_s = schedule.is_due(last_run[name])
                if due and not self.stopping.is_set():
                    last_run[name] = schedule.now()
                    self._run(self.entries[name]["task"])
                waits.append(next_check_s)
            self.stopping.wait(max(min(waits, default=60.0), 0.05))
        log.info("embedded beat: stopped")

    def _run(self, task_name: str) -> None:
        try:
            self.celery.tasks[task_name].apply(throw=True)  # in an app context of its own
        except Exception:  # one failed run must not end the schedule
            log.exception("embedded beat: %s failed", task_name)


def start_embedded_beat(app: Flask) -> EmbeddedBeat | None:
    """Start the schedule in this process, unless a broker is configured (``celery beat``
    runs it then) or it already runs in this process. Returns the running beat, if any."""
    global _running
    if app.config["CELERY_BROKER_URL"]:
        return None
    with _lock:
        if _running is None:
            _running = EmbeddedBeat(app)
            _running.start()
            atexit.register(_running.stop)
        return _running
