"""Live sessions over HTTP: schedule, list, start, pin, end, stats — and who may do each."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from shop.db import db
from shop.live.models import LiveSession
from shop.orders import service as order_service
from tests.shop.conftest import SHIPPING

WHEN = "2026-12-01T20:00:00+08:00"


@pytest.fixture
def streamer(auth):
    return auth("streamer")


def schedule(client, headers, title="香信谷 年货节 New-year live"):
    response = client.post(
        "/api/v1/live-sessions", json={"title": title, "scheduled_at": WHEN}, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def add(client, headers, session_id, product_id, **fields):
    body = {"product_id": product_id, "flash_price_fen": 3990, "allotted_qty": 10, **fields}
    return client.post(f"/api/v1/live-sessions/{session_id}/listings", json=body, headers=headers)


def test_a_streamer_schedules_lists_starts_pins_and_ends_a_session(client, streamer, make_product):
    user, headers = streamer
    product = make_product(stock=30, price_fen=6800)
    created = schedule(client, headers)
    assert created["state"] == "scheduled"
    assert created["streamer_id"] == user.id
    assert created["listings"] == [] and created["pinned_listing_id"] is None

    listed = add(client, headers, created["id"], product.id, per_buyer_limit=2)
    assert listed.status_code == 201
    listing = listed.get_json()
    assert listing == {
        "id": listing["id"],
        "session_id": created["id"],
        "product_id": product.id,
        "flash_price_fen": 3990,
        "allotted_qty": 10,
        "remaining": 10,
        "per_buyer_limit": 2,
        "withdrawn": False,
    }
    assert client.get(f"/api/v1/products/{product.id}").get_json()["stock"] == 20

    started = client.post(f"/api/v1/live-sessions/{created['id']}/start", headers=headers)
    assert started.status_code == 200 and started.get_json()["state"] == "live"
    pinned = client.post(
        f"/api/v1/live-sessions/{created['id']}/listings/{listing['id']}/pin", headers=headers
    )
    assert pinned.get_json()["pinned_listing_id"] == listing["id"]

    shown = client.get(f"/api/v1/live-sessions/{created['id']}").get_json()
    assert shown["listings"] == [listing]
    assert shown["pinned_listing_id"] == listing["id"]

    ended = client.post(f"/api/v1/live-sessions/{created['id']}/end", headers=headers)
    assert ended.status_code == 200
    assert ended.get_json()["state"] == "ended"
    assert ended.get_json()["listings"][0]["remaining"] == 0
    assert client.get(f"/api/v1/products/{product.id}").get_json()["stock"] == 30


def test_listing_more_than_the_product_has_is_out_of_stock_and_moves_nothing(
    client, streamer, make_product
):
    _, headers = streamer
    product = make_product(stock=5)
    session = schedule(client, headers)
    response = add(client, headers, session["id"], product.id, allotted_qty=6)
    assert response.status_code == 409
    assert response.get_json()["type"] == "out-of-stock"
    assert client.get(f"/api/v1/products/{product.id}").get_json()["stock"] == 5
    assert client.get(f"/api/v1/live-sessions/{session['id']}").get_json()["listings"] == []


def test_listing_an_unknown_product_is_404(client, streamer):
    _, headers = streamer
    session = schedule(client, headers)
    assert add(client, headers, session["id"], 999_999).status_code == 404


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("flash_price_fen", 39.9),
        ("flash_price_fen", -1),
        ("allotted_qty", 0),
        ("per_buyer_limit", 0),
    ],
)
def test_bad_listing_fields_are_422(client, streamer, make_product, field, value):
    _, headers = streamer
    product = make_product(stock=50)
    session = schedule(client, headers)
    response = add(client, headers, session["id"], product.id, **{field: value})
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert client.get(f"/api/v1/products/{product.id}").get_json()["stock"] == 50


def test_a_naive_scheduled_time_is_422(client, streamer):
    _, headers = streamer
    response = client.post(
        "/api/v1/live-sessions",
        json={"title": "t", "scheduled_at": "2026-12-01T20:00:00"},
        headers=headers,
    )
    assert response.status_code == 422
    assert "scheduled_at" in response.get_json()["errors"]


def test_only_the_owning_streamer_controls_a_session(client, streamer, auth, make_product):
    _, owner = streamer
    _, other = auth("streamer")
    product = make_product(stock=50)
    session = schedule(client, owner)
    listing = add(client, owner, session["id"], product.id).get_json()
    base = f"/api/v1/live-sessions/{session['id']}"
    for path in ("/start", f"/listings/{listing['id']}/pin", "/end"):
        response = client.post(base + path, headers=other)
        assert response.status_code == 403, path
        assert response.get_json()["type"] == "forbidden"
    assert add(client, other, session["id"], product.id).status_code == 403
    assert client.get(base + "/stats", headers=other).status_code == 403
    assert client.get(base).get_json()["state"] == "scheduled"


@pytest.mark.parametrize("role", ["buyer", "villager", "farmer", "admin"])
def test_other_roles_cannot_schedule_or_control_sessions(client, streamer, auth, role):
    _, owner = streamer
    _, headers = auth(role)
    session = schedule(client, owner)
    assert (
        client.post(
            "/api/v1/live-sessions", json={"title": "x", "scheduled_at": WHEN}, headers=headers
        ).status_code
        == 403
    )
    for path in ("/start", "/end", "/listings/1/pin"):
        assert (
            client.post(f"/api/v1/live-sessions/{session['id']}{path}", headers=headers).status_code
            == 403
        )
    assert client.get(f"/api/v1/live-sessions/{session['id']}").get_json()["state"] == "scheduled"
    assert db.session.scalar(select(func.count()).select_from(LiveSession)) == 1


def test_control_endpoints_need_a_token(client):
    assert client.post("/api/v1/live-sessions", json={}).status_code == 401
    assert client.post("/api/v1/live-sessions/1/start").status_code == 401
    assert client.get("/api/v1/live-sessions/1/stats").status_code == 401


def test_state_conflicts(client, streamer, make_product):
    _, headers = streamer
    product = make_product(stock=50)
    session = schedule(client, headers)
    base = f"/api/v1/live-sessions/{session['id']}"
    assert client.post(base + "/start", headers=headers).status_code == 200
    again = client.post(base + "/start", headers=headers)
    assert again.status_code == 409 and again.get_json()["type"] == "conflict"
    listing = add(client, headers, session["id"], product.id).get_json()
    assert client.post(base + "/end", headers=headers).status_code == 200
    assert client.post(base + "/end", headers=headers).status_code == 409
    assert client.post(base + f"/listings/{listing['id']}/pin", headers=headers).status_code == 409
    late = add(client, headers, session["id"], product.id)
    assert late.status_code == 409 and late.get_json()["type"] == "conflict"
    ended = client.get(base).get_json()
    assert ended["state"] == "ended" and ended["pinned_listing_id"] is None
    assert [row["id"] for row in ended["listings"]] == [listing["id"]]
    assert client.get(f"/api/v1/products/{product.id}").get_json()["stock"] == 50


def test_unknown_sessions_and_listings_are_404(client, streamer):
    _, headers = streamer
    assert client.get("/api/v1/live-sessions/999999").status_code == 404
    assert client.post("/api/v1/live-sessions/999999/start", headers=headers).status_code == 404
    assert client.get("/api/v1/live-sessions/999999/stats", headers=headers).status_code == 404
    assert client.get("/api/v1/live-sessions/999999/events").status_code == 404
    session = schedule(client, headers)
    pin = client.post(f"/api/v1/live-sessions/{session['id']}/listings/999999/pin", headers=headers)
    assert pin.status_code == 404


def test_stats_count_paid_orders_buyers_and_returning_buyers(
    client, streamer, auth, make_product, make_user
):
    streamer_user, headers = streamer
    product = make_product(stock=100, price_fen=6800)
    regular = make_user("buyer")
    newcomer = make_user("buyer")
    unpaid = make_user("buyer")
    # The regular bought (and paid) before this session.
    earlier, _ = order_service.place_order(
        db.session,
        buyer_id=regular.id,
        lines=[{"product_id": product.id, "qty": 1}],
        shipping=SHIPPING,
        idempotency_key="before",
        payment_timeout_s=900,
    )
    order_service.mark_paid(db.session, earlier.id)
    db.session.commit()

    session = schedule(client, headers)
    listing = add(client, headers, session["id"], product.id, flash_price_fen=4990).get_json()
    client.post(f"/api/v1/live-sessions/{session['id']}/start", headers=headers)

    def buy(buyer, qty, pay):
        order, _ = order_service.place_order(
            db.session,
            buyer_id=buyer.id,
            lines=[{"listing_id": listing["id"], "qty": qty}],
            shipping=SHIPPING,
            idempotency_key=f"s-{buyer.id}-{qty}",
            payment_timeout_s=900,
        )
        if pay:
            order_service.mark_paid(db.session, order.id)
        db.session.commit()

    buy(regular, 2, True)
    buy(newcomer, 3, True)
    buy(unpaid, 1, False)

    _, admin = auth("admin")
    for who in (headers, admin):
        stats = client.get(f"/api/v1/live-sessions/{session['id']}/stats", headers=who)
        assert stats.status_code == 200
        assert stats.get_json() == {
            "orders": 3,
            "paid_orders": 2,
            "units": 5,
            "gmv_fen": 5 * 4990,
            "buyers": 2,
            "returning_buyers": 1,
        }
    assert streamer_user.id == session["streamer_id"]
