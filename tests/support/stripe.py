"""Fixtures for Stripe in tests: a real localstripe server on loopback, and webhook signing
with Stripe's real scheme (``t=…,v1=HMAC-SHA256(secret, f"{t}.{body}")``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
WEBHOOK_SECRET = "whsec_test_shanhuo"
SECRET_KEY = "sk_test_shanhuo"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalStripe:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def reset(self) -> None:
        requests.post(f"{self.base_url}/_config/test/reset", timeout=5).raise_for_status()

    def fail_next_transfers(self, count: int = 1, message: str | None = None) -> None:
        body: dict[str, Any] = {"count": count}
        if message:
            body["message"] = message
        requests.post(f"{self.base_url}/_config/test/transfers/fail", json=body, timeout=5)

    def expire_idempotency_keys(self) -> None:
        """Stripe forgets an idempotency key after 24 hours; this is that day passing."""
        requests.post(f"{self.base_url}/_config/test/idempotency/expire", timeout=5)

    def requests_seen(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.base_url}/_config/test/requests", timeout=5).json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def localstripe_server() -> Iterator[LocalStripe]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.localstripe_server", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.post(f"{base_url}/_config/test/reset", timeout=1)
            break
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                errors = process.stderr.read() if process.stderr else b""
                raise RuntimeError(f"localstripe did not start: {errors!r}") from None
            time.sleep(0.1)
    try:
        yield LocalStripe(base_url)
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


@pytest.fixture
def localstripe(localstripe_server: LocalStripe) -> LocalStripe:
    """The local Stripe server, emptied for this test."""
    localstripe_server.reset()
    return localstripe_server


def sign_webhook(
    payload: dict[str, Any] | str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """A webhook body and the headers Stripe would send with it."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    t = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return body.encode(), {
        "Stripe-Signature": f"t={t},v1={signature}",
        "Content-Type": "application/json",
    }
