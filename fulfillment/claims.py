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
from typing import Any

from sqlalchemy import func, select, update

from fulfillment import earnings, service
from fulfillment.errors import (
    AlreadyClaiming,
    LeaseAlreadyExtended,
    LeaseExpired,
    NotAMember,
    NotTheClaimer,
    TaskNotClaimed,
    WorkshopInactive,
)
from fulfillment.models import PackingTask, TaskState, Workshop, WorkshopMember
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
    AlreadyClaiming.

    Six statements when it succeeds: lock the villager's memberships (with their
    workshops' state), count their live claims, return expired leases, take the task,
    load its lines, move the order.
    """
    # Lock every membership row of this villager, in a fixed order: their concurrent
    # claims (in this or another workshop) wait here, one after another.
    memberships = dict(
        session.execute(
            select(WorkshopMember.workshop_id, Workshop.active)
            .join(Workshop, Workshop.id == WorkshopMember.workshop_id)
            .where(WorkshopMember.user_id == user_id)
            .order_by(WorkshopMember.workshop_id)
            .with_for_update(of=WorkshopMember)
        )
        .tuples()
        .all()
    )
    if workshop_id not in memberships:
        service.get_workshop(session, workshop_id)  # NotFound first: it exists or it does not
        raise NotAMember(f"You are not a member of workshop {workshop_id}.")
    if not memberships[workshop_id]:
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

    oldest_queued = (
        select(PackingTask.id)
        .where(PackingTask.workshop_id == workshop_id, PackingTask.state == TaskState.QUEUED)
        .order_by(PackingTask.created_at, PackingTask.id)  # as ix_packing_tasks_queue
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    while True:
        # One statement picks and takes it: the subquery locks the oldest task no
        # other claim holds (SKIP LOCKED), the UPDATE claims it.
        task = session.scalar(
            update(PackingTask)
            .where(PackingTask.id == oldest_queued)
            .values(
                state=TaskState.CLAIMED,
                claimed_by=user_id,
                claimed_at=now,
                lease_expires_at=now + timedelta(seconds=lease_s),
                lease_extended=False,
            )
            .returning(PackingTask)
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
            task.claimed_by = task.claimed_at = task.lease_expires_at = None
            session.flush()
            continue
        return task


def _refuse_complete(session: DbSession, task_id: int, *, user_id: int, now: datetime) -> None:
    """Why ``user_id`` may not complete or release the task. Raises NotFound,
    NotTheClaimer, LeaseExpired, TaskNotClaimed (Conflict if nothing is wrong any more)."""
    task = session.get(PackingTask, task_id, populate_existing=True)
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
    raise Conflict(f"Task {task_id} changed while you completed it; try again.")


def _own_claim(task_id: int, user_id: int, now: datetime) -> Any:
    """The task, if ``user_id`` holds an unexpired claim on it."""
    return (
        PackingTask.id == task_id,
        PackingTask.state == TaskState.CLAIMED,
        PackingTask.claimed_by == user_id,
        PackingTask.lease_expires_at > now,
    )


def _lock_own_claim(
    session: DbSession, task_id: int, *, user_id: int, now: datetime
) -> PackingTask:
    """The task, locked, if ``user_id`` holds an unexpired claim on it. Raises NotFound,
    NotTheClaimer, LeaseExpired, TaskNotClaimed."""
    task = session.scalar(
        select(PackingTask)
        .where(*_own_claim(task_id, user_id, now))
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if task is None:
        _refuse_complete(session, task_id, user_id=user_id, now=now)
    assert task is not None
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
    NotTheClaimer, LeaseExpired, TaskNotClaimed.

    One conditional UPDATE decides (only the claimer, only while the lease runs); then
    the task's lines are loaded, the order moves and the ledger gains its entry.
    """
    task = session.scalar(
        update(PackingTask)
        .where(*_own_claim(task_id, user_id, now))
        .values(
            state=TaskState.PACKED,
            packed_by=user_id,
            packed_at=now,
            lease_expires_at=None,
            packed_weight_g=packed_weight_g,
        )
        .returning(PackingTask)
        .execution_options(populate_existing=True)
    )
    if task is None:
        _refuse_complete(session, task_id, user_id=user_id, now=now)
    assert task is not None and task.workshop_id is not None
    if packed_weight_g is not None and weight_is_off(
        packed_weight_g, task.expected_weight_g, tolerance_bp
    ):
        task.needs_review = True  # rare: one more UPDATE, at the flush below
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


def extend(
    session: DbSession, task_id: int, *, user_id: int, now: datetime, lease_s: int
) -> PackingTask:
    """The claimer keeps the task longer: the lease runs ``lease_s`` from now. Once per
    claim, and only while the lease still runs (after that the task may already be
    someone else's). Raises NotFound, NotTheClaimer, LeaseExpired, TaskNotClaimed,
    LeaseAlreadyExtended.

    One conditional UPDATE decides, as for complete.
    """
    task = session.scalar(
        update(PackingTask)
        .where(*_own_claim(task_id, user_id, now), PackingTask.lease_extended.is_(False))
        .values(lease_expires_at=now + timedelta(seconds=lease_s), lease_extended=True)
        .returning(PackingTask)
        .execution_options(populate_existing=True)
    )
    if task is not None:
        return task
    held = session.scalar(
        select(PackingTask)
        .where(*_own_claim(task_id, user_id, now))
        .execution_options(populate_existing=True)
    )
    if held is not None and held.lease_extended:
        raise LeaseAlreadyExtended(
            f"The lease of task {task_id} was already renewed once; finish or release it."
        )
    _refuse_complete(session, task_id, user_id=user_id, now=now)
    raise AssertionError("unreachable")  # _refuse_complete always raises


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
