"""Unpaid orders expire after ORDER_PAYMENT_TIMEOUT_S; the beat task releases their stock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from shop.catalog import service as catalog
from shop.db import db, utcnow
from shop.live import service as live
from shop.orders import service, tasks
from shop.orders.models import Order, OrderState


def overdue(order_id: int) -> None:
    db.session.execute(
        update(Order).where(Order.id == order_id).values(expires_at=utcnow() - timedelta(seconds=1))
    )
    db.session.commit()


def test_the_expiry_task_runs_every_minute(app):
    entry = app.extensions["celery"].conf.beat_schedule["orders.expire_unpaid"]
    assert (entry["task"], entry["schedule"]) == ("orders.expire_unpaid", 60.0)


def test_an_order_expires_at_its_deadline_not_before(
    db_session, make_product, make_live_session, make_user, place
):
    product = make_product(stock=20)
    listing = make_live_session([(product, 3990, 10, None)]).listings[0]
    order = place(make_user("buyer"), [{"listing_id": listing.id, "qty": 4}])
    assert order.expires_at - order.created_at == timedelta(seconds=900)
    assert tasks.expire_unpaid() == 0
    assert service.get_order(db.session, order.id).state == OrderState.PENDING_PAYMENT

    overdue(order.id)
    assert tasks.expire_unpaid() == 1
    assert service.get_order(db.session, order.id).state == OrderState.EXPIRED
    assert live.get_listing(db.session, listing.id).remaining == 10

    # Running it again changes nothing.
    assert tasks.expire_unpaid() == 0
    assert service.get_order(db.session, order.id).state == OrderState.EXPIRED
    assert live.get_listing(db.session, listing.id).remaining == 10
    assert catalog.get_product(db.session, product.id).stock == 10


def test_expired_units_go_to_the_product_once_the_session_has_ended(
    db_session, make_product, make_live_session, make_user, place
):
    product = make_product(stock=20)
    session = make_live_session([(product, 3990, 10, 5)])
    listing = session.listings[0]
    buyer = make_user("buyer")
    order = place(
        buyer, [{"listing_id": listing.id, "qty": 4}, {"product_id": product.id, "qty": 1}]
    )
    live.end_session(db.session, session.id, streamer_id=session.streamer_id)
    db.session.commit()
    assert catalog.get_product(db.session, product.id).stock == 10 - 1 + 6

    overdue(order.id)
    assert tasks.expire_unpaid() == 1
    assert live.get_listing(db.session, listing.id).remaining == 0
    assert catalog.get_product(db.session, product.id).stock == 20


def test_paid_and_cancelled_orders_are_not_expired(db_session, make_product, make_user, place):
    product = make_product(stock=20)
    buyer = make_user("buyer")
    paid = place(buyer, [{"product_id": product.id, "qty": 1}])
    cancelled = place(buyer, [{"product_id": product.id, "qty": 1}])
    service.mark_paid(db.session, paid.id)
    service.cancel_order(db.session, cancelled.id, refund=lambda order: None)
    db.session.commit()
    overdue(paid.id)
    overdue(cancelled.id)
    assert tasks.expire_unpaid() == 0
    assert service.get_order(db.session, paid.id).state == OrderState.PAID
    assert service.get_order(db.session, cancelled.id).state == OrderState.CANCELLED
    assert catalog.get_product(db.session, product.id).stock == 19


def test_a_late_payment_re_reserves_the_stock_of_an_expired_order(
    db_session, make_product, make_live_session, make_user, place
):
    product = make_product(stock=20)
    listing = make_live_session([(product, 3990, 10, None)]).listings[0]
    order = place(make_user("buyer"), [{"listing_id": listing.id, "qty": 3}])
    overdue(order.id)
    tasks.expire_unpaid()
    paid = service.mark_paid(db.session, order.id)
    db.session.commit()
    assert paid.state == OrderState.PAID
    assert live.get_listing(db.session, listing.id).remaining == 7


def test_a_late_payment_takes_from_the_product_after_the_session_ended(
    db_session, make_product, make_live_session, make_user, place
):
    product = make_product(stock=20)
    session = make_live_session([(product, 3990, 10, None)])
    order = place(make_user("buyer"), [{"listing_id": session.listings[0].id, "qty": 3}])
    overdue(order.id)
    tasks.expire_unpaid()
    live.end_session(db.session, session.id, streamer_id=session.streamer_id)
    db.session.commit()
    assert catalog.get_product(db.session, product.id).stock == 20
    service.mark_paid(db.session, order.id)
    db.session.commit()
    assert catalog.get_product(db.session, product.id).stock == 17


def test_a_late_payment_that_cannot_be_re_reserved_is_out_of_stock_and_changes_nothing(
    db_session, make_product, make_live_session, make_user, place
):
    import pytest

    from shop.errors import OutOfStock

    product = make_product(stock=3)
    other = make_product(stock=5)
    listing = make_live_session([(product, 3990, 3, None)]).listings[0]
    order = place(
        make_user("buyer"),
        [{"listing_id": listing.id, "qty": 3}, {"product_id": other.id, "qty": 2}],
    )
    overdue(order.id)
    tasks.expire_unpaid()
    place(make_user("buyer"), [{"listing_id": listing.id, "qty": 1}])
    with pytest.raises(OutOfStock):
        service.mark_paid(db.session, order.id)
    db.session.rollback()
    assert service.get_order(db.session, order.id).state == OrderState.EXPIRED
    assert catalog.get_product(db.session, other.id).stock == 5
    assert live.get_listing(db.session, listing.id).remaining == 2
