"""When the process's Redis subscription is lost, memory stops deciding: the stock view
refuses nothing and the token cache serves nothing until the subscription is back
(and then starts from what it hears anew). A Redis of the test's own, stopped and
started again; real commits on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shop.accounts.token_cache import token_cache
from shop.app import create_app
from shop.db import db
from shop.live.stock_view import stock_view
from tests.shop.conftest import SHIPPING
from tests.support.redis_server import RedisServer
from tests.support.statements import statements

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)


def test_a_lost_subscription_stops_memory_from_refusing_until_it_is_back(
    app, app_config, committing, own_redis, auth, make_product, make_live_session
):
    with app.app_context():
        live = make_live_session([(make_product(stock=5), 990, 1, None)])
        listing_id = live.listings[0].id
        _, first = auth("buyer")
        _, second = auth("buyer")
        db.session.remove()
    other = create_app({**app_config, "REDIS_URL": own_redis.url})
    other.config["TESTING"] = True
    client = other.test_client()

    def attempt(headers):
        body = {"lines": [{"listing_id": listing_id, "qty": 1}], "shipping": SHIPPING}
        key = f"lost-{time.monotonic_ns()}"
        return client.post("/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": key})

    assert attempt(first).status_code == 201
    view = stock_view(other)
    assert view is not None
    wait_for(view.listener.healthy)
    tokens = token_cache(other)
    assert tokens is not None
    wait_for(tokens.trusted)  # its revocation poll has run: signed tokens from memory
    assert attempt(second).status_code == 409  # asks the database, learns
    with other.app_context(), statements(other) as sent:
        assert attempt(second).status_code == 409
    assert sent == []  # from memory: no token read, no offer read

    own_redis.stop()
    wait_for(lambda: not view.listener.healthy(), timeout=5)
    with other.app_context(), statements(other) as sent:
        refused = attempt(second)
    assert refused.status_code == 409 and refused.json["type"] == "out-of-stock"
    assert sent.count("SELECT") >= 2  # the token and the offer, from the database

    own_redis.start()
    wait_for(view.listener.healthy)
    assert view.sessions == {}  # what was learned before the loss is gone
    view.listener.stop()
    assert tokens.watch is not None
    tokens.watch.stop()
    with other.app_context():
        db.engine.dispose()
