"""Products have an owner; wages are set by admins.

A streamer changes (PATCH, images) and lists only their own products, and lists house
products (an admin's, with no owner); stock by hand is an admin's alone; a packing rate
is a villager's wage, set only by an admin. Every refusal is a 403 that changes nothing.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select

from shop.catalog.images import ProductImage
from shop.catalog.models import Product, StockMovement
from shop.db import db
from shop.live.models import LiveListing
from tests.shop.test_catalog import SHIITAKE, UNPRICED


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (123, 74, 42)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def scene(client, auth, make_product):
    """Two streamers, one owning product P; a house product H; an admin; an uploaded
    image; a scheduled session for each streamer."""
    owner, owner_h = auth("streamer")
    _, rival_h = auth("streamer")
    _, admin_h = auth("admin")
    product = make_product(owner_id=owner.id, price_fen=3990, stock=10, packing_rate_fen=50)
    house = make_product(price_fen=2990, stock=10, packing_rate_fen=40)
    upload = client.post(
        "/api/v1/media",
        data={"file": (io.BytesIO(_png()), "p.png", "image/png")},
        headers=admin_h,
    )
    assert upload.status_code == 201
    sessions = {}
    for who, headers in (("owner", owner_h), ("rival", rival_h)):
        scheduled_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        created = client.post(
            "/api/v1/live-sessions",
            json={"title": f"{who} live", "scheduled_at": scheduled_at},
            headers=headers,
        )
        assert created.status_code == 201
        sessions[who] = created.json["id"]
    return {
        "owner": owner.id,
        "product": product.id,
        "house": house.id,
        "media": upload.json["id"],
        "sessions": sessions,
        "headers": {"owner": owner_h, "rival": rival_h, "admin": admin_h},
    }


def changes(p: int, media: int, session: int) -> list[tuple[str, str, dict]]:
    """Every way to change product ``p`` or put it on a session."""
    return [
        ("PATCH", f"/api/v1/products/{p}", {"name": "改名 Renamed"}),
        ("PATCH", f"/api/v1/products/{p}", {"price_fen": 1}),
        ("POST", f"/api/v1/products/{p}/stock", {"delta": 5, "reason": "harvest"}),
        ("POST", f"/api/v1/products/{p}/images", {"media_id": media}),
        (
            "POST",
            f"/api/v1/live-sessions/{session}/listings",
            {"product_id": p, "flash_price_fen": 100, "allotted_qty": 3},
        ),
    ]


def state_of(product_id: int) -> tuple:
    """Everything a change to the product could touch."""
    db.session.expire_all()
    product = db.session.get(Product, product_id)
    count = select(func.count())
    return (
        product.name,
        product.price_fen,
        product.packing_rate_fen,
        product.stock,
        product.owner_id,
        db.session.scalar(count.where(ProductImage.product_id == product_id)),
        db.session.scalar(count.where(StockMovement.product_id == product_id)),
        db.session.scalar(count.where(LiveListing.product_id == product_id)),
    )


def refused(response) -> bool:
    return response.status_code == 403 and response.json["type"] == "forbidden"


def test_another_streamer_can_neither_change_restock_illustrate_nor_list_a_product(client, scene):
    before = state_of(scene["product"])
    rival = scene["headers"]["rival"]
    for method, path, body in changes(scene["product"], scene["media"], scene["sessions"]["rival"]):
        response = client.open(path, method=method, json=body, headers=rival)
        assert refused(response), (method, path, body, response.json)
    assert state_of(scene["product"]) == before


def test_a_streamer_lists_a_house_product_but_cannot_change_it(client, scene):
    before = state_of(scene["house"])
    rival = scene["headers"]["rival"]
    *edits, listing = changes(scene["house"], scene["media"], scene["sessions"]["rival"])
    for method, path, body in edits:
        response = client.open(path, method=method, json=body, headers=rival)
        assert refused(response), (method, path, body, response.json)
    assert state_of(scene["house"]) == before
    method, path, body = listing
    assert client.open(path, method=method, json=body, headers=rival).status_code == 201
    assert state_of(scene["house"])[3] == 7  # three units moved into the listing


def test_the_owner_renames_reprices_illustrates_and_lists_their_product(client, scene):
    owner = scene["headers"]["owner"]
    url = f"/api/v1/products/{scene['product']}"
    renamed = client.patch(url, json={"name": "庆元香菇 新", "price_fen": 4290}, headers=owner)
    assert renamed.status_code == 200
    assert (renamed.json["name"], renamed.json["price_fen"]) == ("庆元香菇 新", 4290)
    assert renamed.json["owner_id"] == scene["owner"]
    image = client.post(f"{url}/images", json={"media_id": scene["media"]}, headers=owner)
    assert image.status_code == 200
    assert [i["media_id"] for i in image.json["images"]] == [scene["media"]]
    listed = client.post(
        f"/api/v1/live-sessions/{scene['sessions']['owner']}/listings",
        json={"product_id": scene["product"], "flash_price_fen": 2990, "allotted_qty": 4},
        headers=owner,
    )
    assert listed.status_code == 201
    assert client.get(url).json["stock"] == 6


def test_stock_by_hand_is_for_admins_even_for_the_owner(client, scene):
    url = f"/api/v1/products/{scene['product']}/stock"
    body = {"delta": 5, "reason": "harvest from Zhukou"}
    before = state_of(scene["product"])
    assert refused(client.post(url, json=body, headers=scene["headers"]["owner"]))
    assert state_of(scene["product"]) == before
    restocked = client.post(url, json=body, headers=scene["headers"]["admin"])
    assert restocked.status_code == 200 and restocked.json["stock"] == 15


def test_an_admin_changes_any_product_and_its_packing_rate(client, scene):
    admin = scene["headers"]["admin"]
    for product_id in (scene["product"], scene["house"]):
        url = f"/api/v1/products/{product_id}"
        changed = client.patch(
            url, json={"name": "运营改名", "price_fen": 5000, "packing_rate_fen": 80}, headers=admin
        )
        assert changed.status_code == 200
        assert (changed.json["price_fen"], changed.json["packing_rate_fen"]) == (5000, 80)
        image = client.post(f"{url}/images", json={"media_id": scene["media"]}, headers=admin)
        assert image.status_code == 200
    # an admin's change does not take the product from its owner
    assert client.get(f"/api/v1/products/{scene['product']}").json["owner_id"] == scene["owner"]


@pytest.mark.parametrize("rate", [0, 50, 60, 100_000_000])
def test_a_streamer_sending_a_packing_rate_is_refused_and_nothing_is_written(
    app, client, scene, rate
):
    owner = scene["headers"]["owner"]
    assert app.config["DEFAULT_PACKING_RATE_FEN"] == 50  # so 50 is "even the default"
    created = client.post(
        "/api/v1/products", json={**UNPRICED, "packing_rate_fen": rate}, headers=owner
    )
    assert refused(created)
    assert db.session.scalar(select(Product).where(Product.sku == UNPRICED["sku"])) is None

    before = state_of(scene["product"])
    url = f"/api/v1/products/{scene['product']}"
    for body in ({"packing_rate_fen": rate}, {"name": "改名", "packing_rate_fen": rate}):
        assert refused(client.patch(url, json=body, headers=owner)), body
    assert state_of(scene["product"]) == before


def test_a_user_who_is_admin_and_streamer_makes_house_products(client, auth):
    _, both = auth("admin", "streamer")
    created = client.post("/api/v1/products", json=SHIITAKE, headers=both)
    assert created.status_code == 201
    assert (created.json["owner_id"], created.json["packing_rate_fen"]) == (None, 60)


def test_every_product_response_names_its_owner(client, scene):
    listed = client.get("/api/v1/products?limit=200").json["items"]
    owners = {p["id"]: p["owner_id"] for p in listed}
    assert owners[scene["product"]] == scene["owner"]
    assert owners[scene["house"]] is None
    assert client.get(f"/api/v1/products/{scene['house']}").json["owner_id"] is None
