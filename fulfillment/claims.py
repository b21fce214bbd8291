"""The packing queue: claim the oldest task, complete or release it, expire leases.

Atomicity. On PostgreSQL the next task is taken with ``SELECT … FOR UPDATE SKIP
LOCKED`` (concurrent villagers each get a different task without waiting on each
other); on SQLite every write transaction starts with ``BEGIN IMMEDIATE`` so writers are
serialized and the same select-then-conditional-UPDATE is atomic. A villager's own
concurrent claims are serialized by locking their membership rows first, so
``MAX_CLAIMS_PER_VILLAGER`` holds however many requests they fire at once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select

from fulfillment import earnings, service
from fulfillment.errors import (
    AlreadyClaiming,
    LeaseExpired,
    NotAMember,
    NotTheClaimer,
    TaskNotClaimed,
    WorkshopInactive,
)
from fulfillment.models import PackingTask, TaskState, WorkshopMember
from shop.db import DbSession
from shop.errors import Conflict, NotFound
from shop.orders import service as orders

log = logging.getLogger(__name__)


def claim_next(
    session: DbSession,
    workshop_id: int,
    *,
    user_id: int,
    now: datetime,
    lease_s: int,
    max_claims: int,
) -> PackingTask | None:
    """Claim the oldest queued task of the workshop for ``user_id``; None when the queue is
    empty. The order moves to ``packing``. Raises NotFound, NotAMember, WorkshopInactive,
    AlreadyClaiming."""
    workshop = service.get_workshop(session, workshop_id)
    # Lock every membership row of this villager, in a fixed order: their concurrent
    # claims (in this or another workshop) wait here, one after another.
    member_of = session.scalars(
        select(WorkshopMember.workshop_id)
        .where(WorkshopMember.user_id == user_id)
        .order_by(WorkshopMember.workshop_id)
        .with_for_update()
    ).all()
    if workshop_id not in member_of:
        raise NotAMember(f"You are not a member of workshop {workshop_id}.")
    if not workshop.active:
        raise WorkshopInactive(f"Workshop {workshop_id} is closed; its tasks moved elsewhere.")
    held = session.scalar(
        select(func.count(PackingTask.id)).where(
            PackingTask.state == TaskState.CLAIMED,
            PackingTask.claimed_by == user_id,
            PackingTask.lease_expires_at > now,
        )
    )
    if held is not None and held >= max_claims:
        raise AlreadyClaiming(
            "Finish or release the task you hold before claiming another.", holding=held
        )
    # The queue never waits for the beat task to return expired claims.
    expire_leases(session, now=now, workshop_id=workshop_id)

    while True:
        task = session.scalar(
            select(PackingTask)
            .where(PackingTask.workshop_id == workshop_id, PackingTask.state == TaskState.QUEUED)
            .order_by(PackingTask.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        if task is None:
            return None
        try:
            orders.mark_packing(session, task.order_id)
        except Conflict:
            # The order was cancelled or refunded after its task was queued and the
            # event has not reached us yet: nothing to pack, try the next one.
            log.info("task %s: order %s is no longer paid; cancelled", task.id, task.order_id)
            task.state = TaskState.CANCELLED
            session.flush()
            continue
        task.state = TaskState.CLAIMED
        task.claimed_by = user_id
        task.claimed_at = now
        task.lease_expires_at = now + timedelta(seconds=lease_s)
        session.flush()
        return task


def _lock_own_claim(
    session: DbSession, task_id: int, *, user_id: int, now: datetime
) -> PackingTask:
    """The task, locked, if ``user_id`` holds an unexpired claim on it. Raises NotFound,
    NotTheClaimer, LeaseExpired, TaskNotClaimed."""
    task = session.scalar(
        select(PackingTask)
        .where(PackingTask.id == task_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if task is None:
        raise NotFound(f"No packing task {task_id}.")
    if task.state != TaskState.CLAIMED:
        if task.state == TaskState.PACKED and task.packed_by == user_id:
            raise TaskNotClaimed(f"You already packed task {task_id}.")
        raise TaskNotClaimed(f"Task {task_id} is {task.state}, not claimed by you.")
    if task.claimed_by != user_id:
        raise NotTheClaimer(f"Task {task_id} is claimed by someone else.")
    assert task.lease_expires_at is not None
    if task.lease_expires_at <= now:
        raise LeaseExpired(
            f"Your claim on task {task_id} expired at {task.lease_expires_at.isoformat()}; "
            "it went back to the queue."
        )
    return task


def complete(
    session: DbSession,
    task_id: int,
    *,
    user_id: int,
    now: datetime,
    packed_weight_g: int | None,
    tolerance_bp: int,
) -> PackingTask:
    """The claimer packed the task: it is ``packed``, the order ``packed``, and the piece rate
    goes into the earnings ledger. A weight off by more than ``tolerance_bp`` (basis
    points of the expected weight) flags the task for review. Raises NotFound,
    NotTheClaimer, LeaseExpired, TaskNotClaimed."""
    task = _lock_own_claim(session, task_id, user_id=user_id, now=now)
    task.state = TaskState.PACKED
    task.packed_by = user_id
    task.packed_at = now
    task.lease_expires_at = None
    task.packed_weight_g = packed_weight_g
    task.needs_review = packed_weight_g is not None and weight_is_off(
        packed_weight_g, task.expected_weight_g, tolerance_bp
    )
    assert task.workshop_id is not None  # a claimed task always has its workshop
    orders.mark_packed(session, task.order_id)
    earnings.record_piece(
        session,
        user_id=user_id,
        workshop_id=task.workshop_id,
        task_id=task.id,
        amount_fen=task.piece_rate_fen,
        now=now,
    )
    session.flush()
    return task


def weight_is_off(packed_g: int, expected_g: int, tolerance_bp: int) -> bool:
    """|packed − expected| > tolerance × expected, in integers (basis points)."""
    return abs(packed_g - expected_g) * 10_000 > expected_g * tolerance_bp


def release(session: DbSession, task_id: int, *, user_id: int, now: datetime) -> PackingTask:
    """The claimer gives the task back: it is queued again, the order back to ``paid``.
    Raises NotFound, NotTheClaimer, LeaseExpired, TaskNotClaimed."""
    task = _lock_own_claim(session, task_id, user_id=user_id, now=now)
    service.requeue(session, task)
    orders.mark_unpacked(session, task.order_id)
    session.flush()
    return task


def expire_leases(session: DbSession, *, now: datetime, workshop_id: int | None = None) -> int:
    """Return every claim whose lease has run out to the queue, and its order to ``paid``.
    Idempotent; rows another transaction is working on are skipped. Returns how many."""
    stmt = (
        select(PackingTask)
        .where(PackingTask.state == TaskState.CLAIMED, PackingTask.lease_expires_at <= now)
        .order_by(PackingTask.id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if workshop_id is not None:
        stmt = stmt.where(PackingTask.workshop_id == workshop_id)
    expired = session.scalars(stmt).all()
    for task in expired:
        log.info("task %s: lease of user %s expired; back to the queue", task.id, task.claimed_by)
        service.requeue(session, task)
        try:
            orders.mark_unpacked(session, task.order_id)
        except Conflict:
            # The order left `packing` by some other path; the task is still free to pack
            # again, and the claim must not hold the queue up.
            log.error(
                "task %s: order %s was not packing when its lease expired", task.id, task.order_id
            )
    session.flush()
    return len(expired)


def holding(session: DbSession, user_id: int, *, now: datetime) -> list[PackingTask]:
    """The tasks ``user_id`` holds an unexpired claim on."""
    return list(
        session.scalars(
            select(PackingTask)
            .where(
                PackingTask.state == TaskState.CLAIMED,
                PackingTask.claimed_by == user_id,
                PackingTask.lease_expires_at > now,
            )
            .order_by(PackingTask.id)
        )
    )
