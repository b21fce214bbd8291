"""The real web servers, started by a test on a free port against the test database:
the production config (``gunicorn -c gunicorn.conf.py``) and ``shanhuo run``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(app: Any, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "SECRET_KEY": "test-secret",
        "SHANHUO_INSTANCE": app.instance_path,
        "MEDIA_ROOT": app.config["MEDIA_ROOT"],
        **extra,
    }
    env.pop("CELERY_BROKER_URL", None)
    if not app.config.get("REDIS_URL"):
        env.pop("REDIS_URL", None)
    return env


def start(kind: str, app: Any, port: int, **extra: str) -> subprocess.Popen[bytes]:
    """``kind`` "production": gunicorn with the repository's config (one worker unless
    ``WEB_CONCURRENCY`` says otherwise); "run": ``shanhuo run``."""
    bin_dir = Path(sys.executable).parent
    env = server_env(app, **{"WEB_CONCURRENCY": "1", **extra})
    if kind == "production":
        command = [str(bin_dir / "gunicorn"), "-c", "gunicorn.conf.py"]
        command += ["-b", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"]
    else:
        command = [str(bin_dir / "shanhuo"), "run", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return server
        except OSError as error:
            if server.poll() is not None:
                raise AssertionError(f"{kind} server exited: {server.returncode}") from error
            time.sleep(0.2)
    stop(server)
    raise AssertionError(f"the {kind} server did not come up")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)
