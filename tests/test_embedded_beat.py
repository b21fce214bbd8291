"""``shanhuo run`` on the embedded default (no broker, no worker) runs the beat schedule
itself: once per process, in the process that serves, and stops with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from shop.app import create_app
from shop.catalog import service as catalog
from shop.db import db
from tests.conftest import TEST_PASSWORD
from tests.fulfillment.conftest import SHIPPING
from tests.support.redis_server import free_port

SHANHUO = str(Path(sys.executable).parent / "shanhuo")


def _call(base: str, method: str, path: str, body: Any = None, **headers: str) -> Any:
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    """The embedded default on a fresh SQLite file, migrated; the timeouts short."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'shanhuo.sqlite3'}",
        SHANHUO_INSTANCE=str(tmp_path),
        SECRET_KEY="test-secret",
        ORDER_PAYMENT_TIMEOUT_S="2",
        BEAT_INTERVAL_S="1",
        PASSWORD_SCRYPT_N="1024",
    )
    subprocess.run([SHANHUO, "db", "upgrade"], env=env, check=True, capture_output=True)
    return env


def _serve(
    env: dict[str, str], log_path: Path, *options: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [SHANHUO, "run", "--host", "127.0.0.1", "--port", str(port), *options],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the reloader's child too
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            _call(base, "GET", "/healthz")
            return server, base
        except (urllib.error.URLError, ConnectionError):
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)


def _interrupt(server: subprocess.Popen[bytes]) -> int:
    """Ctrl-C, as a developer stops it."""
    os.killpg(server.pid, signal.SIGINT)
    try:
        return server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        raise


def test_shanhuo_run_expires_an_unpaid_order_and_puts_its_stock_back_with_no_worker(
    embedded_env, tmp_path
):
    setup = create_app({"DATABASE_URL": embedded_env["DATABASE_URL"], "CELERY_BROKER_URL": None})
    with setup.app_context():
        from shop.accounts import service as accounts

        accounts.create_user(
            db.session,
            email="buyer@beat.test",
            password=TEST_PASSWORD,
            display_name="Buyer",
            roles=("buyer",),
            scrypt_n=1024,
        )
        product = catalog.create_product(
            db.session,
            sku="BEAT-1",
            name="白木耳 White fungus",
            category="mushroom",
            unit_label="250 g bag",
            unit_weight_g=250,
            price_fen=2990,
            stock=10,
            packing_rate_fen=40,
        )
        db.session.commit()
        product_id = product.id
        db.session.remove()
        db.engine.dispose()

    log_path = tmp_path / "server.log"
    # With the reloader: its watching parent loads the app too, and must not run the beat.
    server, base = _serve(embedded_env, log_path, "--reload")
    try:
        token = _call(
            base,
            "POST",
            "/api/v1/auth/token",
            {"email": "buyer@beat.test", "password": TEST_PASSWORD},
        )["token"]
        auth = {"Authorization": f"Bearer {token}"}
        order = _call(
            base,
            "POST",
            "/api/v1/orders",
            {"lines": [{"product_id": product_id, "qty": 3}], "shipping": SHIPPING},
            **auth,
            **{"Idempotency-Key": "beat-1"},
        )
        assert order["state"] == "pending_payment"
        assert _call(base, "GET", f"/api/v1/products/{product_id}")["stock"] == 7

        deadline = time.monotonic() + 10  # 2 s to expire, then the next run of the beat
        while _call(base, "GET", f"/api/v1/orders/{order['id']}", **auth)["state"] != "expired":
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        assert _call(base, "GET", f"/api/v1/products/{product_id}")["stock"] == 10
    finally:
        _interrupt(server)
    log = log_path.read_text()
    assert log.count("embedded beat: started") == 1, log  # one process of the two
    assert "expired 1 unpaid orders" in log
    assert "embedded beat: stopped" in log  # stopped cleanly, with the server


def test_with_a_broker_shanhuo_run_leaves_the_schedule_to_celery_beat(embedded_env, tmp_path):
    env = {**embedded_env, "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    log_path = tmp_path / "server.log"
    server, _ = _serve(env, log_path, "--no-reload")
    time.sleep(1.5)
    _interrupt(server)
    assert "embedded beat" not in log_path.read_text()
