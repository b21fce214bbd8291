from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.db import Base, utcnow


class OrderState(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    PACKING = "packing"
    PACKED = "packed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUNDED = "refunded"


ORDER_STATE_VALUES = ", ".join(f"'{s.value}'" for s in OrderState)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("buyer_id", "idempotency_key"),
        CheckConstraint(f"state IN ({ORDER_STATE_VALUES})", name="state_known"),
        CheckConstraint("total_fen >= 0", name="total_not_negative"),
        Index("ix_orders_state_expires_at", "state", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    buyer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(20), default=OrderState.PENDING_PAYMENT.value)
    total_fen: Mapped[int] = mapped_column(BigInteger)  #: Σ qty × unit price, integer fen
    idempotency_key: Mapped[str] = mapped_column(String(128))
    #: SHA-256 of the request body: the same key with another body is refused
    request_hash: Mapped[str] = mapped_column(String(64))
    ship_name: Mapped[str] = mapped_column(String(100))
    ship_phone: Mapped[str] = mapped_column(String(40))
    ship_address: Mapped[str] = mapped_column(String(500))
    ship_region: Mapped[str] = mapped_column(String(100))
    carrier: Mapped[str | None] = mapped_column(String(100))
    tracking_no: Mapped[str | None] = mapped_column(String(100))
    #: the parcel's trace code (the page /t/{code}), set when it is packed
    trace_code: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]  #: unpaid after this → expired, stock released
    paid_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]  #: when it became cancelled, expired or refunded
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.id", lazy="selectin", cascade="all"
    )


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("qty > 0", name="qty_positive"),
        CheckConstraint("unit_price_fen >= 0", name="unit_price_not_negative"),
        Index("ix_order_lines_order_id", "order_id"),
        Index("ix_order_lines_listing_id", "listing_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    #: set when bought from a live listing (flash price, the listing's allotment)
    listing_id: Mapped[int | None] = mapped_column(ForeignKey("live_listings.id"))
    qty: Mapped[int]
    unit_price_fen: Mapped[int]  #: integer fen, fixed when the order was placed

    order: Mapped[Order] = relationship(back_populates="lines")
