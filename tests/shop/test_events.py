"""Domain events are delivered after the commit that caused them, never after a rollback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from shop.accounts.models import User
from shop.core import events
from shop.db import db
from shop.orders import service


@pytest.fixture
def received() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    handlers = {}
    for name in ("test.thing", "order.paid", "order.cancelled", "order.refunded", "order.expired"):
        handlers[name] = lambda _name=name, **payload: seen.append((_name, payload))
        events.subscribe(name, handlers[name])
    yield seen
    for name, handler in handlers.items():
        events.unsubscribe(name, handler)


def test_an_event_waits_for_the_commit(db_session, make_user, received):
    make_user("buyer")
    db.session.scalar(select(User.id))  # a transaction is open
    events.emit("test.thing", session=db.session, n=1)
    assert received == []
    db.session.commit()
    assert received == [("test.thing", {"n": 1})]
    db.session.commit()
    assert received == [("test.thing", {"n": 1})]  # delivered once


def test_an_event_is_dropped_on_rollback(db_session, make_user, received):
    make_user("buyer")
    db.session.scalar(select(User.id))
    events.emit("test.thing", session=db.session, n=1)
    db.session.rollback()
    db.session.commit()
    assert received == []


def test_an_event_inside_a_rolled_back_savepoint_is_dropped(db_session, make_user, received):
    db.session.scalar(select(User.id))
    events.emit("test.thing", session=db.session, n=1)
    savepoint = db.session.begin_nested()
    events.emit("test.thing", session=db.session, n=2)
    savepoint.rollback()
    with db.session.begin_nested():
        events.emit("test.thing", session=db.session, n=3)
    assert received == []  # releasing a savepoint is not the commit
    db.session.commit()
    assert [payload["n"] for _, payload in received] == [1, 3]


def test_a_handler_may_use_the_database_and_a_failing_one_does_not_stop_the_others(
    db_session, make_user, received
):
    user = make_user("buyer")
    looked_up = []

    def broken(**payload: Any) -> None:
        raise RuntimeError("boom")

    def reads(**payload: Any) -> None:
        looked_up.append(db.session.get(User, payload["user_id"]).email)
        db.session.commit()

    events.subscribe("test.db", broken)
    events.subscribe("test.db", reads)
    try:
        db.session.scalar(select(User.id))
        events.emit("test.db", session=db.session, user_id=user.id)
        db.session.commit()
    finally:
        events.unsubscribe("test.db", broken)
        events.unsubscribe("test.db", reads)
    assert looked_up == [user.email]


def test_order_events_come_after_the_commit(db_session, make_product, make_user, place, received):
    product = make_product(stock=10)
    buyer = make_user("buyer")
    order = place(buyer, [{"product_id": product.id, "qty": 1}])
    service.mark_paid(db.session, order.id)
    assert received == []
    db.session.commit()
    assert received == [("order.paid", {"order_id": order.id})]
    service.mark_paid(db.session, order.id)  # already paid: no second event
    db.session.commit()
    service.cancel_order(db.session, order.id, refund=lambda o: None)
    db.session.commit()
    assert received[1:] == [("order.refunded", {"order_id": order.id})]
    other = place(buyer, [{"product_id": product.id, "qty": 1}])
    service.cancel_order(db.session, other.id, refund=lambda o: None)
    db.session.commit()
    assert received[2:] == [("order.cancelled", {"order_id": other.id})]


def test_a_failed_refund_rolls_the_cancel_back_and_sends_nothing(
    db_session, make_product, make_user, place, received
):
    product = make_product(stock=10)
    order = place(make_user("buyer"), [{"product_id": product.id, "qty": 2}])
    service.mark_paid(db.session, order.id)
    db.session.commit()
    received.clear()

    def refuse(order: Any) -> None:
        raise RuntimeError("Stripe said no")

    with pytest.raises(RuntimeError):
        service.cancel_order(db.session, order.id, refund=refuse)
    db.session.rollback()
    assert service.get_order(db.session, order.id).state == "paid"
    from shop.catalog import service as catalog

    assert catalog.get_product(db.session, product.id).stock == 8
    db.session.commit()
    assert received == []
