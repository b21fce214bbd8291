"""Market price endpoints: single entry, all-or-nothing CSV import, the list."""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from contracts import prices
from contracts.errors import InvalidCsv, UnsupportedCsv
from contracts.models import MarketPrice
from contracts.schemas import (
    ImportOut,
    MarketPriceIn,
    MarketPriceOut,
    MarketPricePage,
    MarketPriceQuery,
)
from shop.accounts.models import Role
from shop.api import Blueprint
from shop.auth import current_user, public, requires
from shop.catalog.models import Product
from shop.db import db
from shop.errors import Conflict
from shop.i18n import _l

blp = Blueprint(
    "market_prices",
    __name__,
    url_prefix="/api/v1",
    description="Market prices per product and grade, the base of contract pricing",
)


def market_price_json(price: MarketPrice, sku: str) -> dict[str, Any]:
    return {
        "id": price.id,
        "product_id": price.product_id,
        "product_sku": sku,
        "grade": price.grade,
        "price_fen_per_kg": price.price_fen_per_kg,
        "effective_on": price.effective_on,
        "source": price.source,
        "created_at": price.created_at,
    }


@blp.route("/market-prices", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(MarketPriceIn)
@blp.response(201, MarketPriceOut)
@blp.alt_response(409, response="CONFLICT", description="a price for this product/grade/date")
def add_market_price(data: dict[str, Any]) -> Any:
    """Record a product's market price for a grade, in force from ``effective_on``."""
    try:
        price = prices.add_market_price(db.session, **data, created_by=current_user().id)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(_l("A price for this product, grade and date was just recorded.")) from None
    product = db.session.get(Product, price.product_id)
    assert product is not None
    return market_price_json(price, product.sku)


IMPORT_DOC = {
    "description": (
        "A `text/csv` body (UTF-8) with the header "
        "`product_sku,grade,price_fen_per_kg,effective_on,source`; an empty grade is "
        "`standard`. All or nothing, as API.md promises: the answer is always 200 "
        "`{imported, errors}`; when any line is bad nothing is written, `imported` is 0 and "
        "`errors: [{line, message}]` names every bad line (line 1 is the header). A "
        "product/grade/date twice in the file, or already stored, is an error."
    ),
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
}


@blp.route("/market-prices/import", methods=["POST"])
@requires(Role.ADMIN)
@blp.doc(**IMPORT_DOC)
@blp.response(200, ImportOut)
@blp.alt_response(409, response="CONFLICT", description="a concurrent import stored a line")
@blp.alt_response(415, response="UNSUPPORTED_MEDIA_TYPE")
def import_market_prices() -> Any:
    """Import market prices from CSV: every line, or none."""
    if request.mimetype not in ("text/csv", "text/plain"):
        raise UnsupportedCsv(_l("Send the prices as `Content-Type: text/csv`."))
    try:
        text = request.get_data(cache=False).decode("utf-8")
    except UnicodeDecodeError as error:
        return {
            "imported": 0,
            "errors": [{"line": 1, "message": f"Not UTF-8 text (byte {error.start})."}],
        }
    try:
        imported = prices.import_market_prices_csv(db.session, text, created_by=current_user().id)
        db.session.commit()
    except InvalidCsv as error:
        db.session.rollback()
        return {"imported": 0, "errors": error.extra["errors"]}
    except IntegrityError:
        db.session.rollback()
        raise Conflict(
            _l("Another import stored some of these prices just now; nothing was imported.")
        ) from None
    return {"imported": imported, "errors": []}


@blp.route("/market-prices", methods=["GET"])
@public
@blp.arguments(MarketPriceQuery, location="query")
@blp.response(200, MarketPricePage)
def list_market_prices(query: dict[str, Any]) -> Any:
    """Market prices, newest first: latest ``effective_on`` first (``?product_id=&grade=``)."""
    page = prices.list_market_prices(
        db.session,
        product_id=query.get("product_id"),
        grade=query.get("grade"),
        limit=query["limit"],
        cursor=query["cursor"],
    )
    ids = {p.product_id for p in page["items"]}
    rows = db.session.execute(select(Product.id, Product.sku).where(Product.id.in_(ids)))
    skus = {row.id: row.sku for row in rows}
    return {**page, "items": [market_price_json(p, skus[p.product_id]) for p in page["items"]]}
