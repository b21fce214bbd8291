"""What a flash-sale attempt costs the database (README, Benchmarks): most attempts are
refused, and a refusal must not pay for a transaction. PostgreSQL, real commits."""

from __future__ import annotations

import time

import pytest

from shop.db import db
from tests.shop.conftest import SHIPPING
from tests.support.statements import statements

pytestmark = pytest.mark.postgres


@pytest.fixture
def flash_sale(app, committing, auth, make_product, make_live_session):
    """A live listing of one unit; a client; a buyer's headers."""
    with app.app_context():
        product = make_product(stock=5)
        session = make_live_session([(product, 990, 1, None)])
        listing_id = session.listings[0].id
        _, headers = auth("buyer")
        db.session.remove()  # the requests below start with no transaction of this thread
        yield app.test_client(), headers, listing_id


def attempt(client, headers, listing_id, key):
    return client.post(
        "/api/v1/orders",
        json={"lines": [{"listing_id": listing_id, "qty": 1}], "shipping": SHIPPING},
        headers={**headers, "Idempotency-Key": key},
    )


@pytest.fixture
def without_redis_caches(app, monkeypatch):
    """The embedded default's hot path: no stock view, no token cache (every request
    asks the database), whether or not this run has Redis."""
    monkeypatch.delitem(app.extensions, "shanhuo.stock_view", raising=False)
    monkeypatch.delitem(app.extensions, "shanhuo.token_cache", raising=False)


def test_a_sold_out_attempt_costs_two_reads_and_no_transaction(
    app, without_redis_caches, flash_sale
):
    client, headers, listing_id = flash_sale
    with statements(app) as sent:
        placed = attempt(client, headers, listing_id, "first")
    assert placed.status_code == 201
    # token; offer (with the key); INSERT order; INSERT lines; the stock gate; COMMIT
    assert sent == ["SELECT", "SELECT", "BEGIN", "INSERT", "INSERT", "UPDATE", "END"]

    with statements(app) as sent:
        refused = attempt(client, headers, listing_id, "second")
    assert refused.status_code == 409 and refused.json["type"] == "out-of-stock"
    assert sent == ["SELECT", "SELECT"]  # token; offer with the key — no BEGIN, no ROLLBACK

    # A repeat of the placed order still gets its order, sold out or not.
    repeat = attempt(client, headers, listing_id, "first")
    assert repeat.status_code == 200 and repeat.json["id"] == placed.json["id"]


def wait_until(condition, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not within the time given"
        time.sleep(0.01)


@pytest.mark.redis
def test_with_redis_a_known_refusal_and_a_known_token_cost_no_statement(app, flash_sale, auth):
    """Memory refuses (README, "Refusals from memory"): once the process has learned
    the sold-out listing, another buyer's attempt sends nothing to PostgreSQL and gets
    the same problem; the buyer who ordered still gets their order back on a repeat."""
    client, headers, listing_id = flash_sale
    with app.app_context():
        _, other = auth("buyer")
        db.session.remove()
    placed = attempt(client, headers, listing_id, "first")
    assert placed.status_code == 201
    with statements(app) as sent:
        learned = attempt(client, other, listing_id, "other-1")  # asks, and learns
    assert learned.status_code == 409 and sent[-2:] == ["SELECT", "SELECT"]

    with statements(app) as sent:
        refused = attempt(client, other, listing_id, "other-2")
    assert refused.status_code == 409
    assert refused.json == learned.json  # word for word what the database said
    assert sent == []  # no token read, no offer read

    with statements(app) as sent:
        repeat = attempt(client, headers, listing_id, "first")
    assert repeat.status_code == 200 and repeat.json["id"] == placed.json["id"]
    assert "SELECT" in sent  # a buyer who ordered is always asked about
