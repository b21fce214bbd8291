"""Market prices: single entry, listing newest first, and the all-or-nothing CSV import."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from contracts.models import MarketPrice
from shop.db import db

HEADER = "product_sku,grade,price_fen_per_kg,effective_on,source\n"


def _count() -> int:
    return db.session.scalar(select(func.count(MarketPrice.id)))


def _import(client, headers, text, content_type="text/csv"):
    return client.post(
        "/api/v1/market-prices/import",
        data=text.encode(),
        headers={**headers, "Content-Type": content_type},
    )


def test_an_admin_records_a_price_and_anyone_lists_them_newest_first(client, auth, shiitake):
    _, admin = auth("admin")
    for grade, price, day in [
        (None, 1680, "2025-09-01"),
        ("premium", 2390, "2025-09-01"),
        (None, 1745, "2025-09-22"),
    ]:
        body = {"product_id": shiitake.id, "price_fen_per_kg": price, "effective_on": day}
        body["source"] = "庆元香菇市场"
        if grade:
            body["grade"] = grade
        response = client.post("/api/v1/market-prices", json=body, headers=admin)
        assert response.status_code == 201, response.get_json()

    listed = client.get(f"/api/v1/market-prices?product_id={shiitake.id}").get_json()["items"]
    assert [(p["grade"], p["price_fen_per_kg"]) for p in listed] == [
        ("standard", 1745),
        ("premium", 2390),
        ("standard", 1680),
    ]
    assert listed[0]["product_sku"] == shiitake.sku
    standard = client.get(f"/api/v1/market-prices?product_id={shiitake.id}&grade=standard")
    assert [p["price_fen_per_kg"] for p in standard.get_json()["items"]] == [1745, 1680]


def test_a_second_price_for_the_same_product_grade_and_day_is_a_conflict(
    client, auth, shiitake, make_price
):
    _, admin = auth("admin")
    make_price(shiitake, 1680, date(2025, 9, 1))
    body = {
        "product_id": shiitake.id,
        "price_fen_per_kg": 1700,
        "effective_on": "2025-09-01",
        "source": "x",
    }
    response = client.post("/api/v1/market-prices", json=body, headers=admin)
    assert response.status_code == 409
    assert response.get_json()["type"] == "conflict"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("price_fen_per_kg", 16.8),
        ("price_fen_per_kg", 0),
        ("price_fen_per_kg", "1680"),
        ("effective_on", "2025-13-01"),
        ("source", ""),
        ("source", "bad\x00byte"),
        ("grade", " standard"),
        ("product_id", 999_999),
    ],
)
def test_bad_prices_are_refused(client, auth, shiitake, field, value):
    _, admin = auth("admin")
    body = {
        "product_id": shiitake.id,
        "price_fen_per_kg": 1680,
        "effective_on": "2025-09-01",
        "source": "market",
        field: value,
    }
    response = client.post("/api/v1/market-prices", json=body, headers=admin)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert _count() == 0


def test_a_good_csv_imports_every_line(client, auth, make_product):
    _, admin = auth("admin")
    a = make_product(sku="QG-SHIITAKE-FRESH")
    b = make_product(sku="QY-WHITE-FUNGUS")
    text = (
        "\ufeff"
        + HEADER
        + "QG-SHIITAKE-FRESH,,1680,2025-09-01,庆元香菇市场\n"
        + 'QG-SHIITAKE-FRESH,premium,2390,2025-09-01,"庆元香菇市场, 花菇"\n'
        + "\n"
        + "QY-WHITE-FUNGUS,standard,5200,2025-09-01,银耳 market\r\n"
    )
    response = _import(client, admin, text)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"imported": 3, "errors": []}
    rows = db.session.scalars(select(MarketPrice).order_by(MarketPrice.id)).all()
    assert [(r.product_id, r.grade, r.price_fen_per_kg, r.source) for r in rows] == [
        (a.id, "standard", 1680, "庆元香菇市场"),
        (a.id, "premium", 2390, "庆元香菇市场, 花菇"),
        (b.id, "standard", 5200, "银耳 market"),
    ]


def test_any_bad_line_imports_nothing_and_every_bad_line_is_reported(
    client, auth, make_product, make_price
):
    _, admin = auth("admin")
    shiitake = make_product(sku="QG-SHIITAKE-FRESH")
    make_price(shiitake, 1500, date(2025, 8, 1))
    text = HEADER + "\n".join(
        [
            "QG-SHIITAKE-FRESH,,1680,2025-09-01,market",  # 2 good
            "NO-SUCH-SKU,,1680,2025-09-01,market",  # 3
            "QG-SHIITAKE-FRESH,,16.80,2025-09-02,market",  # 4 not whole fen
            "QG-SHIITAKE-FRESH,,1680,2025/09/03,market",  # 5 bad date
            "QG-SHIITAKE-FRESH,,1680,2025-09-01,again",  # 6 duplicate of line 2
            "QG-SHIITAKE-FRESH,standard,1500,2025-08-01,stored",  # 7 already stored
            "QG-SHIITAKE-FRESH,,1680",  # 8 too few fields
            "QG-SHIITAKE-FRESH,,0,2025-09-04,",  # 9 zero price, empty source
            "QG-SHIITAKE-FRESH,premium,2390,2025-09-01,market",  # 10 good
        ]
    )
    response = _import(client, admin, text)

    assert response.status_code == 200
    body = response.get_json()
    assert body["imported"] == 0
    assert [e["line"] for e in body["errors"]] == [3, 4, 5, 6, 7, 8, 9]
    messages = {e["line"]: e["message"] for e in body["errors"]}
    assert "NO-SUCH-SKU" in messages[3]
    assert "whole number of fen" in messages[4]
    assert "YYYY-MM-DD" in messages[5]
    assert "Duplicate of line 2" in messages[6]
    assert "already exists" in messages[7]
    assert "Expected 5 fields" in messages[8]
    assert "price_fen_per_kg" in messages[9] and "source" in messages[9]
    assert _count() == 1  # only the price stored before


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sku,price\nQG,1\n",
        HEADER,
        HEADER + '"unterminated,,1,2025-01-01,x\n',
    ],
)
def test_a_csv_without_the_header_or_any_price_is_refused_whole(client, auth, text):
    _, admin = auth("admin")
    response = _import(client, admin, text)
    assert response.status_code == 200
    assert response.get_json()["imported"] == 0
    assert response.get_json()["errors"]
    assert _count() == 0


def test_a_csv_that_is_not_utf8_is_refused(client, auth):
    _, admin = auth("admin")
    response = client.post(
        "/api/v1/market-prices/import",
        data=(HEADER + "香菇,,1,2025-01-01,x\n").encode("gb18030"),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200
    assert response.get_json()["imported"] == 0
    assert "UTF-8" in response.get_json()["errors"][0]["message"]


def test_the_import_wants_csv_not_json(client, auth):
    _, admin = auth("admin")
    response = client.post("/api/v1/market-prices/import", json={"a": 1}, headers=admin)
    assert response.status_code == 415
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("role", ["farmer", "buyer", "villager", "streamer"])
def test_only_admins_record_or_import_prices(client, auth, shiitake, role):
    _, headers = auth(role)
    body = {
        "product_id": shiitake.id,
        "price_fen_per_kg": 1680,
        "effective_on": "2025-09-01",
        "source": "x",
    }
    assert client.post("/api/v1/market-prices", json=body, headers=headers).status_code == 403
    assert _import(client, headers, HEADER).status_code == 403
    assert client.post("/api/v1/market-prices", json=body).status_code == 401
    assert client.get("/api/v1/market-prices").status_code == 200
    assert _count() == 0


def test_prices_list_latest_effective_first_across_pages(client, auth, shiitake, make_price):
    make_price(shiitake, 1745, date(2025, 9, 22))  # recorded first, effective last
    make_price(shiitake, 1500, date(2025, 8, 1))
    make_price(shiitake, 1680, date(2025, 9, 1))
    make_price(shiitake, 2390, date(2025, 9, 1), grade="premium")

    seen, cursor = [], None
    while True:
        url = f"/api/v1/market-prices?product_id={shiitake.id}&limit=1"
        page = client.get(url + (f"&cursor={cursor}" if cursor else "")).get_json()
        seen += [(p["effective_on"], p["price_fen_per_kg"]) for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [
        ("2025-09-22", 1745),
        ("2025-09-01", 2390),
        ("2025-09-01", 1680),
        ("2025-08-01", 1500),
    ]
    for bad in ["nonsense", "2025-09-01:99999999999999999999999", "2025-13-01:1", ":"]:
        assert client.get(f"/api/v1/market-prices?cursor={bad}").status_code == 422
