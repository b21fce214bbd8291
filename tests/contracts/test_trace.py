"""Traceability: a farmer's delivery becomes a lot, the lot is received into stock,
packing a parcel draws from the lots first in, first out, and the parcel's public
page names the farmer and the workshop — and no person's private data."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from contracts import service
from contracts.models import FarmerProfile
from fulfillment import service as fulfillment
from fulfillment.models import PackingTask
from shop.accounts.models import User
from shop.db import db
from tests.conftest import TEST_PASSWORD
from tests.fulfillment.conftest import SHIPPING
from tests.pages.conftest import csrf_token

_keys = itertools.count(1)


@pytest.fixture
def world(client, auth, make_user, shiitake, make_price, make_contract, deliver) -> dict[str, Any]:
    """Two farmers' deliveries of shiitake, as lots in stock; a workshop and its packer."""
    _, admin = auth("admin")
    make_price(shiitake, 1680, date(2025, 9, 1))
    farmers = []
    for name, village, phone in (
        ("李大山", "黄田村 Huangtian", "+86 139 1234 5678"),
        ("吴秀兰", "贤良村 Xianliang", "+86 137 8765 4321"),
    ):
        farmer = make_user("farmer")
        db.session.get(User, farmer.id).display_name = name
        service.update_farmer_profile(db.session, farmer.id, {"village": village, "phone": phone})
        db.session.commit()
        farmers.append(farmer)
    first = client.post(
        f"/api/v1/contracts/{make_contract(farmers[0], shiitake).id}/deliveries",
        json={"delivered_on": "2025-09-10", "weight_g": 3000, "grade": "standard"},
        headers=admin,
    )
    second = client.post(
        f"/api/v1/contracts/{make_contract(farmers[1], shiitake).id}/deliveries",
        json={"delivered_on": "2025-09-12", "weight_g": 5000},
        headers=admin,
    )
    assert first.status_code == 201 and second.status_code == 201
    lots = [first.json["lot_code"], second.json["lot_code"]]
    assert all(lots) and lots[0] != lots[1]
    # whatever stock it had came from no lot: take it out so the lots are all there is
    stock = client.get(f"/api/v1/products/{shiitake.id}").json["stock"]
    client.post(
        f"/api/v1/products/{shiitake.id}/stock",
        json={"delta": -stock, "reason": "counted"},
        headers=admin,
    )
    for code, units in zip(lots, (3, 5), strict=True):
        received = client.post(
            f"/api/v1/products/{shiitake.id}/stock",
            json={"delta": units, "reason": "收货 received", "lot_code": code.lower()},
            headers=admin,
        )
        assert received.status_code == 200, received.json
    workshop = fulfillment.create_workshop(db.session, name="香信谷共富工坊", village="竹口镇")
    db.session.commit()
    packer, packer_headers = auth("villager")
    db.session.get(User, packer.id).display_name = "王阿婆 Granny Wang"
    fulfillment.add_member(db.session, workshop.id, user_id=packer.id, lead=False)
    db.session.commit()
    return {
        "admin": admin,
        "farmers": farmers,
        "lots": lots,
        "workshop": workshop,
        "packer_headers": packer_headers,
        "product": shiitake,
    }


def pack(client: Any, world: dict[str, Any], buyer_headers: dict[str, str], qty: int) -> int:
    """A buyer orders ``qty``, pays; the packer claims and completes. Returns the order id."""
    order = client.post(
        "/api/v1/orders",
        json={"lines": [{"product_id": world["product"].id, "qty": qty}], "shipping": SHIPPING},
        headers={**buyer_headers, "Idempotency-Key": f"trace-{next(_keys)}"},
    )
    assert order.status_code == 201, order.json
    payment = client.post(f"/api/v1/orders/{order.json['id']}/payment", headers=buyer_headers)
    paid = client.post(f"/api/v1/payments/sandbox/{payment.json['payment_id']}/succeed")
    assert paid.status_code == 200
    workshop_id = world["workshop"].id
    task = client.post(
        f"/api/v1/workshops/{workshop_id}/tasks/claim", headers=world["packer_headers"]
    )
    assert task.status_code == 200, task.get_data(as_text=True)
    before = client.get(f"/api/v1/orders/{order.json['id']}", headers=buyer_headers).json
    assert before["trace_code"] is None, "only once packed"
    done = client.post(
        f"/api/v1/packing-tasks/{task.json['id']}/complete",
        json={},
        headers=world["packer_headers"],
    )
    assert done.status_code == 200
    return int(order.json["id"])


def test_a_packed_parcel_traces_back_to_the_farmer_and_the_workshop(client, auth, world):
    _, buyer = auth("buyer")
    order_id = pack(client, world, buyer, 2)
    order = client.get(f"/api/v1/orders/{order_id}", headers=buyer).json
    code = order["trace_code"]
    assert order["state"] == "packed" and code
    task = db.session.scalar(select(PackingTask).where(PackingTask.order_id == order_id))
    assert task is not None and task.trace_code == code

    traced = client.get(f"/api/v1/trace/{code}")
    assert traced.status_code == 200
    body = traced.json
    assert body["product"] == world["product"].name
    assert body["farmer"] == {"display_name": "李大山", "village": "黄田村 Huangtian"}
    assert body["delivered_on"] == "2025-09-10" and body["grade"] == "standard"
    assert body["guaranteed_price"] is True
    assert body["workshop"] == {"name": "香信谷共富工坊", "village": "竹口镇"}
    assert body["packed_on"]
    assert [(lot["code"], lot["units"]) for lot in body["lots"]] == [(world["lots"][0], 2)]
    assert client.get(f"/api/v1/trace/{code.lower()}").status_code == 200

    page = client.get(f"/t/{code}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "李大山" in html and "黄田村" in html and "香信谷共富工坊" in html

    assert client.get("/api/v1/trace/NOSUCHCODE").status_code == 404
    assert client.get("/t/NOSUCHCODE").status_code == 404


def test_parcels_draw_from_the_oldest_lot_first_and_then_the_next(client, auth, world):
    _, buyer = auth("buyer")
    codes = []
    for qty in (2, 2, 1):
        order_id = pack(client, world, buyer, qty)
        codes.append(client.get(f"/api/v1/orders/{order_id}", headers=buyer).json["trace_code"])
    lots = [client.get(f"/api/v1/trace/{code}").json["lots"] for code in codes]
    first, second = world["lots"]
    # lot 1 holds 3 units: 2 to the first parcel, 1 to the second, which takes 1 of lot 2
    assert [(x["code"], x["units"]) for x in lots[0]] == [(first, 2)]
    assert [(x["code"], x["units"]) for x in lots[1]] == [(first, 1), (second, 1)]
    assert [(x["code"], x["units"]) for x in lots[2]] == [(second, 1)]
    assert client.get(f"/api/v1/trace/{codes[2]}").json["farmer"]["display_name"] == "吴秀兰"

    # each farmer's page shows the lots that reached buyers
    from contracts import trace

    mine = trace.farmer_lots(db.session, world["farmers"][0].id)
    assert [(lot["lot_code"], lot["parcels"], lot["units_packed"]) for lot in mine] == [
        (first, 2, 3)
    ]
    token = csrf_token(client.get("/login").get_data(as_text=True))
    signed_in = client.post(
        "/login",
        data={"email": world["farmers"][0].email, "password": TEST_PASSWORD, "csrf_token": token},
    )
    assert signed_in.status_code == 302
    page = client.get("/farmer").get_data(as_text=True)
    assert f'data-lot="{first}"' in page and second not in page


def test_the_public_trace_shows_no_villager_phone_or_address(client, auth, world):
    _, buyer = auth("buyer")
    code = client.get(f"/api/v1/orders/{pack(client, world, buyer, 1)}", headers=buyer).json[
        "trace_code"
    ]
    exposed = client.get(f"/api/v1/trace/{code}").get_data(as_text=True)
    exposed += client.get(f"/t/{code}").get_data(as_text=True)
    phones = [p.phone for p in db.session.scalars(select(FarmerProfile)) if p.phone]
    assert phones, "the farmers have phones on file"
    for private in (
        "王阿婆",
        "Granny Wang",
        *phones,
        "139 1234",
        SHIPPING["name"],
        "王女士",
        SHIPPING["phone"],
        SHIPPING["address"],
        "松源街道",
        "1680",  # the market price
        "price_fen",
        "amount_fen",
    ):
        assert private not in exposed, private


def test_the_packing_slips_qr_code_opens_the_trace_page(client, app, auth, world):
    _, buyer = auth("buyer")
    order_id = pack(client, world, buyer, 1)
    task = db.session.scalar(select(PackingTask).where(PackingTask.order_id == order_id))
    slip = client.get(f"/api/v1/packing-tasks/{task.id}/slip.png", headers=world["packer_headers"])
    assert slip.status_code == 200
    import io

    scanned = [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(slip.data)))]
    assert scanned == [f"{app.config['PUBLIC_BASE_URL']}/t/{task.trace_code}"]


def test_a_lot_of_another_product_or_an_unknown_code_is_refused_and_changes_nothing(
    client, world, make_product
):
    other = make_product(stock=0)
    for code, delta in (
        (world["lots"][0], 5),  # a lot of shiitake into another product
        ("LNOSUCH", 5),
    ):
        response = client.post(
            f"/api/v1/products/{other.id}/stock",
            json={"delta": delta, "reason": "x", "lot_code": code},
            headers=world["admin"],
        )
        assert response.status_code == 422, response.json
    refused = client.post(
        f"/api/v1/products/{world['product'].id}/stock",
        json={"delta": -1, "reason": "x", "lot_code": world["lots"][0]},
        headers=world["admin"],
    )
    assert refused.status_code == 422
    assert client.get(f"/api/v1/products/{other.id}").json["stock"] == 0
