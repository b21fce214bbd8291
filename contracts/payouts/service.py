"""Payout runs, and the three steps of sending one payout (claim, then record the outcome).

Never paying twice rests on three things:

- every delivery and adjustment is in at most one payout: ``payout_items`` has UNIQUE
  ``delivery_id`` and UNIQUE ``adjustment_id``, so even two runs racing cannot both
  include one (runs are also serialized, so the loser finds nothing left, not an error);
- a payout is sent only by whoever *claims* it, with one conditional UPDATE
  (``pending``/``failed`` → ``sending``) committed before Stripe is called;
- every attempt for a payout uses the idempotency key ``payout-{id}``, so a retry after
  an unknown outcome (timeout, a worker that died) cannot create a second transfer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, text, update

from contracts.models import (
    Adjustment,
    Delivery,
    FarmerProfile,
    Payout,
    PayoutItem,
    PayoutState,
)
from contracts.payouts.providers import TransferRequest
from shop.db import DbSession
from shop.errors import NotFound
from shop.i18n import _l

NO_ACCOUNT = "No payout account: the operator must add the farmer's Stripe account."
#: An arbitrary constant: the PostgreSQL advisory lock that serializes payout runs.
RUN_LOCK_KEY = 0x5348_0006
#: Stripe forgets an idempotency key after 24 h; a payout stuck in ``sending`` longer
#: than this is not re-sent automatically (a new attempt could no longer be deduplicated).
STALE_SENDING_LIMIT = timedelta(hours=23)


@dataclass
class PayoutRun:
    payouts: list[Payout] = field(default_factory=list)  #: created or retried by this run
    to_send: list[int] = field(default_factory=list)  #: ids to send once the run commits


def run_payouts(
    session: DbSession, *, through: date, now: datetime, sending_lease: timedelta
) -> PayoutRun:
    """Gather, per farmer, every delivery and adjustment dated on or before ``through``
    that is in no payout yet, into one new payout; pick up earlier payouts still to send.

    A farmer whose new items net to zero or less gets no payout: the items stay unpaid
    and are netted against the next run's. A farmer without a payout account gets a
    ``pending`` payout with that reason; a later run sends it once the account exists.
    Sending is up to the caller, after commit (``to_send``).
    """
    _serialize_runs(session)
    run = PayoutRun()
    items_by_farmer: dict[int, list[PayoutItem]] = defaultdict(list)

    deliveries = session.execute(
        select(Delivery.id, Delivery.farmer_id, Delivery.amount_fen)
        .where(
            Delivery.delivered_on <= through,
            ~exists().where(PayoutItem.delivery_id == Delivery.id),
        )
        .order_by(Delivery.id)
    )
    for row in deliveries:
        items_by_farmer[row.farmer_id].append(
            PayoutItem(delivery_id=row.id, amount_fen=row.amount_fen)
        )
    adjustments = session.execute(
        select(Adjustment.id, Adjustment.farmer_id, Adjustment.amount_fen)
        .where(
            Adjustment.adjusted_on <= through,
            ~exists().where(PayoutItem.adjustment_id == Adjustment.id),
        )
        .order_by(Adjustment.id)
    )
    for row in adjustments:
        items_by_farmer[row.farmer_id].append(
            PayoutItem(adjustment_id=row.id, amount_fen=row.amount_fen)
        )

    accounts = _accounts(session, list(items_by_farmer))
    for farmer_id in sorted(items_by_farmer):
        items = items_by_farmer[farmer_id]
        net = sum(item.amount_fen for item in items)
        if net <= 0:
            continue  # carried forward: netted against the farmer's next deliveries
        account = accounts.get(farmer_id)
        payout = Payout(
            farmer_id=farmer_id,
            amount_fen=net,
            through=through,
            state=PayoutState.PENDING.value,
            reason=None if account else NO_ACCOUNT,
            attempts=0,
        )
        session.add(payout)
        session.flush()  # the items need the payout's id
        for item in items:
            item.payout_id = payout.id
        session.add_all(items)
        # flush: if another run slipped past the lock, the UNIQUE keys stop it here
        session.flush()
        run.payouts.append(payout)

    # Earlier payouts still owed: waiting for an account, failed, or stuck mid-send.
    created = {p.id for p in run.payouts}
    owed = session.scalars(
        select(Payout)
        .where(
            or_(
                Payout.state.in_([PayoutState.PENDING.value, PayoutState.FAILED.value]),
                _stale_sending(now, sending_lease),
            )
        )
        .order_by(Payout.id)
    )
    run.payouts.extend(p for p in owed if p.id not in created)
    accounts = _accounts(session, [p.farmer_id for p in run.payouts])
    for payout in run.payouts:
        if accounts.get(payout.farmer_id):
            run.to_send.append(payout.id)
        elif payout.state == PayoutState.PENDING.value:
            payout.reason = NO_ACCOUNT
    return run


def _serialize_runs(session: DbSession) -> None:
    """One payout run at a time: the second waits, then sees what the first committed.

    SQLite already serializes writers (``BEGIN IMMEDIATE``).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": RUN_LOCK_KEY})


def _accounts(session: DbSession, farmer_ids: list[int]) -> dict[int, str]:
    if not farmer_ids:
        return {}
    rows = session.execute(
        select(FarmerProfile.user_id, FarmerProfile.stripe_account_id).where(
            FarmerProfile.user_id.in_(set(farmer_ids)),
            FarmerProfile.stripe_account_id.is_not(None),
        )
    )
    return {row.user_id: row.stripe_account_id for row in rows}


def _stale_sending(now: datetime, lease: timedelta) -> Any:
    """A ``sending`` claim whose sender died: old enough to retry, young enough that
    Stripe still remembers the idempotency key (so a retry cannot pay twice)."""
    return and_(
        Payout.state == PayoutState.SENDING.value,
        Payout.sending_since < now - lease,
        Payout.sending_since > now - STALE_SENDING_LIMIT,
    )


def claim_payout(
    session: DbSession,
    payout_id: int,
    *,
    currency: str,
    provider: str,
    now: datetime,
    sending_lease: timedelta,
) -> TransferRequest | None:
    """Claim a payout for sending: ``pending``/``failed`` (or a stale ``sending``) →
    ``sending``, by one conditional UPDATE. Returns what to send, or None when there
    is nothing to do (already paid or being sent, or no payout account yet).

    The caller must commit the claim before calling the provider.
    """
    payout = session.get(Payout, payout_id)
    if payout is None:
        raise NotFound(_l("No payout %(payout_id)s.", payout_id=payout_id))
    account = _accounts(session, [payout.farmer_id]).get(payout.farmer_id)
    if account is None:
        if payout.state == PayoutState.PENDING.value:
            payout.reason = NO_ACCOUNT
        return None
    claimed = session.execute(
        update(Payout)
        .where(
            Payout.id == payout_id,
            or_(
                Payout.state.in_([PayoutState.PENDING.value, PayoutState.FAILED.value]),
                _stale_sending(now, sending_lease),
            ),
        )
        .values(
            state=PayoutState.SENDING.value,
            sending_since=now,
            attempts=Payout.attempts + 1,
            provider=provider,
            destination=account,
        )
        .returning(Payout.id)
    ).scalar()
    if claimed is None:
        return None
    session.refresh(payout)
    return TransferRequest(
        payout_id=payout.id,
        farmer_id=payout.farmer_id,
        amount_fen=payout.amount_fen,
        currency=currency,
        destination=account,
    )


def record_paid(session: DbSession, payout_id: int, *, transfer_id: str, now: datetime) -> None:
    """The transfer went through: ``sending`` → ``paid``."""
    session.execute(
        update(Payout)
        .where(Payout.id == payout_id, Payout.state == PayoutState.SENDING.value)
        .values(state=PayoutState.PAID.value, transfer_id=transfer_id, paid_at=now, reason=None)
    )


def record_failed(session: DbSession, payout_id: int, *, message: str) -> None:
    """The transfer was refused or its outcome is unknown: ``sending`` → ``failed``; the
    next run (or the task's retry) tries again with the same idempotency key."""
    session.execute(
        update(Payout)
        .where(Payout.id == payout_id, Payout.state == PayoutState.SENDING.value)
        .values(state=PayoutState.FAILED.value, reason=message[:500])
    )


# ---------------------------------------------------------------------------- statements


def payout_lines(session: DbSession, payout_ids: list[int]) -> dict[int, dict[str, list[Any]]]:
    """Per payout: the deliveries and adjustments it pays."""
    lines: dict[int, dict[str, list[Any]]] = {
        pid: {"deliveries": [], "adjustments": []} for pid in payout_ids
    }
    if not payout_ids:
        return lines
    rows = session.execute(
        select(PayoutItem.payout_id, Delivery)
        .join(Delivery, Delivery.id == PayoutItem.delivery_id)
        .where(PayoutItem.payout_id.in_(payout_ids))
        .order_by(Delivery.delivered_on, Delivery.id)
    )
    for payout_id, delivery in rows:
        lines[payout_id]["deliveries"].append(delivery)
    rows = session.execute(
        select(PayoutItem.payout_id, Adjustment)
        .join(Adjustment, Adjustment.id == PayoutItem.adjustment_id)
        .where(PayoutItem.payout_id.in_(payout_ids))
        .order_by(Adjustment.adjusted_on, Adjustment.id)
    )
    for payout_id, adjustment in rows:
        lines[payout_id]["adjustments"].append(adjustment)
    return lines


def delivery_payouts(session: DbSession, delivery_ids: list[int]) -> dict[int, int]:
    """The payout each of these deliveries is in (absent: in none yet)."""
    if not delivery_ids:
        return {}
    rows = session.execute(
        select(PayoutItem.delivery_id, PayoutItem.payout_id).where(
            PayoutItem.delivery_id.in_(delivery_ids)
        )
    )
    return {row.delivery_id: row.payout_id for row in rows}


def farmer_totals(session: DbSession, farmer_id: int) -> dict[str, int]:
    """What the farmer has earned and been paid, in fen.

    ``delivered_fen`` = Σ deliveries; ``adjustments_fen`` = Σ adjustments (signed);
    ``paid_fen`` = Σ paid payouts; ``pending_fen`` = delivered + adjustments − paid
    (owed: not yet in a payout, or in one not yet paid).
    """
    delivered = session.scalar(
        select(func.coalesce(func.sum(Delivery.amount_fen), 0)).where(
            Delivery.farmer_id == farmer_id
        )
    )
    adjusted = session.scalar(
        select(func.coalesce(func.sum(Adjustment.amount_fen), 0)).where(
            Adjustment.farmer_id == farmer_id
        )
    )
    paid = session.scalar(
        select(func.coalesce(func.sum(Payout.amount_fen), 0)).where(
            Payout.farmer_id == farmer_id, Payout.state == PayoutState.PAID.value
        )
    )
    delivered, adjusted, paid = int(delivered or 0), int(adjusted or 0), int(paid or 0)
    return {
        "delivered_fen": delivered,
        "adjustments_fen": adjusted,
        "paid_fen": paid,
        "pending_fen": delivered + adjusted - paid,
    }


def farmer_payouts_query(farmer_id: int) -> Any:
    return select(Payout).where(Payout.farmer_id == farmer_id)
