"""Catalog rules: products, and the one atomic gate every stock change goes through."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from shop.catalog.models import Product, StockMovement
from shop.db import DbSession
from shop.errors import Conflict, NotFound, OutOfStock

EDITABLE = ("name", "price_fen", "packing_rate_fen")


def create_product(session: DbSession, **fields: Any) -> Product:
    """Create a product. Raises Conflict on a duplicate sku."""
    if session.scalar(select(Product.id).where(Product.sku == fields["sku"])) is not None:
        raise Conflict(f"A product with sku {fields['sku']!r} already exists.")
    product = Product(**fields)
    session.add(product)
    session.flush()  # the caller needs the id; a racing duplicate fails here on UNIQUE
    return product


def get_product(session: DbSession, product_id: int) -> Product:
    """The product. Raises NotFound."""
    product = session.get(Product, product_id)
    if product is None:
        raise NotFound(f"No product {product_id}.")
    return product


def get_product_by_sku(session: DbSession, sku: str) -> Product:
    """The product with this sku. Raises NotFound."""
    product = session.scalar(select(Product).where(Product.sku == sku))
    if product is None:
        raise NotFound(f"No product with sku {sku!r}.")
    return product


def update_product(session: DbSession, product_id: int, changes: dict[str, Any]) -> Product:
    """Change a product's name, price or packing rate. Raises NotFound."""
    product = get_product(session, product_id)
    for name in EDITABLE:
        if name in changes:
            setattr(product, name, changes[name])
    return product


def take_stock(session: DbSession, product_id: int, qty: int) -> int:
    """Remove ``qty`` units atomically; returns what is left. Raises OutOfStock, NotFound.

    One conditional UPDATE: concurrent callers can never take the stock below zero.
    """
    left = session.execute(
        update(Product)
        .where(Product.id == product_id, Product.stock >= qty)
        .values(stock=Product.stock - qty)
        .returning(Product.stock)
    ).scalar()
    if left is None:
        product = get_product(session, product_id)
        raise OutOfStock(f"Only {product.stock} of {product.name} left.")
    return left


def put_back_stock(session: DbSession, product_id: int, qty: int) -> int:
    """Return ``qty`` units to a product's stock; returns the new stock."""
    left = session.execute(
        update(Product)
        .where(Product.id == product_id)
        .values(stock=Product.stock + qty)
        .returning(Product.stock)
    ).scalar()
    if left is None:
        raise NotFound(f"No product {product_id}.")
    return left


def adjust_stock(
    session: DbSession, product_id: int, *, delta: int, reason: str, actor_id: int | None
) -> Product:
    """Add or remove stock by hand, with a reason kept in the history. Raises OutOfStock."""
    if delta < 0:
        left = take_stock(session, product_id, -delta)
    else:
        left = put_back_stock(session, product_id, delta)
    session.add(
        StockMovement(
            product_id=product_id, delta=delta, stock_after=left, reason=reason, actor_id=actor_id
        )
    )
    product = get_product(session, product_id)
    session.refresh(product, ["stock"])
    return product
