"""Two web processes on one PostgreSQL and one Redis: what one process learns from
memory, the other must not contradict for longer than a second (README, "Refusals
from memory" and "Tokens from memory"). Each process is the production server
(``gunicorn -c gunicorn.conf.py``, one worker) on a port of its own.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from shop.db import db
from tests.conftest import TEST_PASSWORD
from tests.shop.conftest import SHIPPING
from tests.support import servers

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

_keys = iter(range(1, 1_000_000))


def call(port: int, method: str, path: str, token: str | None = None, body: Any = None) -> Any:
    """(status, JSON body or None)."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": f"mp-{next(_keys)}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        return error.code, json.loads(raw) if raw else None


def order(port: int, token: str, listing_id: int, qty: int = 1) -> Any:
    lines = [{"listing_id": listing_id, "qty": qty}]
    return call(port, "POST", "/api/v1/orders", token, {"lines": lines, "shipping": SHIPPING})


@pytest.fixture
def two_processes(app, committing) -> Iterator[tuple[int, int]]:
    ports = servers.free_port(), servers.free_port()
    started = []
    try:
        for port in ports:
            # Memory is trusted for a minute here: only the bus can correct it in time.
            extra = {"STOCK_VIEW_TTL_S": "60", "TOKEN_CACHE_S": "60"}
            started.append(servers.start("production", app, port, **extra))
        yield ports
    finally:
        for server in started:
            servers.stop(server)


def seconds_until(condition: Any, timeout: float = 5.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "never happened"
        time.sleep(0.02)
    return time.monotonic() - started


def test_units_that_come_back_after_a_sell_out_sell_again_on_every_process_within_1_s(
    app, two_processes, auth, make_product, make_live_session
):
    a, b = two_processes
    with app.app_context():
        live = make_live_session([(make_product(stock=10), 990, 2, None)])
        listing_id = live.listings[0].id
        tokens = [auth("buyer")[1]["Authorization"].removeprefix("Bearer ") for _ in range(3)]
        db.session.remove()
    first, second, third = tokens

    status, placed = order(a, first, listing_id, qty=2)
    assert status == 201
    # Both processes refuse, and learn the sell-out (the second refusal is from memory).
    for port in (a, b, a, b, a, b):
        status, problem = order(port, second, listing_id)
        assert status == 409 and problem["type"] == "out-of-stock"
        assert problem["detail"] == "Only 0 left."

    status, cancelled = call(a, "POST", f"/api/v1/orders/{placed['id']}/cancel", first)
    assert status == 200 and cancelled["state"] == "cancelled"
    after_b = seconds_until(lambda: order(b, second, listing_id)[0] == 201)
    after_a = seconds_until(lambda: order(a, third, listing_id)[0] == 201)
    assert after_b < 1.0 and after_a < 1.0
    # Sold out again, and nothing oversold.
    status, problem = order(b, first, listing_id)
    assert status == 409 and problem["type"] == "out-of-stock"
    with app.app_context():
        remaining = db.session.execute(
            db.text("SELECT remaining FROM live_listings WHERE id = :id"), {"id": listing_id}
        ).scalar_one()
        db.session.remove()
    assert remaining == 0


@pytest.mark.parametrize("how", ["logout", "password change"])
def test_a_revoked_token_is_refused_by_another_process_within_1_s(
    how, app, two_processes, make_user, token_for
):
    a, b = two_processes
    with app.app_context():
        user = make_user("buyer")
        token = token_for(user)
        db.session.remove()
    for port in (a, b, a, b):  # both processes now know the token
        assert call(port, "GET", "/api/v1/me", token)[0] == 200

    if how == "logout":
        assert call(a, "DELETE", "/api/v1/auth/token", token)[0] == 204
    else:
        change = {"current_password": TEST_PASSWORD, "new_password": "a whole new password"}
        assert call(a, "POST", "/api/v1/me/password", token, change)[0] == 204
    refused_after = seconds_until(lambda: call(b, "GET", "/api/v1/me", token)[0] == 401)
    assert refused_after < 1.0
    assert call(a, "GET", "/api/v1/me", token)[0] == 401
