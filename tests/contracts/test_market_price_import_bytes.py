"""The market-price import never answers 500, whatever bytes it is sent."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from contracts.models import MarketPrice
from shop.db import db

HEADER = "product_sku,grade,price_fen_per_kg,effective_on,source\n"
IMPORT = "/api/v1/market-prices/import"


def price_count() -> int:
    return db.session.scalar(select(func.count()).select_from(MarketPrice))


@pytest.fixture
def admin(auth):
    _, headers = auth("admin")
    return {**headers, "Content-Type": "text/csv"}


@pytest.mark.parametrize("column", range(5))
def test_a_nul_in_any_field_is_a_bad_line_named_by_number_and_nothing_is_imported(
    client, admin, make_product, caplog, column
):
    product = make_product()
    good = [product.sku, "A", "1200", "2030-01-01", "market"]
    bad = list(good)
    bad[column] = bad[column][:1] + "\x00" + bad[column][1:]
    text = HEADER + ",".join(good) + "\n" + ",".join(bad).replace("2030-01-01", "2030-01-02") + "\n"

    response = client.post(IMPORT, data=text.encode(), headers=admin)

    assert response.status_code == 200
    assert response.json["imported"] == 0
    assert [e["line"] for e in response.json["errors"]] == [3]
    assert "NUL" in response.json["errors"][0]["message"]
    assert price_count() == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf" + HEADER.encode(),  # a BOM, then no prices
        b"\xff\xfe" + HEADER.encode("utf-16-le"),
        HEADER.encode() + b"SKU,\xc3\x28,1,2030-01-01,x\n",  # bad UTF-8 in a line
        HEADER.encode() + b"SKU,A,1,2030-01-01," + b"x" * 300_000 + b"\n",  # a huge field
        HEADER.encode() + b"," * 200_000 + b"\n",  # a huge line of empty fields
        HEADER.encode() + b'"unclosed,A,1,2030-01-01,x\n',
        HEADER.encode() + b"SKU,A,1,0001-01-01,x\nSKU,A,1,9999-12-31,x\n",
        HEADER.encode() + b"SKU,A," + b"9" * 5_000 + b",2030-01-01,x\n",
        HEADER.encode() + b"\x00\x00\x00\n",
        HEADER.encode() + "SKU,\ud800,1,2030-01-01,x\n".encode("utf-8", "surrogatepass"),
    ],
    ids=lambda body: repr(body[-40:]),
)
def test_odd_bytes_are_reported_not_a_500(client, admin, caplog, body):
    response = client.post(IMPORT, data=body, headers=admin)

    assert response.status_code in (200, 409, 415, 422)
    assert response.json["imported"] == 0
    assert price_count() == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(tail=st.binary(max_size=400))
def test_any_bytes_after_the_header_never_make_a_500(client, admin, tail):
    response = client.post(IMPORT, data=HEADER.encode() + tail, headers=admin)

    assert response.status_code < 500
    db.session.rollback()
