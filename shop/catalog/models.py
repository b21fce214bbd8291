from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from shop.core.hot_rows import hot_row
from shop.db import Base, BigInt, utcnow


class Category(StrEnum):
    MUSHROOM = "mushroom"
    FUNGUS = "fungus"
    POMELO = "pomelo"
    OTHER = "other"


CATEGORY_VALUES = ", ".join(f"'{c.value}'" for c in Category)


@hot_row  # a product-line order takes its stock (shop/core/hot_rows.py)
class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_not_negative"),
        CheckConstraint("price_fen >= 0", name="price_not_negative"),
        CheckConstraint("packing_rate_fen >= 0", name="packing_rate_not_negative"),
        CheckConstraint("unit_weight_g > 0", name="unit_weight_positive"),
        CheckConstraint(f"category IN ({CATEGORY_VALUES})", name="category_known"),
        Index("ix_products_owner_id", "owner_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(20))
    unit_label: Mapped[str] = mapped_column(String(40))  #: e.g. "500 g bag", "5 kg box"
    unit_weight_g: Mapped[int]  #: integer grams per unit
    price_fen: Mapped[int]  #: list price per unit, integer fen
    #: units on hand, not allotted to any live listing; 64-bit: stock is added by hand
    #: without a ceiling, and units coming back (expiry, session end) must never fail
    stock: Mapped[int] = mapped_column(BigInt)
    #: the piece rate per unit packed, integer fen: a wage, set only by an admin
    packing_rate_fen: Mapped[int]
    #: the streamer who created it, who may change it and list it; NULL for a house
    #: product (created by an admin), which any streamer may list
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StockMovement(Base):
    """History of manual stock changes: who changed how much, and why."""

    __tablename__ = "stock_movements"
    __table_args__ = (Index("ix_stock_movements_product_id", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    delta: Mapped[int]  #: units added (+) or removed (-)
    stock_after: Mapped[int] = mapped_column(BigInt)
    reason: Mapped[str] = mapped_column(String(200))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StockLot(Base):
    """A lot: units of a product that came in together (a farmer's delivery), under a
    short code. Units received into stock under the code are counted here; packing a
    parcel draws from a product's lots first in, first out (``shop.catalog.lots``)."""

    __tablename__ = "stock_lots"
    __table_args__ = (
        CheckConstraint("remaining >= 0 AND remaining <= received", name="remaining_in_range"),
        Index("ix_stock_lots_product_id_received_at", "product_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)  #: e.g. "L7K3M9QX"
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    received: Mapped[int] = mapped_column(BigInt, default=0)  #: units received into stock
    remaining: Mapped[int] = mapped_column(BigInt, default=0)  #: of those, not yet packed
    received_at: Mapped[datetime | None]  #: first received (the FIFO order); NULL: not yet
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
