"""A real Celery worker for the tests that cross the broker: ``celery -A wsgi.celery_app
worker --pool=solo`` started as a subprocess against the test PostgreSQL and Redis, and
an app that sends tasks to that broker instead of running them in-process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flask import Flask

from shop.app import create_app
from shop.db import db

REPO = Path(__file__).resolve().parents[2]

#: the running workers, by the path of their log (what ``celery_worker`` yields)
_processes: dict[Path, subprocess.Popen[bytes]] = {}


def process_of(log_path: Path) -> subprocess.Popen[bytes]:
    """The worker process writing ``log_path`` (to kill it, say)."""
    return _processes[log_path]


@contextlib.contextmanager
def broker_app(app_config: dict[str, Any], **overrides: Any) -> Iterator[Flask]:
    """The test app's configuration, but sending tasks to Redis (``REDIS_URL``)."""
    redis_url = os.environ["REDIS_URL"]
    sending = create_app(
        {**app_config, "REDIS_URL": redis_url, "CELERY_BROKER_URL": redis_url, **overrides}
    )
    yield sending
    with sending.app_context():
        db.session.remove()
        db.engine.dispose()


@contextlib.contextmanager
def celery_worker(
    app_config: dict[str, Any],
    tmp_path: Path,
    name: str,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> Iterator[Path]:
    """Run a worker until the block ends; yields the path of its log. ``env`` overrides
    its environment (e.g. another ``CELERY_BROKER_URL``), ``args`` adds to its command
    line (e.g. ``-B`` to run the beat schedule in it)."""
    redis_url = os.environ["REDIS_URL"]
    log_path = tmp_path / f"{name}.log"
    worker_env = {
        **os.environ,
        "DATABASE_URL": app_config["DATABASE_URL"],
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "SHANHUO_INSTANCE": str(tmp_path),
        "SECRET_KEY": "test-secret",
        **(env or {}),
    }
    command = [
        sys.executable, "-m", "celery", "-A", "wsgi.celery_app", "worker", "--pool=solo",
        "--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"{name}-{os.getpid()}@%h", *(args or []),
    ]  # fmt: skip
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            command, cwd=REPO, env=worker_env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        _processes[log_path] = worker
        yield log_path
    finally:
        _processes.pop(log_path, None)
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def wait_for(check: Callable[[], Any], what: str, log: Path, timeout: float = 30) -> Any:
    """Poll ``check`` (in a fresh transaction each time) until it returns something true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()  # see what the worker committed
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()}")
