from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from shop import config
from shop.catalog import service as catalog
from shop.catalog.models import Product, StockMovement
from shop.db import db
from shop.errors import OutOfStock

SHIITAKE = {
    "sku": "QG-SHIITAKE-500",
    "name": "庆元香菇 Qingyuan shiitake",
    "category": "mushroom",
    "unit_label": "500 g bag",
    "unit_weight_g": 500,
    "price_fen": 6800,
    "stock": 40,
    "packing_rate_fen": 60,
}


#: what a streamer sends: a packing rate is a wage, which only an admin sets
UNPRICED = {k: v for k, v in SHIITAKE.items() if k != "packing_rate_fen"}


def test_a_streamer_adds_a_product_of_their_own_and_anyone_can_see_it(app, client, auth):
    streamer_user, streamer = auth("streamer")
    created = client.post("/api/v1/products", json=UNPRICED, headers=streamer)
    assert created.status_code == 201
    product = created.get_json()
    assert product == {
        "id": product["id"],
        **UNPRICED,
        "packing_rate_fen": app.config["DEFAULT_PACKING_RATE_FEN"],
        "owner_id": streamer_user.id,
        "images": [],
    }
    assert client.get(f"/api/v1/products/{product['id']}").get_json() == product


def test_an_admin_adds_a_house_product_with_its_packing_rate(client, auth):
    _, admin = auth("admin")
    created = client.post("/api/v1/products", json=SHIITAKE, headers=admin)
    assert created.status_code == 201
    assert created.get_json() == {
        "id": created.get_json()["id"],
        **SHIITAKE,
        "owner_id": None,
        "images": [],
    }


def test_a_product_created_without_a_packing_rate_takes_the_configured_default(
    app, client, auth, monkeypatch
):
    monkeypatch.setitem(app.config, "DEFAULT_PACKING_RATE_FEN", 75)
    _, admin = auth("admin")
    created = client.post("/api/v1/products", json=UNPRICED, headers=admin)
    assert created.get_json()["packing_rate_fen"] == 75
    assert db.session.get(Product, created.get_json()["id"]).packing_rate_fen == 75


def test_the_default_packing_rate_is_fifty_fen_a_unit(monkeypatch):
    monkeypatch.delenv("DEFAULT_PACKING_RATE_FEN", raising=False)
    assert config.load()["DEFAULT_PACKING_RATE_FEN"] == 50


def test_a_negative_default_packing_rate_is_refused_at_startup():
    with pytest.raises(RuntimeError, match="DEFAULT_PACKING_RATE_FEN"):
        config.load({"DEFAULT_PACKING_RATE_FEN": -1})


def test_a_duplicate_sku_is_a_conflict(client, auth):
    _, admin = auth("admin")
    assert client.post("/api/v1/products", json=SHIITAKE, headers=admin).status_code == 201
    again = client.post("/api/v1/products", json=SHIITAKE, headers=admin)
    assert again.status_code == 409
    assert again.get_json()["type"] == "conflict"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price_fen", 12.5),
        ("price_fen", -1),
        ("stock", -3),
        ("category", "seafood"),
        ("unit_weight_g", 0),
        ("sku", ""),
        ("sku", "has space"),
    ],
)
def test_bad_product_fields_are_refused_and_nothing_is_written(client, auth, field, value):
    _, admin = auth("admin")
    response = client.post("/api/v1/products", json={**SHIITAKE, field: value}, headers=admin)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert db.session.scalar(select(Product).where(Product.sku == SHIITAKE["sku"])) is None


@pytest.mark.parametrize("role", ["buyer", "villager", "farmer"])
def test_only_admins_and_streamers_manage_products(client, auth, make_product, role):
    product = make_product()
    _, headers = auth(role)
    assert client.post("/api/v1/products", json=SHIITAKE, headers=headers).status_code == 403
    assert (
        client.patch(f"/api/v1/products/{product.id}", json={"name": "x"}, headers=headers)
    ).status_code == 403


def test_only_admins_adjust_stock(client, auth, make_product):
    product = make_product()
    _, streamer = auth("streamer")
    response = client.post(
        f"/api/v1/products/{product.id}/stock", json={"delta": 5, "reason": "x"}, headers=streamer
    )
    assert response.status_code == 403


def test_patch_changes_only_name_price_and_packing_rate(client, auth, make_product):
    product = make_product(price_fen=3990, stock=7)
    _, admin = auth("admin")
    response = client.patch(
        f"/api/v1/products/{product.id}", json={"price_fen": 4290, "name": "新名"}, headers=admin
    )
    assert response.status_code == 200
    assert response.get_json()["price_fen"] == 4290
    assert response.get_json()["name"] == "新名"
    refused = client.patch(f"/api/v1/products/{product.id}", json={"stock": 999}, headers=admin)
    assert refused.status_code == 422
    shown = client.get(f"/api/v1/products/{product.id}").get_json()
    assert (shown["stock"], shown["price_fen"], shown["name"]) == (7, 4290, "新名")


def test_stock_adjustments_keep_their_reason_in_the_history(client, auth, make_product):
    product = make_product(stock=10)
    admin_user, admin = auth("admin")
    url = f"/api/v1/products/{product.id}/stock"
    added = client.post(url, json={"delta": 25, "reason": "harvest from Zhukou"}, headers=admin)
    assert added.status_code == 200 and added.get_json()["stock"] == 35
    removed = client.post(url, json={"delta": -5, "reason": "damaged in transit"}, headers=admin)
    assert removed.get_json()["stock"] == 30
    history = db.session.scalars(
        select(StockMovement)
        .where(StockMovement.product_id == product.id)
        .order_by(StockMovement.id)
    ).all()
    assert [(m.delta, m.stock_after, m.reason, m.actor_id) for m in history] == [
        (25, 35, "harvest from Zhukou", admin_user.id),
        (-5, 30, "damaged in transit", admin_user.id),
    ]


def test_stock_never_goes_below_zero(client, auth, make_product):
    product = make_product(stock=3)
    _, admin = auth("admin")
    response = client.post(
        f"/api/v1/products/{product.id}/stock", json={"delta": -4, "reason": "x"}, headers=admin
    )
    assert response.status_code == 409
    assert response.get_json()["type"] == "out-of-stock"
    assert client.get(f"/api/v1/products/{product.id}").get_json()["stock"] == 3
    assert (
        db.session.scalar(select(StockMovement).where(StockMovement.product_id == product.id))
        is None
    )


def test_unknown_products_are_404(client, auth):
    _, admin = auth("admin")
    assert client.get("/api/v1/products/999999").status_code == 404
    assert (
        client.post(
            "/api/v1/products/999999/stock", json={"delta": 1, "reason": "x"}, headers=admin
        )
    ).status_code == 404


def test_products_are_listed_in_pages(client, make_product):
    ids = [make_product().id for _ in range(5)]
    first = client.get("/api/v1/products?limit=2").get_json()
    assert [p["id"] for p in first["items"]] == ids[:2]
    second = client.get(f"/api/v1/products?limit=2&cursor={first['next_cursor']}").get_json()
    assert [p["id"] for p in second["items"]] == ids[2:4]
    assert client.get("/api/v1/products?limit=201").status_code == 422
    assert client.get("/api/v1/products?cursor=abc").status_code == 422


@pytest.mark.postgres
def test_forty_racing_takes_of_ten_units_leave_exactly_zero(committing):
    app = committing
    with app.app_context():
        product = catalog.create_product(db.session, **{**SHIITAKE, "stock": 10})
        db.session.commit()
        product_id = product.id

    outcomes: list[str] = []
    barrier = threading.Barrier(40)

    def take() -> None:
        with app.app_context():
            barrier.wait()
            try:
                catalog.take_stock(db.session, product_id, 1)
                db.session.commit()
                outcomes.append("took")
            except OutOfStock:
                db.session.rollback()
                outcomes.append("out")

    threads = [threading.Thread(target=take) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("took") == 10
    assert outcomes.count("out") == 30
    with app.app_context():
        assert db.session.get(Product, product_id).stock == 0
