"""Farmers, market prices, purchase contracts, deliveries, adjustments and payouts.

Money is integer fen (``BigInteger`` where sums of many deliveries can pass 2³¹),
weights integer grams, dates plain calendar dates (the business day of the shop).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shop.catalog.models import StockLot
from shop.db import Base, utcnow

STANDARD_GRADE = "standard"
MIN_PREMIUM_BP = 1000  #: market price + 10 %
MAX_PREMIUM_BP = 1500  #: market price + 15 %


class ContractState(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class PayoutState(StrEnum):
    PENDING = "pending"  #: created, not yet sent (or no payout account yet: see ``reason``)
    SENDING = "sending"  #: claimed by one sender, the Stripe call is under way
    PAID = "paid"
    FAILED = "failed"  #: Stripe refused or could not be reached; the next run retries


def _values(enum: type[StrEnum]) -> str:
    return ", ".join(f"'{member.value}'" for member in enum)


class FarmerProfile(Base):
    """What the operator knows about a farmer (a user holding ``farmer``)."""

    __tablename__ = "farmer_profiles"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    village: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(40))
    #: Stripe Connect account (``acct_…``) payouts are transferred to; none → payouts wait
    stripe_account_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MarketPrice(Base):
    """The market price of a product's grade, in force from ``effective_on`` until the next one."""

    __tablename__ = "market_prices"
    __table_args__ = (
        UniqueConstraint("product_id", "grade", "effective_on"),
        CheckConstraint("price_fen_per_kg > 0", name="price_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    grade: Mapped[str] = mapped_column(String(40))
    price_fen_per_kg: Mapped[int]  #: integer fen per kilogram
    effective_on: Mapped[date]
    source: Mapped[str] = mapped_column(String(200))  #: where the figure comes from
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Contract(Base):
    """A guaranteed-price purchase contract: market price + ``premium_bp``, for a committed
    weight, between two dates."""

    __tablename__ = "contracts"
    __table_args__ = (
        CheckConstraint(
            f"premium_bp BETWEEN {MIN_PREMIUM_BP} AND {MAX_PREMIUM_BP}", name="premium_in_range"
        ),
        CheckConstraint("committed_kg > 0", name="committed_positive"),
        CheckConstraint("starts_on <= ends_on", name="dates_in_order"),
        CheckConstraint(f"state IN ({_values(ContractState)})", name="state_known"),
        # The commitment gate's backstop: no write can take the delivered weight past it.
        CheckConstraint(
            "delivered_g >= 0 AND delivered_g <= committed_kg * 1000", name="within_commitment"
        ),
        Index("ix_contracts_farmer_id", "farmer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    farmer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    grade: Mapped[str] = mapped_column(String(40))
    premium_bp: Mapped[int]  #: basis points above the market price, 1000 … 1500
    committed_kg: Mapped[int]  #: the weight the farmer commits to deliver
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    state: Mapped[str] = mapped_column(String(20), default=ContractState.DRAFT.value)
    delivered_g: Mapped[int] = mapped_column(BigInteger, default=0)  #: Σ deliveries' weight_g
    termination_reason: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    accepted_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    terminated_at: Mapped[datetime | None]


class Delivery(Base):
    """Produce a farmer delivered under a contract, priced once and never edited.

    Everything the amount was computed from is stored with it, so a statement line
    can be recomputed by hand: ``market_price_fen_per_kg × (10000 + premium_bp) ×
    weight_g / 10 000 000``, rounded half up.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        CheckConstraint("weight_g > 0", name="weight_positive"),
        CheckConstraint("amount_fen >= 0", name="amount_not_negative"),
        Index("ix_deliveries_farmer_id", "farmer_id"),
        Index("ix_deliveries_contract_id", "contract_id"),
        Index("uq_deliveries_lot_id", "lot_id", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"))
    farmer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    grade: Mapped[str] = mapped_column(String(40))
    delivered_on: Mapped[date]
    weight_g: Mapped[int]
    market_price_id: Mapped[int] = mapped_column(ForeignKey("market_prices.id"))
    market_price_fen_per_kg: Mapped[int]  #: the price used, copied: prices are history
    market_price_effective_on: Mapped[date]
    market_price_source: Mapped[str] = mapped_column(String(200))
    premium_bp: Mapped[int]  #: the contract's premium when the delivery was priced
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: the lot the delivered produce became (its code is on the delivery and the trace page)
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("stock_lots.id"))

    lot: Mapped[StockLot | None] = relationship(lazy="joined")


class Adjustment(Base):
    """A signed correction to what a farmer is owed under a contract (deliveries stay as
    they were)."""

    __tablename__ = "contract_adjustments"
    __table_args__ = (
        CheckConstraint("amount_fen <> 0", name="amount_not_zero"),
        Index("ix_contract_adjustments_farmer_id", "farmer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contract_id: Mapped[int] = mapped_column(ForeignKey("contracts.id"))
    farmer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))  #: corrected
    amount_fen: Mapped[int] = mapped_column(BigInteger)  #: + owed to the farmer, − taken back
    reason: Mapped[str] = mapped_column(String(500))
    adjusted_on: Mapped[date]  #: the day it counts from, for payout runs
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Payout(Base):
    """Money sent (or to be sent) to one farmer: the sum of its items, fixed when created.

    Its Stripe idempotency key is ``payout-{id}`` for every attempt, so the amount
    never changes after creation (Stripe refuses a reused key with other parameters).
    """

    __tablename__ = "payouts"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint(f"state IN ({_values(PayoutState)})", name="state_known"),
        Index("ix_payouts_farmer_id", "farmer_id"),
        Index("ix_payouts_state", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    farmer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    through: Mapped[date]  #: the run's date: items dated on or before it
    state: Mapped[str] = mapped_column(String(20), default=PayoutState.PENDING.value)
    reason: Mapped[str | None] = mapped_column(String(500))  #: why pending / failed
    provider: Mapped[str | None] = mapped_column(String(20))
    transfer_id: Mapped[str | None] = mapped_column(String(255))
    destination: Mapped[str | None] = mapped_column(String(255))  #: account it was sent to
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sending_since: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]

    @property
    def idempotency_key(self) -> str:
        return f"payout-{self.id}"


class PayoutItem(Base):
    """One delivery or adjustment in one payout. The UNIQUE keys make paying it twice impossible."""

    __tablename__ = "payout_items"
    __table_args__ = (
        UniqueConstraint("delivery_id"),
        UniqueConstraint("adjustment_id"),
        CheckConstraint("(delivery_id IS NULL) <> (adjustment_id IS NULL)", name="one_source"),
        Index("ix_payout_items_payout_id", "payout_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payout_id: Mapped[int] = mapped_column(ForeignKey("payouts.id"))
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    adjustment_id: Mapped[int | None] = mapped_column(ForeignKey("contract_adjustments.id"))
    amount_fen: Mapped[int] = mapped_column(BigInteger)


@event.listens_for(Delivery, "before_update")
def _deliveries_are_immutable(mapper: Any, connection: Any, target: Delivery) -> None:
    raise RuntimeError("A recorded delivery is never edited; record an adjustment instead.")
