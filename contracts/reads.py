"""What the farmer's statement and the operator's console read: adjustments and the payouts
they are in, farmers with their contracts, payouts with their items, payout counts.

Read queries only; the rules stay in ``service``, ``prices`` and ``payouts.service``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from contracts.models import Adjustment, Contract, ContractState, Payout, PayoutItem
from shop.accounts.models import Role, User, UserRole
from shop.catalog.models import Product
from shop.db import DbSession


def farmer_adjustments(session: DbSession, farmer_id: int) -> list[tuple[Adjustment, int | None]]:
    """The farmer's adjustments, newest first, each with the payout it is in (or None)."""
    return list(
        session.execute(
            select(Adjustment, PayoutItem.payout_id)
            .outerjoin(PayoutItem, PayoutItem.adjustment_id == Adjustment.id)
            .where(Adjustment.farmer_id == farmer_id)
            .order_by(Adjustment.adjusted_on.desc(), Adjustment.id.desc())
        ).tuples()
    )


def farmers(session: DbSession) -> list[User]:
    """Every user holding ``farmer``, by name."""
    return list(
        session.scalars(
            select(User)
            .where(User.id.in_(select(UserRole.user_id).where(UserRole.role == Role.FARMER.value)))
            .order_by(User.display_name, User.id)
        )
    )


def contracts_by_farmer(session: DbSession) -> dict[int, list[Contract]]:
    """Every contract, grouped by farmer, newest first."""
    grouped: dict[int, list[Contract]] = {}
    for contract in session.scalars(select(Contract).order_by(Contract.id.desc())):
        grouped.setdefault(contract.farmer_id, []).append(contract)
    return grouped


def active_contracts(session: DbSession) -> list[Contract]:
    """Contracts a delivery can be recorded under, by farmer."""
    return list(
        session.scalars(
            select(Contract)
            .where(Contract.state == ContractState.ACTIVE.value)
            .order_by(Contract.farmer_id, Contract.id)
        )
    )


def product_names(session: DbSession, product_ids: set[int] | None = None) -> dict[int, str]:
    stmt = select(Product.id, Product.name)
    if product_ids is not None:
        if not product_ids:
            return {}
        stmt = stmt.where(Product.id.in_(product_ids))
    return {row.id: row.name for row in session.execute(stmt)}


def recent_payouts(session: DbSession, *, limit: int = 50) -> list[Payout]:
    """The latest payouts, newest first."""
    return list(session.scalars(select(Payout).order_by(Payout.id.desc()).limit(limit)))


@dataclass(frozen=True)
class PayoutStateCount:
    state: str
    payouts: int
    amount_fen: int


def payout_counts(session: DbSession) -> list[PayoutStateCount]:
    """How many payouts, and how much, in each state but ``paid``."""
    rows = session.execute(
        select(Payout.state, func.count(Payout.id), func.coalesce(func.sum(Payout.amount_fen), 0))
        .where(Payout.state != "paid")
        .group_by(Payout.state)
        .order_by(Payout.state)
    ).tuples()
    return [PayoutStateCount(state, int(count), int(total)) for state, count, total in rows]


def as_dict(counts: list[PayoutStateCount]) -> dict[str, Any]:
    return {c.state: c for c in counts}
