"""Stock never oversells: many buyers at once, real commits, separate connections.

Written for PostgreSQL (CI); they also run on the embedded SQLite, whose writers
take turns.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from shop.catalog.models import Product
from shop.db import db
from shop.live.models import LiveListing
from shop.orders.models import Order, OrderLine
from tests.shop.conftest import SHIPPING


def race(app, calls: list[tuple[dict[str, str], dict[str, Any], str]]) -> list[Any]:
    """POST every (headers, body, key) at once, one thread and client each; the responses."""
    # Leave no transaction open in this thread (on SQLite it would hold the write lock).
    db.session.close()
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(n: int) -> None:
        headers, body, key = calls[n]
        client = app.test_client()
        barrier.wait()
        response = client.post(
            "/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": key}
        )
        results[n] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request hung (deadlock?)"
    return results


def body(*lines: dict[str, int]) -> dict[str, Any]:
    return {"lines": list(lines), "shipping": SHIPPING}


@pytest.fixture
def shop(app, committing, auth, make_product, make_live_session):
    """Runs inside an app context; everything committed is emptied afterwards."""
    with app.app_context():
        yield {"auth": auth, "make_product": make_product, "make_live_session": make_live_session}


def remaining(app, listing_id: int) -> int:
    with app.app_context():
        db.session.expire_all()
        return db.session.scalar(select(LiveListing.remaining).where(LiveListing.id == listing_id))


def count_orders(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Order.id)))


def test_fifty_buyers_racing_for_ten_units_get_exactly_ten_orders(app, shop):
    product = shop["make_product"](stock=100)
    listing = shop["make_live_session"]([(product, 3990, 10, None)]).listings[0]
    buyers = [shop["auth"]("buyer")[1] for _ in range(50)]

    results = race(app, [(h, body({"listing_id": listing.id, "qty": 1}), "k") for h in buyers])

    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 10, 409: 40}
    assert {doc["type"] for status, doc in results if status == 409} == {"out-of-stock"}
    assert remaining(app, listing.id) == 0
    assert count_orders(app) == 10
    with app.app_context():
        assert db.session.scalar(select(func.sum(OrderLine.qty))) == 10


def test_per_buyer_limits_hold_when_one_buyer_sends_many_orders_at_once(app, shop):
    product = shop["make_product"](stock=100)
    listing = shop["make_live_session"]([(product, 3990, 30, 2)]).listings[0]
    buyers = [(user.id, headers) for user, headers in (shop["auth"]("buyer") for _ in range(10))]
    calls = [
        (headers, body({"listing_id": listing.id, "qty": 1}), f"k{n}")
        for _, headers in buyers
        for n in range(5)
    ]

    results = race(app, calls)

    statuses = Counter(status for status, _ in results)
    assert statuses == {201: 20, 409: 30}
    assert {doc["type"] for status, doc in results if status == 409} == {"limit"}
    with app.app_context():
        per_buyer = dict(
            db.session.execute(
                select(Order.buyer_id, func.count(Order.id)).group_by(Order.buyer_id)
            )
            .tuples()
            .all()
        )
    assert per_buyer == {user_id: 2 for user_id, _ in buyers}
    assert remaining(app, listing.id) == 10


def test_limits_and_scarcity_together_never_oversell(app, shop):
    product = shop["make_product"](stock=100)
    listing = shop["make_live_session"]([(product, 3990, 10, 3)]).listings[0]
    buyers = [shop["auth"]("buyer")[1] for _ in range(10)]
    calls = [
        (h, body({"listing_id": listing.id, "qty": 2}), f"k{n}") for h in buyers for n in range(3)
    ]

    results = race(app, calls)

    accepted = [doc for status, doc in results if status == 201]
    assert len(accepted) == 5  # 10 units, 2 each
    assert {doc["type"] for status, doc in results if status == 409} <= {"limit", "out-of-stock"}
    assert remaining(app, listing.id) == 0


def test_two_line_orders_racing_in_opposite_line_order_neither_deadlock_nor_split(app, shop):
    shiitake = shop["make_product"](stock=100)
    fungus = shop["make_product"](stock=100)
    pomelo = shop["make_product"](stock=12, price_fen=8800)
    session = shop["make_live_session"]([(shiitake, 3990, 10, None), (fungus, 2990, 15, None)])
    first, second = session.listings
    buyers = [shop["auth"]("buyer")[1] for _ in range(40)]
    forward = body({"listing_id": first.id, "qty": 1}, {"listing_id": second.id, "qty": 1})
    backward = body(
        {"product_id": pomelo.id, "qty": 1},
        {"listing_id": second.id, "qty": 1},
        {"listing_id": first.id, "qty": 1},
    )
    calls = [(h, forward if n % 2 else backward, f"k{n}") for n, h in enumerate(buyers)]

    results = race(app, calls)

    statuses = Counter(status for status, _ in results)
    assert set(statuses) <= {201, 409}, results  # no 500: no deadlock error surfaced
    assert statuses[201] == 10
    assert remaining(app, first.id) == 0
    assert remaining(app, second.id) == 5
    with app.app_context():
        orders = db.session.scalars(select(Order)).all()
        assert len(orders) == 10
        for order in orders:  # every accepted order has all its lines
            assert len(order.lines) in (2, 3)
            assert {line.listing_id for line in order.lines} >= {first.id, second.id}
        pomelo_sold = sum(len(o.lines) == 3 for o in orders)
        assert db.session.get(Product, pomelo.id).stock == 12 - pomelo_sold


def test_the_same_key_sent_ten_times_at_once_makes_one_order(app, shop):
    product = shop["make_product"](stock=100)
    listing = shop["make_live_session"]([(product, 3990, 10, None)]).listings[0]
    _, headers = shop["auth"]("buyer")

    results = race(app, [(headers, body({"listing_id": listing.id, "qty": 2}), "same")] * 10)

    assert Counter(status for status, _ in results) == {201: 1, 200: 9}
    assert len({doc["id"] for _, doc in results}) == 1
    assert remaining(app, listing.id) == 8
    assert count_orders(app) == 1


@pytest.mark.postgres
def test_an_order_undone_to_break_a_deadlock_answers_503_retry_and_the_retry_places_it(app, shop):
    """A real deadlock on PostgreSQL: the order (the ordinary way) has written its row
    and waits at the stock gate for a product row another transaction holds, which then
    writes an order with the same buyer and key (as a request of another process would).
    PostgreSQL undoes the order's transaction; the buyer gets 503 with Retry-After —
    not a 500 — nothing of it was written, and the same request sent again is placed."""
    import psycopg

    product = shop["make_product"](stock=5)
    buyer, headers = shop["auth"]("buyer")
    product_id, buyer_id = product.id, buyer.id
    url = db.engine.url.render_as_string(hide_password=False).replace("+psycopg", "")
    db.session.close()
    other = psycopg.connect(url)
    other.execute("SET deadlock_timeout = '30s'")  # the order's side finds the deadlock
    other.execute("UPDATE products SET stock = stock WHERE id = %s", (product_id,))
    order = body({"product_id": product_id, "qty": 1})
    answers: list[Any] = []
    placing = threading.Thread(
        target=lambda: answers.append(
            app.test_client().post(
                "/api/v1/orders", json=order, headers={**headers, "Idempotency-Key": "k1"}
            )
        )
    )
    placing.start()
    try:
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        for _ in range(500):  # until the order waits at the stock gate
            if other.execute(waiting).fetchone()[0]:
                break
            time.sleep(0.01)
        other.execute(
            "INSERT INTO orders (buyer_id, state, total_fen, idempotency_key, request_hash,"
            " ship_name, ship_phone, ship_address, ship_region, created_at, expires_at)"
            " VALUES (%s, 'pending_payment', 0, 'k1', 'x', 'n', '000', 'a', 'r', now(), now())"
            " ON CONFLICT DO NOTHING",
            (buyer_id,),
        )
        placing.join(30)
    finally:
        other.rollback()
        other.close()
    (response,) = answers
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "unavailable" and response.headers["Retry-After"] == "1"
    assert "nothing was changed" in response.json["detail"]
    with app.app_context():
        assert db.session.scalar(select(func.count(Order.id))) == 0
        assert db.session.get(Product, product_id).stock == 5

    again = app.test_client().post(
        "/api/v1/orders", json=order, headers={**headers, "Idempotency-Key": "k1"}
    )
    assert again.status_code == 201
    assert count_orders(app) == 1
