"""Catalog rules: products, and the one atomic gate every stock change goes through."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from shop.accounts.models import Principal, Role
from shop.catalog import lots
from shop.catalog.models import Product, StockMovement
from shop.core import hot_rows
from shop.db import DbSession, utcnow
from shop.errors import Conflict, Forbidden, NotFound, OutOfStock
from shop.i18n import _l

EDITABLE = ("name", "price_fen", "packing_rate_fen")


def create_product(session: DbSession, *, owner_id: int | None = None, **fields: Any) -> Product:
    """Create a product owned by ``owner_id`` (None: a house product). Raises Conflict on
    a duplicate sku."""
    if session.scalar(select(Product.id).where(Product.sku == fields["sku"])) is not None:
        raise Conflict(_l("A product with sku %(sku)s already exists.", sku=fields["sku"]))
    product = Product(owner_id=owner_id, **fields)
    session.add(product)
    session.flush()  # the caller needs the id; a racing duplicate fails here on UNIQUE
    return product


def get_product(session: DbSession, product_id: int) -> Product:
    """The product. Raises NotFound."""
    product = session.get(Product, product_id)
    if product is None:
        raise NotFound(_l("No product %(product_id)s.", product_id=product_id))
    return product


def get_product_by_sku(session: DbSession, sku: str) -> Product:
    """The product with this sku. Raises NotFound."""
    product = session.scalar(select(Product).where(Product.sku == sku))
    if product is None:
        raise NotFound(_l("No product with sku %(sku)s.", sku=sku))
    return product


def check_can_set_packing_rate(user: Principal, fields: dict[str, Any]) -> None:
    """A packing rate is a villager's wage: only an admin sets it, to any value (even the
    default). Raises Forbidden."""
    if "packing_rate_fen" in fields and not user.has_role(Role.ADMIN):
        raise Forbidden(_l("Only an admin sets a packing rate: it is the villagers' wage."))


def create_product_by(
    session: DbSession, user: Principal, fields: dict[str, Any], *, default_packing_rate_fen: int
) -> Product:
    """Create a product as ``user``: an admin's is a house product, a streamer's is their
    own. Without a packing rate it takes the default. Raises Forbidden, Conflict."""
    check_can_set_packing_rate(user, fields)
    owner_id = None if user.has_role(Role.ADMIN) else user.id
    return create_product(
        session,
        owner_id=owner_id,
        **{"packing_rate_fen": default_packing_rate_fen, **fields},
    )


def product_to_change(session: DbSession, product_id: int, user: Principal) -> Product:
    """The product, if ``user`` may change it (its images too): an admin any, a streamer
    only their own. Raises NotFound, Forbidden."""
    product = get_product(session, product_id)
    if not user.has_role(Role.ADMIN) and product.owner_id != user.id:
        raise Forbidden(
            _l(
                "Only an admin or the streamer who owns product %(product_id)s may change it.",
                product_id=product_id,
            )
        )
    return product


def check_can_list(product: Product, streamer_id: int) -> None:
    """A streamer lists their own products and house products. Raises Forbidden."""
    if product.owner_id is not None and product.owner_id != streamer_id:
        raise Forbidden(
            _l("Product %(product_id)s belongs to another streamer.", product_id=product.id)
        )


def listable_products(session: DbSession, streamer_id: int, *, limit: int) -> list[Product]:
    """The products in stock a streamer may list (their own and house products), by name."""
    return list(
        session.scalars(
            select(Product)
            .where(
                Product.stock > 0,
                (Product.owner_id == streamer_id) | Product.owner_id.is_(None),
            )
            .order_by(Product.name, Product.id)
            .limit(limit)
        )
    )


def update_product(
    session: DbSession, product_id: int, changes: dict[str, Any], *, by: Principal
) -> Product:
    """Change a product's name, price or (admins only) packing rate, as ``by``.

    Raises NotFound, Forbidden (another streamer's product, a streamer's packing rate).
    """
    product = product_to_change(session, product_id, by)
    check_can_set_packing_rate(by, changes)
    for name in EDITABLE:
        if name in changes:
            setattr(product, name, changes[name])
    return product


def take_stock(session: DbSession, product_id: int, qty: int) -> int:
    """Remove ``qty`` units atomically; returns what is left. Raises OutOfStock, NotFound.

    One conditional UPDATE: concurrent callers can never take the stock below zero.
    The product's row is hot from here to the end of the transaction (``hot_rows``).
    """
    hot_rows.hold_until_transaction_ends(session)
    left = session.execute(
        update(Product)
        .where(Product.id == product_id, Product.stock >= qty)
        .values(stock=Product.stock - qty)
        .returning(Product.stock)
    ).scalar()
    if left is None:
        product = get_product(session, product_id)
        raise OutOfStock(
            _l("Only %(stock)s of %(product)s left.", stock=product.stock, product=product.name)
        )
    return left


def put_back_stock(session: DbSession, product_id: int, qty: int) -> int:
    """Return ``qty`` units to a product's stock; returns the new stock. The product's
    row is hot from here to the end of the transaction (``hot_rows``)."""
    hot_rows.hold_until_transaction_ends(session)
    left = session.execute(
        update(Product)
        .where(Product.id == product_id)
        .values(stock=Product.stock + qty)
        .returning(Product.stock)
    ).scalar()
    if left is None:
        raise NotFound(_l("No product %(product_id)s.", product_id=product_id))
    return left


def adjust_stock(
    session: DbSession,
    product_id: int,
    *,
    delta: int,
    reason: str,
    actor_id: int | None,
    lot_code: str | None = None,
) -> Product:
    """Add or remove stock by hand, with a reason kept in the history; units received
    under a ``lot_code`` are counted on that lot (``shop.catalog.lots``). Raises
    OutOfStock, NotFound, ValidationFailed (the lot)."""
    if lot_code is not None:
        get_product(session, product_id)
        lots.receive(session, product_id, lot_code, units=delta, now=utcnow())
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
