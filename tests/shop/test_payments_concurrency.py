"""Payments under concurrency: real threads, real commits, one connection each.

Written for PostgreSQL (CI), where the racing transactions really overlap and the
UNIQUE keys decide; they also run on the embedded SQLite, whose writers take turns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import func, select

from shop.db import db
from shop.payments.models import Outcome, Payment, ProcessedEvent
from tests.shop import payments_support
from tests.shop.payments_support import (
    Recorder,
    intent_event,
    order_state,
    posts,
    product_stock,
    succeeded_intent,
)
from tests.support.stripe import sign_webhook

stripe_on = payments_support.stripe_on

THREADS = 8


def race(app, call: Callable[[Any], Any], n: int = THREADS) -> list[tuple[int, Any]]:
    """Run ``call(client)`` in n threads released at once; their (status, json)."""
    db.session.close()  # hold no transaction here (on SQLite it would keep the write lock)
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(k: int) -> None:
        client = app.test_client()
        barrier.wait()
        response = call(client)
        results[k] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    return results


@pytest.fixture
def shop(app, committing, auth, make_product, place):
    """In an app context; everything committed is emptied afterwards."""
    with app.app_context():
        buyer, headers = auth("buyer")
        product = make_product(stock=10, price_fen=3990)
        order = place(buyer, [{"product_id": product.id, "qty": 2}])
        # Plain values: the race closes this thread's session, detaching the objects.
        values = SimpleNamespace(
            headers=headers, product_id=product.id, order_id=order.id, expires_at=order.expires_at
        )
        # Requests have sessions of their own: hold no transaction here while they run
        # (on SQLite it would keep the write lock).
        db.session.close()
        yield values


def count(model: Any, **where: Any) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).filter_by(**where))


def test_double_clicks_on_pay_create_one_payment_intent(app, shop, stripe_on):
    headers, order_id = shop.headers, shop.order_id
    url = f"/api/v1/orders/{order_id}/payment"

    results = race(app, lambda c: c.post(url, headers=headers))

    assert {status for status, _ in results} == {200}
    assert len({doc["payment_id"] for _, doc in results}) == 1
    assert len({doc["client_secret"] for _, doc in results}) == 1
    assert count(Payment, order_id=order_id) == 1
    # However many reached Stripe, they all sent the one key, so Stripe made one intent.
    keys = {r["idempotency_key"] for r in posts(stripe_on, "/v1/payment_intents")}
    assert keys == {f"order-{order_id}"}


def test_double_clicks_on_pay_in_the_sandbox_all_get_the_one_stored_payment(app, shop):
    headers, order_id = shop.headers, shop.order_id
    url = f"/api/v1/orders/{order_id}/payment"

    results = race(app, lambda c: c.post(url, headers=headers))

    assert {status for status, _ in results} == {200}
    assert len({doc["payment_id"] for _, doc in results}) == 1
    assert count(Payment, order_id=order_id) == 1


def test_the_same_webhook_event_delivered_at_once_by_many_threads_acts_exactly_once(
    app, shop, stripe_on
):
    from shop.core import events
    from shop.orders import service as orders

    headers, order_id = shop.headers, shop.order_id
    payment = app.test_client().post(f"/api/v1/orders/{order_id}/payment", headers=headers).json
    # Expired, so acting twice would show: the stock would be reserved twice.
    orders.expire_unpaid(db.session, now=shop.expires_at)
    db.session.commit()
    assert product_stock(shop.product_id) == 10
    body, signed = sign_webhook(intent_event(succeeded_intent(payment, order_id)))
    paid = Recorder()
    events.subscribe("order.paid", paid)
    try:
        results = race(
            app, lambda c: c.post("/api/v1/payments/stripe/webhook", data=body, headers=signed)
        )
    finally:
        events.unsubscribe("order.paid", paid)

    assert {status for status, _ in results} == {200}
    assert sorted(doc["duplicate"] for _, doc in results) == [False] + [True] * (THREADS - 1)
    assert {doc["outcome"] for _, doc in results} == {Outcome.PAID}
    assert count(ProcessedEvent) == 1
    assert order_state(order_id) == "paid"
    assert product_stock(shop.product_id) == 8
    assert paid.calls == [{"order_id": order_id}]


def test_a_success_and_a_failure_of_one_payment_at_once_leave_it_paid(app, shop, stripe_on):
    """Out of order and simultaneous: whichever commits first, the failure never wins."""
    headers, order_id = shop.headers, shop.order_id
    payment = app.test_client().post(f"/api/v1/orders/{order_id}/payment", headers=headers).json
    success = sign_webhook(intent_event(succeeded_intent(payment, order_id)))
    failure = sign_webhook(
        intent_event(
            succeeded_intent(payment, order_id, status="requires_payment_method"),
            "payment_intent.payment_failed",
        )
    )
    deliveries = [success, failure] * (THREADS // 2)
    turn = iter(range(THREADS))
    lock = threading.Lock()

    def deliver(client: Any) -> Any:
        with lock:
            body, signed = deliveries[next(turn)]
        return client.post("/api/v1/payments/stripe/webhook", data=body, headers=signed)

    results = race(app, deliver)

    assert {status for status, _ in results} == {200}
    assert order_state(order_id) == "paid"
    db.session.expire_all()
    stored = db.session.scalars(select(Payment).where(Payment.order_id == order_id)).one()
    assert stored.status == "succeeded"
    assert count(ProcessedEvent) == 2
