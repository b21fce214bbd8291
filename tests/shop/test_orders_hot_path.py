"""What a flash-sale attempt costs the database (README, Benchmarks): most attempts are
refused, and a refusal must not pay for a transaction. PostgreSQL, real commits."""

from __future__ import annotations

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


def test_a_sold_out_attempt_costs_two_reads_and_no_transaction(app, flash_sale):
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
