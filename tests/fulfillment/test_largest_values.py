"""The largest values the API accepts fit every column they reach, and one past them is
a 422 that writes nothing.

A packing task's piece rate is Σ qty × packing_rate_fen, written by a handler after
the order's commit: if it overflowed there, the order would stay paid and never be
packed. On PostgreSQL a 32-bit column overflows for real; SQLite stores 64 bits anyway.
"""

from __future__ import annotations

from sqlalchemy import func, select

from fulfillment.models import EarningEntry
from fulfillment.schemas import MAX_WEIGHT_G
from shop.catalog.models import Product
from shop.catalog.schemas import MAX_FEN
from shop.db import db
from shop.orders.models import Order
from shop.orders.schemas import MAX_LINES, MAX_QTY
from tests.fulfillment.conftest import SHIPPING, task_of

LARGEST_PIECE_RATE = MAX_LINES * MAX_QTY * MAX_FEN  # ¥19,980,000,000.00
LARGEST_WEIGHT_G = MAX_LINES * MAX_QTY * MAX_WEIGHT_G


def product_body(n: int, **changes) -> dict:
    return {
        "sku": f"BIG-{n}",
        "name": f"大件 Heavy {n}",
        "category": "other",
        "unit_label": "1 t crate",
        "unit_weight_g": MAX_WEIGHT_G,
        "price_fen": MAX_FEN,
        "stock": MAX_QTY,
        "packing_rate_fen": MAX_FEN,
        **changes,
    }


def test_the_largest_order_at_the_largest_packing_rate_is_packed_and_paid_exactly(
    client, auth, make_workshop, villager_at
):
    _, admin = auth("admin")
    _, buyer = auth("buyer")
    workshop = make_workshop()
    _, villager_h = villager_at(workshop)
    product_ids = []
    for n in range(MAX_LINES):
        created = client.post("/api/v1/products", json=product_body(n), headers=admin)
        assert created.status_code == 201, created.json
        product_ids.append(created.json["id"])

    order = client.post(
        "/api/v1/orders",
        json={
            "lines": [{"product_id": p, "qty": MAX_QTY} for p in product_ids],
            "shipping": SHIPPING,
        },
        headers={**buyer, "Idempotency-Key": "largest-order"},
    )
    assert order.status_code == 201, order.json
    assert order.json["total_fen"] == MAX_LINES * MAX_QTY * MAX_FEN
    payment = client.post(f"/api/v1/orders/{order.json['id']}/payment", headers=buyer).json
    paid = client.post(f"/api/v1/payments/sandbox/{payment['payment_id']}/succeed")
    assert paid.status_code == 200 and paid.json["order_state"] == "paid"

    task = task_of(order.json["id"])
    assert task.piece_rate_fen == LARGEST_PIECE_RATE
    assert task.expected_weight_g == LARGEST_WEIGHT_G

    claimed = client.post(f"/api/v1/workshops/{workshop.id}/tasks/claim", headers=villager_h)
    assert claimed.status_code == 200 and claimed.json["piece_rate_fen"] == LARGEST_PIECE_RATE
    done = client.post(f"/api/v1/packing-tasks/{task.id}/complete", json={}, headers=villager_h)
    assert done.status_code == 200, done.json
    entry = db.session.scalar(select(EarningEntry).where(EarningEntry.task_id == task.id))
    assert entry.amount_fen == LARGEST_PIECE_RATE
    earnings = client.get("/api/v1/villagers/me/earnings", headers=villager_h).json
    assert earnings["earnings_fen"] == LARGEST_PIECE_RATE
    report = client.get(f"/api/v1/workshops/{workshop.id}/report", headers=admin).json
    assert report["wages_fen"] == LARGEST_PIECE_RATE


def test_one_past_the_largest_rate_weight_or_quantity_is_refused_and_writes_nothing(
    client, auth, make_product
):
    _, admin = auth("admin")
    _, buyer = auth("buyer")
    for n, change in enumerate(
        [
            {"packing_rate_fen": MAX_FEN + 1},
            {"price_fen": MAX_FEN + 1},
            {"unit_weight_g": MAX_WEIGHT_G + 1},
            {"stock": 1_000_001},
            {"packing_rate_fen": 2**31},
        ]
    ):
        response = client.post("/api/v1/products", json=product_body(n, **change), headers=admin)
        assert response.status_code == 422, change
        assert set(response.json["errors"]) == set(change)
    assert db.session.scalar(select(func.count()).select_from(Product)) == 0

    product = make_product(stock=MAX_QTY + 1)
    url = f"/api/v1/products/{product.id}"
    for change in ({"packing_rate_fen": MAX_FEN + 1}, {"price_fen": MAX_FEN + 1}):
        assert client.patch(url, json=change, headers=admin).status_code == 422
    db.session.expire_all()
    assert (product.packing_rate_fen, product.price_fen) == (50, 3990)

    too_many = [{"product_id": product.id, "qty": 1}] * (MAX_LINES + 1)
    for lines in ([{"product_id": product.id, "qty": MAX_QTY + 1}], too_many):
        response = client.post(
            "/api/v1/orders",
            json={"lines": lines, "shipping": SHIPPING},
            headers={**buyer, "Idempotency-Key": f"past-{len(lines)}"},
        )
        assert response.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0
