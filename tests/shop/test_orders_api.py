"""Orders over HTTP: placing (idempotent), reading, cancelling, shipping — and who may."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from shop.catalog.models import Product
from shop.db import db
from shop.live.models import LiveListing
from shop.orders import service
from shop.orders.models import Order
from tests.shop.conftest import SHIPPING


@pytest.fixture
def buyer(auth):
    return auth("buyer")


@pytest.fixture
def listing(make_product, make_live_session):
    product = make_product(stock=100, price_fen=6800)
    session = make_live_session([(product, 4990, 10, 3)])
    return session.listings[0]


def order_body(*lines):
    return {"lines": list(lines), "shipping": SHIPPING}


def post_order(client, headers, body, key="k-1"):
    return client.post("/api/v1/orders", json=body, headers={**headers, "Idempotency-Key": key})


def orders_stored() -> int:
    return db.session.scalar(select(func.count()).select_from(Order))


def remaining(listing_id: int) -> int:
    return db.session.get(LiveListing, listing_id).remaining


def test_a_buyer_orders_from_a_live_listing_and_a_product(client, buyer, listing, make_product):
    user, headers = buyer
    other = make_product(stock=5, price_fen=2500)
    response = post_order(
        client,
        headers,
        order_body({"listing_id": listing.id, "qty": 2}, {"product_id": other.id, "qty": 1}),
    )
    assert response.status_code == 201
    order = response.get_json()
    assert order["state"] == "pending_payment"
    assert order["buyer_id"] == user.id
    assert order["total_fen"] == 2 * 4990 + 2500
    assert order["lines"] == [
        {
            "product_id": listing.product_id,
            "listing_id": listing.id,
            "qty": 2,
            "unit_price_fen": 4990,
        },
        {"product_id": other.id, "listing_id": None, "qty": 1, "unit_price_fen": 2500},
    ]
    assert order["shipping"] == SHIPPING
    assert order["expires_at"] > order["created_at"]
    # the answer is the document OrderOut dumps for the stored order, byte for byte
    assert client.get(f"/api/v1/orders/{order['id']}", headers=headers).data == response.data


def test_the_same_key_returns_the_same_order_and_a_different_body_is_422(client, buyer, listing):
    _, headers = buyer
    body = order_body({"listing_id": listing.id, "qty": 1})
    first = post_order(client, headers, body, key="same")
    again = post_order(client, headers, body, key="same")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    other = post_order(
        client, headers, order_body({"listing_id": listing.id, "qty": 2}), key="same"
    )
    assert other.status_code == 422
    assert other.get_json()["type"] == "validation"
    assert "Idempotency-Key" in other.get_json()["errors"]
    shown = client.get(f"/api/v1/live-sessions/{listing.session_id}").get_json()
    assert shown["listings"][0]["remaining"] == 9


def test_the_same_key_from_another_buyer_is_another_order(client, auth, listing):
    body = order_body({"listing_id": listing.id, "qty": 1})
    a = post_order(client, auth("buyer")[1], body, key="shared")
    b = post_order(client, auth("buyer")[1], body, key="shared")
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.get_json()["id"] != b.get_json()["id"]


def test_an_idempotency_key_is_required(client, buyer, listing):
    _, headers = buyer
    response = client.post(
        "/api/v1/orders", json=order_body({"listing_id": listing.id, "qty": 1}), headers=headers
    )
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]


@pytest.mark.parametrize(
    "line",
    [
        {"qty": 1},
        {"listing_id": 1, "product_id": 1, "qty": 1},
        {"listing_id": 1, "qty": 0},
        {"listing_id": 1, "qty": 1.5},
        {"listing_id": 1, "qty": "2"},
        {"listing_id": 999_999, "qty": 1},
        {"product_id": 999_999, "qty": 1},
    ],
)
def test_bad_lines_are_422_and_nothing_is_written(client, buyer, line):
    _, headers = buyer
    response = post_order(client, headers, order_body(line))
    assert response.status_code == 422
    assert response.get_json()["type"] == "validation"
    assert client.get("/api/v1/orders", headers=headers).get_json()["items"] == []


def test_bad_shipping_and_empty_orders_are_422(client, buyer, listing):
    _, headers = buyer
    line = {"listing_id": listing.id, "qty": 1}
    assert post_order(client, headers, {"lines": [], "shipping": SHIPPING}).status_code == 422
    bad_phone = {"lines": [line], "shipping": {**SHIPPING, "phone": "call me"}}
    response = post_order(client, headers, bad_phone)
    assert response.status_code == 422 and "shipping.phone" in response.get_json()["errors"]
    twice = post_order(client, headers, order_body(line, line))
    assert twice.status_code == 422
    assert orders_stored() == 0
    assert remaining(listing.id) == 10


def test_over_the_limit_is_409_limit(client, buyer, listing):
    _, headers = buyer
    assert (
        post_order(
            client, headers, order_body({"listing_id": listing.id, "qty": 2}), "a"
        ).status_code
        == 201
    )
    response = post_order(client, headers, order_body({"listing_id": listing.id, "qty": 2}), "b")
    assert response.status_code == 409
    assert response.get_json()["type"] == "limit"
    assert response.get_json()["per_buyer_limit"] == 3


def test_more_than_remains_is_409_out_of_stock_and_nothing_is_taken(
    client, auth, make_product, make_live_session
):
    product = make_product(stock=100)
    other = make_product(stock=100)
    session = make_live_session([(product, 4990, 2, None)])
    listing = session.listings[0]
    _, headers = auth("buyer")
    response = post_order(
        client,
        headers,
        order_body({"product_id": other.id, "qty": 5}, {"listing_id": listing.id, "qty": 3}),
    )
    assert response.status_code == 409
    assert response.get_json()["type"] == "out-of-stock"
    assert client.get(f"/api/v1/products/{other.id}").get_json()["stock"] == 100
    assert (
        client.get(f"/api/v1/live-sessions/{session.id}").get_json()["listings"][0]["remaining"]
        == 2
    )


def test_a_listing_is_sold_only_while_its_session_is_live(
    client, auth, make_product, make_live_session
):
    from shop.live import service as live

    product = make_product(stock=100)
    session = make_live_session([(product, 4990, 5, None)], live=False)
    _, headers = auth("buyer")
    body = order_body({"listing_id": session.listings[0].id, "qty": 1})
    before = post_order(client, headers, body, "a")
    assert before.status_code == 409 and before.get_json()["type"] == "conflict"
    assert (orders_stored(), remaining(session.listings[0].id)) == (0, 5)
    live.start_session(db.session, session.id, streamer_id=session.streamer_id)
    db.session.commit()
    assert post_order(client, headers, body, "a").status_code == 201
    assert (orders_stored(), remaining(session.listings[0].id)) == (1, 4)


def test_after_the_session_ends_the_listing_is_a_conflict(
    client, auth, make_product, make_live_session
):
    from shop.live import service as live

    product = make_product(stock=100)
    session = make_live_session([(product, 4990, 5, None)])
    live.end_session(db.session, session.id, streamer_id=session.streamer_id)
    db.session.commit()
    _, headers = auth("buyer")
    response = post_order(
        client, headers, order_body({"listing_id": session.listings[0].id, "qty": 1})
    )
    assert response.status_code == 409 and response.get_json()["type"] == "conflict"
    assert orders_stored() == 0
    assert db.session.get(Product, product.id).stock == 100  # the allotment went back


@pytest.mark.parametrize("role", ["streamer", "villager", "farmer", "admin"])
def test_only_buyers_place_orders(client, auth, listing, role):
    _, headers = auth(role)
    response = post_order(client, headers, order_body({"listing_id": listing.id, "qty": 1}))
    assert response.status_code == 403
    assert (orders_stored(), remaining(listing.id)) == (0, 10)


def test_order_endpoints_need_a_token(client):
    assert client.post("/api/v1/orders", json={}).status_code == 401
    assert client.get("/api/v1/orders").status_code == 401
    assert client.get("/api/v1/orders/1").status_code == 401
    assert client.post("/api/v1/orders/1/cancel").status_code == 401
    assert client.post("/api/v1/orders/1/ship", json={}).status_code == 401
    assert client.post("/api/v1/orders/1/delivered").status_code == 401


def test_buyers_see_only_their_own_orders_and_admins_see_all(client, auth, listing):
    _, alice = auth("buyer")
    _, bob = auth("buyer")
    _, admin = auth("admin")
    a = post_order(client, alice, order_body({"listing_id": listing.id, "qty": 1})).get_json()
    b = post_order(client, bob, order_body({"listing_id": listing.id, "qty": 1})).get_json()
    assert [o["id"] for o in client.get("/api/v1/orders", headers=alice).get_json()["items"]] == [
        a["id"]
    ]
    assert client.get(f"/api/v1/orders/{b['id']}", headers=alice).status_code == 404
    assert client.post(f"/api/v1/orders/{b['id']}/cancel", headers=alice).status_code == 404
    everything = client.get("/api/v1/orders?limit=200", headers=admin).get_json()["items"]
    assert {a["id"], b["id"]} <= {o["id"] for o in everything}
    assert client.get(f"/api/v1/orders/{a['id']}", headers=admin).status_code == 200
    assert client.get("/api/v1/orders/999999", headers=admin).status_code == 404
    _, villager = auth("villager")
    assert client.get("/api/v1/orders", headers=villager).status_code == 403
    assert client.get(f"/api/v1/orders/{a['id']}", headers=villager).status_code == 403


def test_orders_are_listed_newest_first_in_pages_and_by_state(client, buyer, make_product):
    _, headers = buyer
    product = make_product(stock=100)
    ids = [
        post_order(
            client, headers, order_body({"product_id": product.id, "qty": 1}), f"p{n}"
        ).get_json()["id"]
        for n in range(3)
    ]
    first = client.get("/api/v1/orders?limit=2", headers=headers).get_json()
    assert [o["id"] for o in first["items"]] == [ids[2], ids[1]]
    rest = client.get(
        f"/api/v1/orders?limit=2&cursor={first['next_cursor']}", headers=headers
    ).get_json()
    assert [o["id"] for o in rest["items"]] == [ids[0]] and rest["next_cursor"] is None
    service.mark_paid(db.session, ids[0])
    db.session.commit()
    paid = client.get("/api/v1/orders?state=paid", headers=headers).get_json()["items"]
    assert [o["id"] for o in paid] == [ids[0]]
    assert client.get("/api/v1/orders?state=lost", headers=headers).status_code == 422


def test_cancelling_an_unpaid_order_returns_its_stock(client, buyer, listing):
    _, headers = buyer
    order = post_order(client, headers, order_body({"listing_id": listing.id, "qty": 3})).get_json()
    response = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=headers)
    assert response.status_code == 200 and response.get_json()["state"] == "cancelled"
    shown = client.get(f"/api/v1/live-sessions/{listing.session_id}").get_json()
    assert shown["listings"][0]["remaining"] == 10
    again = client.post(f"/api/v1/orders/{order['id']}/cancel", headers=headers)
    assert again.status_code == 409 and again.get_json()["type"] == "conflict"
    # the buyer may buy up to the limit again
    assert (
        post_order(
            client, headers, order_body({"listing_id": listing.id, "qty": 3}), "k-2"
        ).status_code
        == 201
    )


def test_admin_ships_a_packed_order_and_marks_it_delivered(client, auth, buyer, listing):
    _, buyer_headers = buyer
    _, admin = auth("admin")
    order = post_order(
        client, buyer_headers, order_body({"listing_id": listing.id, "qty": 1})
    ).get_json()
    ship = {"carrier": "SF Express", "tracking_no": "SF1234567890"}
    early = client.post(f"/api/v1/orders/{order['id']}/ship", json=ship, headers=admin)
    assert early.status_code == 409
    service.mark_paid(db.session, order["id"])
    service.mark_packing(db.session, order["id"])
    service.mark_packed(db.session, order["id"])
    db.session.commit()
    assert (
        client.post(f"/api/v1/orders/{order['id']}/cancel", headers=buyer_headers).status_code
        == 409
    )
    assert client.post(f"/api/v1/orders/{order['id']}/delivered", headers=admin).status_code == 409
    shipped = client.post(f"/api/v1/orders/{order['id']}/ship", json=ship, headers=admin)
    assert shipped.status_code == 200
    assert shipped.get_json()["state"] == "shipped"
    assert shipped.get_json()["carrier"] == "SF Express"
    assert shipped.get_json()["tracking_no"] == "SF1234567890"
    stored = db.session.get(Order, order["id"])
    assert (stored.state, stored.carrier, stored.tracking_no) == (
        "shipped",
        "SF Express",
        "SF1234567890",
    )
    assert stored.shipped_at is not None
    delivered = client.post(f"/api/v1/orders/{order['id']}/delivered", headers=admin)
    assert delivered.status_code == 200 and delivered.get_json()["state"] == "delivered"
    seen = client.get(f"/api/v1/orders/{order['id']}", headers=buyer_headers).get_json()
    assert (seen["state"], seen["tracking_no"]) == ("delivered", "SF1234567890")
    assert db.session.get(Order, order["id"]).state == "delivered"


def test_shipping_needs_admin_and_a_carrier(client, auth, buyer, listing):
    _, buyer_headers = buyer
    order = post_order(
        client, buyer_headers, order_body({"listing_id": listing.id, "qty": 1})
    ).get_json()
    ship = {"carrier": "SF", "tracking_no": "1"}
    for role in ("buyer", "streamer", "villager"):
        _, headers = auth(role)
        assert (
            client.post(
                f"/api/v1/orders/{order['id']}/ship", json=ship, headers=headers
            ).status_code
            == 403
        )
        assert (
            client.post(f"/api/v1/orders/{order['id']}/delivered", headers=headers).status_code
            == 403
        )
    _, admin = auth("admin")
    missing = client.post(
        f"/api/v1/orders/{order['id']}/ship", json={"carrier": "SF"}, headers=admin
    )
    assert missing.status_code == 422 and "tracking_no" in missing.get_json()["errors"]
    assert client.post("/api/v1/orders/999999/ship", json=ship, headers=admin).status_code == 404


def test_an_order_must_be_paid_within_the_configured_timeout(client, app, buyer, listing):
    from datetime import datetime

    _, headers = buyer
    order = post_order(client, headers, order_body({"listing_id": listing.id, "qty": 1})).get_json()
    deadline = datetime.fromisoformat(order["expires_at"]) - datetime.fromisoformat(
        order["created_at"]
    )
    assert deadline.total_seconds() == app.config["ORDER_PAYMENT_TIMEOUT_S"]
