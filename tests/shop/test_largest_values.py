"""Stock and sums in the shop at the largest values the API accepts (on PostgreSQL a
32-bit column or product overflows for real; SQLite stores 64 bits anyway)."""

from __future__ import annotations

from sqlalchemy import func, select

from shop.catalog import service as catalog
from shop.catalog.models import StockMovement
from shop.catalog.schemas import MAX_UNITS
from shop.db import db
from shop.live.schemas import MAX_FEN
from shop.orders.schemas import MAX_QTY
from tests.shop.conftest import SHIPPING

INT32_MAX = 2**31 - 1


def test_stock_added_by_hand_may_pass_what_32_bits_hold(client, auth, make_product):
    _, admin = auth("admin")
    product = make_product(stock=0)
    # units coming back (expiry, a session's end) are never refused: raise the stock
    # near the old limit through that same path, then add by hand past it
    catalog.put_back_stock(db.session, product.id, INT32_MAX - 10)
    db.session.commit()
    url = f"/api/v1/products/{product.id}/stock"
    added = client.post(url, json={"delta": MAX_UNITS, "reason": "harvest"}, headers=admin)
    assert added.status_code == 200, added.json
    assert added.json["stock"] == INT32_MAX - 10 + MAX_UNITS
    movement = db.session.scalar(
        select(StockMovement).where(StockMovement.product_id == product.id)
    )
    assert movement.stock_after == INT32_MAX - 10 + MAX_UNITS
    past = client.post(url, json={"delta": MAX_UNITS + 1, "reason": "x"}, headers=admin)
    assert past.status_code == 422
    count = select(func.count()).where(StockMovement.product_id == product.id)
    assert db.session.scalar(count) == 1


def test_session_stats_sum_the_largest_flash_price_times_the_largest_quantity(
    client, auth, make_product, make_live_session
):
    product = make_product(stock=MAX_QTY)
    live = make_live_session([(product, MAX_FEN, MAX_QTY, None)])
    listing_id = live.listings[0].id
    _, buyer = auth("buyer")
    order = client.post(
        "/api/v1/orders",
        json={"lines": [{"listing_id": listing_id, "qty": MAX_QTY}], "shipping": SHIPPING},
        headers={**buyer, "Idempotency-Key": "largest-live-order"},
    )
    assert order.status_code == 201, order.json
    payment = client.post(f"/api/v1/orders/{order.json['id']}/payment", headers=buyer).json
    client.post(f"/api/v1/payments/sandbox/{payment['payment_id']}/succeed")

    _, admin = auth("admin")
    stats = client.get(f"/api/v1/live-sessions/{live.id}/stats", headers=admin)
    assert stats.status_code == 200, stats.json
    assert stats.json["gmv_fen"] == MAX_QTY * MAX_FEN  # ¥999,000,000.00 > 2³¹ − 1 fen
    assert stats.json["units"] == MAX_QTY
