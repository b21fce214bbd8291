from __future__ import annotations

import pytest

from shop.catalog import service as catalog
from shop.db import db
from shop.errors import Conflict, OutOfStock
from shop.live import service as live_service
from shop.orders import service
from shop.orders.errors import LimitExceeded
from shop.orders.models import OrderState
from tests.shop.conftest import no_refund


def listing_of(session):
    return session.listings[0]


def test_an_order_takes_stock_from_the_listing_at_the_flash_price(
    db_session, make_product, make_live_session, make_user, place
):
    product = make_product(stock=50, price_fen=6800)
    live = make_live_session([(product, 4990, 10, None)])
    buyer = make_user("buyer")
    listing = listing_of(live)
    order = place(
        buyer, [{"listing_id": listing.id, "qty": 3}, {"product_id": product.id, "qty": 1}]
    )
    assert order.state == OrderState.PENDING_PAYMENT
    assert order.total_fen == 3 * 4990 + 6800
    assert [(line.listing_id, line.qty, line.unit_price_fen) for line in order.lines] == [
        (listing.id, 3, 4990),
        (None, 1, 6800),
    ]
    assert live_service.get_listing(db.session, listing.id).remaining == 7
    assert catalog.get_product(db.session, product.id).stock == 50 - 10 - 1


def test_mark_paid_then_cancel_refunds_and_returns_the_stock(
    db_session, make_product, make_live_session, make_user, place
):
    product = make_product(stock=20)
    live = make_live_session([(product, 4990, 10, None)])
    listing = listing_of(live)
    order = place(make_user("buyer"), [{"listing_id": listing.id, "qty": 2}])
    paid = service.mark_paid(db.session, order.id)
    db.session.commit()
    assert paid.state == OrderState.PAID and paid.paid_at is not None
    assert service.mark_paid(db.session, order.id).state == OrderState.PAID  # no-op
    refunded_orders = []
    cancelled = service.cancel_order(db.session, order.id, refund=refunded_orders.append)
    db.session.commit()
    assert cancelled.state == OrderState.REFUNDED
    assert [o.id for o in refunded_orders] == [order.id]
    assert live_service.get_listing(db.session, listing.id).remaining == 10
    with pytest.raises(Conflict):
        service.mark_paid(db.session, order.id)


def test_out_of_stock_and_limit(db_session, make_product, make_live_session, make_user, place):
    product = make_product(stock=20)
    live = make_live_session([(product, 4990, 3, 2)])
    listing = listing_of(live)
    buyer = make_user("buyer")
    place(buyer, [{"listing_id": listing.id, "qty": 2}])
    with pytest.raises(LimitExceeded):
        place(buyer, [{"listing_id": listing.id, "qty": 1}])
    db.session.rollback()
    with pytest.raises(OutOfStock):
        place(make_user("buyer"), [{"listing_id": listing.id, "qty": 2}])
    db.session.rollback()
    order = place(make_user("buyer"), [{"listing_id": listing.id, "qty": 1}])
    cancelled = service.cancel_order(db.session, order.id, refund=no_refund)
    db.session.commit()
    assert cancelled.state == OrderState.CANCELLED
    live_service.end_session(db.session, live.id, streamer_id=live.streamer_id)
    db.session.commit()
    assert catalog.get_product(db.session, product.id).stock == 20 - 2
