"""Two web processes on one PostgreSQL and one Redis: what one process learns from
memory, the other must not contradict for longer than a second (README, "Refusals
from memory" and "Tokens from memory"), even when a Redis announcement is lost. Each
process is the production server (``gunicorn -c gunicorn.conf.py``, one worker) on a
port of its own.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from shop.accounts import service as accounts
from shop.accounts.models import User
from shop.accounts.signed_tokens import sign, signing_key
from shop.app import create_app
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


def refused_within(port: int, token: str, since: float, path: str = "/api/v1/me") -> float:
    """Seconds from ``since`` until ``port`` refuses ``token`` (401)."""
    seconds_until(lambda: call(port, "GET", path, token)[0] == 401)
    return time.monotonic() - since


def admin_probe(port: int, token: str) -> int:
    """An admin-only endpoint that reads nothing before validating its input: 422 for an
    admin, 403 for anyone else, 401 for a refused token."""
    return int(call(port, "POST", "/api/v1/admin/users", token, {})[0])


def ghost_token() -> str:
    """A token signed with the servers' key but never stored: the database refuses it,
    only memory lets it in. While a process lets it in, it is answering from memory."""
    now = int(time.time())
    return sign(
        signing_key("test-secret"), user_id=2**31 - 1, roles=[], issued=now, expires=now + 60
    )


def answering_from_memory(*ports: int) -> None:
    """Wait until each process lets signed tokens in from memory (its revocation poll
    runs, its subscription is healthy), so a refusal below is memory's own."""
    ghost = ghost_token()
    for port in ports:
        seconds_until(lambda port=port: admin_probe(port, ghost) == 403)


@pytest.fixture
def deaf_app(app_config) -> Iterator[Any]:
    """An app whose Redis is a closed port: what it revokes is committed, but its
    announcement is lost (the other processes learn it from the database alone)."""
    deaf = create_app({**app_config, "REDIS_URL": f"redis://127.0.0.1:{servers.free_port()}/0"})
    yield deaf
    with deaf.app_context():
        db.engine.dispose()


REVOCATIONS = ["logout", "password change", "sign out everywhere", "deactivation"]


@pytest.mark.parametrize("how", REVOCATIONS)
def test_a_revoked_token_is_refused_by_another_process_within_1_s(
    how, app, two_processes, make_user, token_for
):
    """Signed tokens let a process in without asking the database, even one it never saw:
    both must stop within a second of the revocation, on the process that did not make
    it too. The first three are asked of process a; sign out everywhere (a page) and a
    deactivation (the console) are made by this test's process."""
    a, b = two_processes
    with app.app_context():
        user = make_user("buyer")
        operator_id = make_user("admin").id
        seen, unseen = token_for(user), token_for(user)
        user_id = user.id
        db.session.remove()
    answering_from_memory(a, b)
    for port in (a, b, a, b):  # both processes now know one of the tokens
        assert call(port, "GET", "/api/v1/me", seen)[0] == 200

    if how == "logout":
        assert call(a, "DELETE", "/api/v1/auth/token", unseen)[0] == 204
        assert call(a, "DELETE", "/api/v1/auth/token", seen)[0] == 204
    elif how == "password change":
        change = {"current_password": TEST_PASSWORD, "new_password": "a whole new password"}
        assert call(a, "POST", "/api/v1/me/password", seen, change)[0] == 204
    else:
        with app.app_context():
            if how == "sign out everywhere":
                accounts.sign_out_everywhere(db.session, db.session.get(User, user_id))
            else:
                accounts.deactivate_user(db.session, user_id, actor_id=operator_id)
            db.session.commit()
            db.session.remove()
    revoked_at = time.monotonic()
    assert refused_within(b, unseen, revoked_at) < 1.0  # never seen by b before
    assert refused_within(b, seen, revoked_at) < 1.0
    assert admin_probe(b, ghost_token()) == 403  # refused by memory, not for want of it
    assert call(a, "GET", "/api/v1/me", seen)[0] == 401
    assert call(a, "GET", "/api/v1/me", unseen)[0] == 401


@pytest.mark.parametrize("how", ["logout", "deactivation"])
def test_a_revocation_whose_announcement_is_lost_is_refused_within_1_s_all_the_same(
    how, app, two_processes, deaf_app, make_user, token_for
):
    """Redis fails as the revocation commits: no process hears of it. Each reads the
    database's revocations a few times a second, so neither lets the token in a second
    later — not for the token's remaining lifetime."""
    a, b = two_processes
    with app.app_context():
        user = make_user("buyer")
        operator_id = make_user("admin").id
        token, user_id = token_for(user), user.id
        db.session.remove()
    answering_from_memory(a, b)
    for port in (a, b):
        assert call(port, "GET", "/api/v1/me", token)[0] == 200

    with deaf_app.app_context():
        if how == "logout":
            accounts.revoke_token(db.session, token)
        else:
            accounts.deactivate_user(db.session, user_id, actor_id=operator_id)
        db.session.commit()  # the announcement fails (logged) after this
        db.session.remove()
    revoked_at = time.monotonic()
    assert refused_within(b, token, revoked_at) < 1.0
    assert refused_within(a, token, revoked_at) < 1.0
    for port in (a, b):  # refused by memory, not for want of it
        assert admin_probe(port, ghost_token()) == 403
        assert call(port, "GET", "/api/v1/me", token)[0] == 401


def test_a_role_change_reaches_another_process_within_1_s_and_signs_no_one_out(
    app, two_processes, deaf_app, make_user, token_for
):
    """A token carries the roles it was issued with; once its user's roles change it is
    asked about in the database, which says the roles of now. Taken away (announced),
    then given back with the announcement lost: each is in force on the other process
    within a second, and the token keeps working throughout."""
    a, b = two_processes
    with app.app_context():
        admin_id = make_user("admin").id
        operator_id = make_user("admin").id
        token = token_for(db.session.get(User, admin_id))
        db.session.remove()
    answering_from_memory(a, b)
    assert admin_probe(b, token) == 422 and admin_probe(a, token) == 422

    with app.app_context():
        accounts.set_roles(db.session, admin_id, ["buyer"], actor_id=operator_id)
        db.session.commit()
        db.session.remove()
    changed_at = time.monotonic()
    seconds_until(lambda: admin_probe(b, token) == 403)
    assert time.monotonic() - changed_at < 1.0
    assert call(b, "GET", "/api/v1/me", token)[0] == 200  # still signed in

    with deaf_app.app_context():
        accounts.set_roles(db.session, admin_id, ["admin", "buyer"], actor_id=operator_id)
        db.session.commit()
        db.session.remove()
    changed_at = time.monotonic()
    seconds_until(lambda: admin_probe(b, token) == 422)
    assert time.monotonic() - changed_at < 1.0
    assert admin_probe(a, token) == 422
    answering_from_memory(a, b)  # the roles of now, with memory in use
    assert admin_probe(b, token) == 422 and admin_probe(a, token) == 422
