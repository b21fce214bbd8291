"""Payment records (one per order) and the webhook events already processed."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shop.db import Base, utcnow


class PaymentStatus(StrEnum):
    REQUIRES_PAYMENT = "requires_payment"  #: created; the buyer has not paid yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"  #: the last attempt failed; the buyer may try again with the same intent
    REFUNDED = "refunded"


PAYMENT_STATUS_VALUES = ", ".join(f"'{s.value}'" for s in PaymentStatus)


class Outcome(StrEnum):
    """What handling a payment event did; kept with the event so support can see why."""

    PAID = "paid"
    ALREADY_PAID = "already_paid"
    REFUNDED_OUT_OF_STOCK = "refunded_out_of_stock"  #: order had expired, stock gone
    REFUNDED_CANCELLED = "refunded_cancelled"  #: buyer cancelled before the money arrived
    AMOUNT_MISMATCH = "amount_mismatch"
    PAYMENT_MISMATCH = "payment_mismatch"
    UNKNOWN_ORDER = "unknown_order"
    FAILURE_RECORDED = "failure_recorded"
    ORDER_REFUNDED = "order_refunded"  #: refunded outside the shop (Stripe dashboard)
    REFUND_RECORDED = "refund_recorded"
    IGNORED = "ignored"


class Payment(Base):
    """The provider's payment (a Stripe PaymentIntent) for one order; created once."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount_fen >= 0", name="amount_not_negative"),
        CheckConstraint(f"status IN ({PAYMENT_STATUS_VALUES})", name="status_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    provider: Mapped[str] = mapped_column(String(20))  #: "stripe" or "sandbox"
    payment_id: Mapped[str] = mapped_column(String(255), unique=True)  #: e.g. pi_…
    client_secret: Mapped[str] = mapped_column(String(255))
    amount_fen: Mapped[int] = mapped_column(BigInteger)  #: what was asked for, integer fen
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(20), default=PaymentStatus.REQUIRES_PAYMENT)
    #: why the status is what it is, when that is not obvious (e.g. refunded: stock gone)
    status_note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProcessedEvent(Base):
    """A payment event handled once: the UNIQUE key is written in the same transaction
    as the state change it caused, so a redelivered event changes nothing."""

    __tablename__ = "processed_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        Index("ix_processed_events_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(255))  #: evt_… (Stripe) or sandbox-…
    event_type: Mapped[str] = mapped_column(String(100))
    order_id: Mapped[int | None]  #: no FK: an event may name an order we do not have
    payment_id: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(40))
    detail: Mapped[str | None] = mapped_column(String(500))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
