"""Counts the operator's console shows (read only)."""

from __future__ import annotations

from sqlalchemy import func, select

from shop.db import DbSession
from shop.orders.models import Order, OrderState


def orders_by_state(session: DbSession) -> dict[str, int]:
    """How many orders are in each state (every state, zero when none)."""
    rows = session.execute(select(Order.state, func.count(Order.id)).group_by(Order.state))
    counts = {state: int(count) for state, count in rows.tuples()}
    return {state.value: counts.get(state.value, 0) for state in OrderState}
