"""Sign-in and registration limits through the real endpoints: behind a proxy, for the
account's owner, per address, without Redis, and an unknown email costing the same."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from shop.accounts import throttle
from shop.app import create_app
from shop.db import db
from tests.conftest import TEST_PASSWORD
from tests.pages.conftest import csrf_token

_numbers = itertools.count(1)


def an_address() -> str:
    n = next(_numbers)
    return f"203.0.{n // 250 + 113}.{n % 250 + 1}"


def token(client: Any, email: str, password: str, address: str, **headers: str) -> Any:
    return client.post(
        "/api/v1/auth/token",
        json={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
        headers=headers,
    )


@contextlib.contextmanager
def configured(app: Flask, **values: Any) -> Iterator[None]:
    saved = {key: app.config[key] for key in values}
    app.config.update(values)
    try:
        yield
    finally:
        app.config.update(saved)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0 + 10_000 * next(_numbers)  # a window of its own per test

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The time the sign-in rules read, under the test's control."""
    fake = Clock()
    monkeypatch.setattr(throttle, "now", lambda: fake.now)
    return fake


# ---------------------------------------------------------------------------- accounts


def test_an_account_slows_down_after_failures_and_the_right_password_works_after_the_wait(
    app, client, make_user, clock
):
    user = make_user("buyer")
    address = an_address()
    with configured(app, LOGIN_RATE_LIMIT=3):
        wrong = [token(client, user.email, "wrong", address).status_code for _ in range(3)]
        slowed = token(client, user.email, TEST_PASSWORD, address)
        clock.advance(int(slowed.headers["Retry-After"]))
        after_the_wait = token(client, user.email, TEST_PASSWORD, address)
    assert wrong == [401, 401, 401]
    assert slowed.status_code == 429
    assert slowed.get_json()["type"] == "rate-limited"
    assert slowed.headers["Retry-After"] == "1"
    assert after_the_wait.status_code == 200


def test_the_owner_from_a_fresh_address_signs_in_after_another_address_failed_many_times(
    app, client, make_user, clock
):
    user = make_user("villager")
    noisy = an_address()
    with configured(app, LOGIN_RATE_LIMIT=3):
        statuses = []
        for _ in range(60):  # a minute of one guess a second
            statuses.append(token(client, user.email, "guess", noisy).status_code)
            clock.advance(1)
        owner = token(client, user.email, TEST_PASSWORD, an_address())
        # the login page keeps the same rules
        form = {"email": user.email, "password": TEST_PASSWORD, "csrf_token": page_token(client)}
        page = client.post("/login", data=form, environ_base={"REMOTE_ADDR": an_address()})
    assert statuses.count(429) > 40  # the noisy address was slowed down …
    assert owner.status_code == 200  # … and the owner was not
    assert page.status_code == 302


def page_token(client: Any) -> str:
    return csrf_token(client.get("/login").get_data(as_text=True))


def test_an_address_failing_on_many_emails_is_refused_until_its_window_ends(app, client, clock):
    noisy, other = an_address(), an_address()
    with configured(app, LOGIN_RATE_LIMIT=2):  # 10 × 2 failures per address and window
        statuses = [
            token(client, f"guess{n}@b.cn", "whatever", noisy).status_code for n in range(21)
        ]
        elsewhere = token(client, "guess0@b.cn", "whatever", other)
        clock.advance(app.config["LOGIN_RATE_WINDOW_S"])
        next_window = token(client, "guess0@b.cn", "whatever", noisy)
    assert statuses == [401] * 20 + [429]
    assert elsewhere.status_code == 401
    assert next_window.status_code == 401


def test_the_login_page_answers_429_with_retry_after_when_slowed(app, client, make_user, clock):
    user = make_user("villager")
    address = {"REMOTE_ADDR": an_address()}
    form = {"email": user.email, "password": "wrong password", "csrf_token": page_token(client)}
    with configured(app, LOGIN_RATE_LIMIT=2):
        statuses = [client.post("/login", data=form, environ_base=address) for _ in range(3)]
        # the page and the token endpoint count against the same account
        api = token(client, user.email, "x", address["REMOTE_ADDR"])
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert statuses[2].headers["Retry-After"] == "1"
    assert "尝试太多次" in statuses[2].get_data(as_text=True)
    assert api.status_code == 429
    assert api.mimetype == "application/problem+json"


# ---------------------------------------------------------------------------- proxies


@pytest.fixture
def proxied_app(app: Flask, app_config: dict[str, Any]) -> Iterator[Flask]:
    """The real app behind one trusted proxy (the test's requests come from it)."""
    proxied = create_app({**app_config, "TRUSTED_PROXY_COUNT": 1})
    proxied.config["TESTING"] = True
    yield proxied
    with proxied.app_context():
        db.engine.dispose()


BALANCER = "10.0.0.2"


def test_behind_a_trusted_proxy_one_noisy_address_does_not_lock_out_another(
    proxied_app, db_session, make_user, clock
):
    user = make_user("buyer")
    client = proxied_app.test_client()
    noisy, owner = an_address(), an_address()
    with configured(proxied_app, LOGIN_RATE_LIMIT=2):  # 20 failures per address
        statuses = [
            token(client, f"x{n}@b.cn", "guess", BALANCER, **{"X-Forwarded-For": noisy}).status_code
            for n in range(21)
        ]
        # what the client wrote left of our proxy's entry is not believed
        spoofed = token(
            client, "x@b.cn", "guess", BALANCER, **{"X-Forwarded-For": f"{owner}, {noisy}"}
        )
        signed_in = token(client, user.email, TEST_PASSWORD, BALANCER, **{"X-Forwarded-For": owner})
    assert statuses == [401] * 20 + [429]
    assert spoofed.status_code == 429
    assert signed_in.status_code == 200


def test_the_proxy_s_scheme_is_believed_only_behind_a_trusted_proxy(app, proxied_app, db_session):
    headers = {"X-Forwarded-Proto": "https"}
    behind = proxied_app.test_client().get("/login?lang=en", headers=headers)
    direct = app.test_client().get("/login?lang=en", headers=headers)
    # the lang cookie is Secure exactly when request.is_secure
    assert "Secure" in lang_cookie(behind)
    assert "Secure" not in lang_cookie(direct)


def lang_cookie(response: Any) -> str:
    (cookie,) = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("lang=")]
    return str(cookie)


def test_without_trusted_proxies_a_forwarded_for_header_changes_nothing(app, client, clock):
    address = an_address()
    with configured(app, LOGIN_RATE_LIMIT=2):
        statuses = [
            token(
                client, f"y{n}@b.cn", "guess", address, **{"X-Forwarded-For": an_address()}
            ).status_code
            for n in range(21)
        ]
    assert statuses == [401] * 20 + [429]


# ---------------------------------------------------------------------------- registration


def register(client: Any, address: str) -> Any:
    n = next(_numbers)
    return client.post(
        "/api/v1/auth/register",
        json={
            "email": f"new{n}-{os.getpid()}@b.cn",
            "password": "long-enough",
            "display_name": "x",
        },
        environ_base={"REMOTE_ADDR": address},
    )


def test_registration_is_rate_limited_per_address(app, client):
    busy, other = an_address(), an_address()
    with configured(app, REGISTER_RATE_LIMIT=3):
        statuses = [register(client, busy).status_code for _ in range(3)]
        refused = register(client, busy)
        elsewhere = register(client, other)
    assert statuses == [201, 201, 201]
    assert refused.status_code == 429
    assert refused.get_json()["type"] == "rate-limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= app.config["REGISTER_RATE_WINDOW_S"]
    assert elsewhere.status_code == 201


# ---------------------------------------------------------------------------- without Redis


def a_port_nobody_listens_on() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_sign_in_works_when_redis_does_not_answer(app, app_config, db_session, caplog):
    dead = f"redis://127.0.0.1:{a_port_nobody_listens_on()}/0"
    offline = create_app({**app_config, "REDIS_URL": dead})
    offline.config["TESTING"] = True
    client = offline.test_client()
    try:
        with caplog.at_level(logging.WARNING):
            created = register(client, "192.0.2.50")
            email = created.get_json()["email"] if created.status_code == 201 else None
            signed_in = [token(client, email or "", "long-enough", "192.0.2.50") for _ in range(3)]
            wrong = token(client, email or "", "wrong password", "192.0.2.50")
    finally:
        with offline.app_context():
            db.engine.dispose()
    assert created.status_code == 201
    assert [r.status_code for r in signed_in] == [200, 200, 200]
    assert wrong.status_code == 401
    warnings = [r for r in caplog.records if "Redis does not answer" in r.getMessage()]
    assert len(warnings) == 1  # once, not per request
    assert warnings[0].levelno == logging.WARNING and warnings[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# ---------------------------------------------------------------------------- timing


def test_an_unknown_email_takes_as_long_as_a_known_one_with_a_wrong_password(
    app, client, make_user
):
    """Timed in this thread's CPU time (the test client runs the request here): what an
    attacker reads off the clock of an idle server, without the noise of a busy machine."""
    address = an_address()
    with configured(app, PASSWORD_SCRYPT_N=2**15):  # the production cost
        user = make_user("buyer")
        token(client, "warm-up@nowhere.cn", "x", address)  # the dummy hash is made once

        def duration(email: str) -> float:
            started = time.thread_time()
            assert token(client, email, "wrong password", address).status_code == 401
            return time.thread_time() - started

        known, unknown = [], []
        for n in range(9):  # interleaved, so a slow moment costs both sides
            known.append(duration(user.email))
            unknown.append(duration(f"nobody{n}@nowhere.cn"))
    known_s, unknown_s = statistics.median(known), statistics.median(unknown)
    assert abs(known_s - unknown_s) <= 0.2 * max(known_s, unknown_s), (known_s, unknown_s)
