"""The work queue: claim what is due first, complete or release it, expire leases.

Fairness. Every task has a due time: a parcel's is its order's payment time plus
``PARCEL_DUE_S`` (2 h by default), a batch's is its share of the work order's due date
(``fulfillment.work_orders``: the n-th of N batches is due n/N of the way from the
order's creation to the end of its due day). A claim takes the queued task due first,
whatever its kind — **except that a parcel whose due time has passed goes before every
batch**. So a batch due sooner than a fresh parcel goes first (a work order near its
date), but a live stream's parcels wait behind batches at most ``PARCEL_DUE_S``, however
many batches a 10,000-piece work order queued or however late it runs; among
themselves, parcels keep the order they were paid in.

Atomicity. On PostgreSQL the next task is taken with ``SELECT … FOR UPDATE SKIP
LOCKED`` (concurrent villagers each get a different task without waiting on each
other); on SQLite every write transaction starts with ``BEGIN IMMEDIATE`` so writers are
serialized and the same select-then-conditional-UPDATE is atomic. A villager's own
concurrent claims are serialized by locking their membership rows first, so
``MAX_CLAIMS_PER_VILLAGER`` holds however many requests they fire at once; a claim
also rewrites those rows (same values), so that a claim made in one statement
(``fulfillment.hot_path``) notices one that committed while it ran.

This is the general way. On PostgreSQL the API first tries the claim and a parcel's
complete as one statement each (``fulfillment.hot_path``); what that statement leaves
undecided — expired leases, an order no longer paid, a batch's complete, every
refusal — comes here.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext
from sqlalchemy import bindparam, case, func, literal, select, update

from fulfillment import earnings, rates, service, work_orders
from fulfillment.errors import (
    AlreadyClaiming,
    LeaseAlreadyExtended,
    LeaseExpired,
    NotAMember,
    NotTheClaimer,
    TaskNotClaimed,
    WorkshopInactive,
)
from fulfillment.models import PackingTask, TaskKind, TaskState, Workshop, WorkshopMember
from shop.db import DbSession
from shop.errors import Conflict, NotFound, ValidationFailed
from shop.i18n import N_, _l
from shop.orders import service as orders

log = logging.getLogger(__name__)


def _by_kind(parcel: Any, batch: Any) -> Any:
    """A value that depends on the claimed row's kind, inside the claim's UPDATE."""
    return case((PackingTask.kind == TaskKind.BATCH.value, literal(batch)), else_=literal(parcel))


def next_task_id(workshop_id: int, now: datetime) -> Any:
    """The id of the task to claim, as one SQL expression (see the module docstring):
    the overdue parcel due first, else the task due first. Each look reads one partial
    index in order and stops at its first unlocked row (``ix_packing_tasks_parcel_queue``,
    ``ix_packing_tasks_queue``); PostgreSQL evaluates COALESCE's second argument only
    when the first is NULL, so only the task taken is locked."""
    queued = (PackingTask.workshop_id == workshop_id, PackingTask.state == TaskState.QUEUED)
    overdue_parcel = (
        select(PackingTask.id)
        .where(*queued, PackingTask.kind == TaskKind.PARCEL.value, PackingTask.due_at <= now)
        .order_by(PackingTask.due_at, PackingTask.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    due_first = (
        select(PackingTask.id)
        .where(*queued)
        .order_by(PackingTask.due_at, PackingTask.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return func.coalesce(overdue_parcel, due_first)


def claim_next(
    session: DbSession,
    workshop_id: int,
    *,
    user_id: int,
    now: datetime,
    lease_s: int,
    max_claims: int,
) -> PackingTask | None:
    """Claim the next task of the workshop for ``user_id`` (see the module docstring);
    None when the queue is empty. The claimer's level and bonus for the task's kind are
    fixed on it; a parcel's order moves to ``packing``. Raises NotFound, NotAMember,
    WorkshopInactive, AlreadyClaiming.
    """
    # Lock every membership row of this villager, in a fixed order: their concurrent
    # claims (in this or another workshop) wait here, one after another. The same read
    # brings their levels and the workshop's bonuses, which the claim fixes on the task.
    memberships = {
        row.workshop_id: row
        for row in session.execute(
            select(
                WorkshopMember.workshop_id,
                Workshop.active,
                WorkshopMember.parcel_level,
                WorkshopMember.batch_level,
                Workshop.level2_bonus_bp,
                Workshop.level3_bonus_bp,
            )
            .join(Workshop, Workshop.id == WorkshopMember.workshop_id)
            .where(WorkshopMember.user_id == user_id)
            .order_by(WorkshopMember.workshop_id)
            .with_for_update(of=WorkshopMember)
        )
    }
    me = memberships.get(workshop_id)
    if me is None:
        service.get_workshop(session, workshop_id)  # NotFound first: it exists or it does not
        raise NotAMember(
            _l("You are not a member of workshop %(workshop_id)s.", workshop_id=workshop_id)
        )
    if not me.active:
        raise WorkshopInactive(
            _l(
                "Workshop %(workshop_id)s is closed; its tasks moved elsewhere.",
                workshop_id=workshop_id,
            )
        )
    held = session.scalar(
        select(func.count(PackingTask.id)).where(
            PackingTask.state == TaskState.CLAIMED,
            PackingTask.claimed_by == user_id,
            PackingTask.lease_expires_at > now,
        )
    )
    if held is not None and held >= max_claims:
        raise AlreadyClaiming(
            _l("Finish or release the task you hold before claiming another."), holding=held
        )
    # The queue never waits for the beat task to return expired claims.
    expire_leases(session, now=now, workshop_id=workshop_id)

    parcel_bp = rates.bonus_bp(me.parcel_level, me.level2_bonus_bp, me.level3_bonus_bp)
    batch_bp = rates.bonus_bp(me.batch_level, me.level2_bonus_bp, me.level3_bonus_bp)
    bonus_bp = _by_kind(parcel_bp, batch_bp)
    while True:
        # One statement picks and takes it: the subqueries lock the task due next that
        # no other claim holds (SKIP LOCKED), the UPDATE claims it at this villager's
        # rate: base × bonus / 10000, half up (all whole numbers: floor division).
        task = session.scalar(
            update(PackingTask)
            .where(PackingTask.id == next_task_id(workshop_id, now))
            .values(
                state=TaskState.CLAIMED,
                claimed_by=user_id,
                claimed_at=now,
                lease_expires_at=now + timedelta(seconds=lease_s),
                level=_by_kind(me.parcel_level, me.batch_level),
                bonus_bp=bonus_bp,
                bonus_fen=(PackingTask.piece_rate_fen * bonus_bp + 5_000) // 10_000,
                lease_extended=False,
            )
            .returning(PackingTask)
            .execution_options(populate_existing=True)
        )
        if task is None:
            return None
        if task.kind == TaskKind.PARCEL and task.order_id is not None:
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
        # A claim in one statement (fulfillment.hot_path) that began before this one
        # commits must see that the villager's claims changed: a new row version.
        session.execute(_NEW_MEMBERSHIP_VERSIONS, {"claimer_id": user_id})
        return task


#: every claim leaves new versions of its villager's membership rows, the same values
#: (fulfillment.hot_path says why)
_NEW_MEMBERSHIP_VERSIONS = (
    update(WorkshopMember)
    .where(WorkshopMember.user_id == bindparam("claimer_id"))
    .values(parcel_level=WorkshopMember.parcel_level)
    .execution_options(synchronize_session=False)
)


def _refuse_complete(
    session: DbSession,
    task_id: int,
    *,
    user_id: int,
    now: datetime,
    pieces_done: int | None = None,
) -> None:
    """Why ``user_id`` may not complete or release the task. Raises NotFound,
    NotTheClaimer, LeaseExpired, TaskNotClaimed, ValidationFailed (``pieces_done``;
    Conflict if nothing is wrong any more)."""
    task = session.get(PackingTask, task_id, populate_existing=True)
    if task is None:
        raise NotFound(_l("No packing task %(task_id)s.", task_id=task_id))
    if task.state != TaskState.CLAIMED:
        if task.state == TaskState.PACKED and task.packed_by == user_id:
            raise TaskNotClaimed(_l("You already packed task %(task_id)s.", task_id=task_id))
        raise TaskNotClaimed(
            _l(
                "Task %(task_id)s is %(state)s, not claimed by you.",
                task_id=task_id,
                state=task.state,
            )
        )
    if task.claimed_by != user_id:
        raise NotTheClaimer(_l("Task %(task_id)s is claimed by someone else.", task_id=task_id))
    assert task.lease_expires_at is not None
    if task.lease_expires_at <= now:
        raise LeaseExpired(
            _l(
                "Your claim on task %(task_id)s expired at %(lease_expires_at)s; it went back to "
                "the queue.",
                task_id=task_id,
                lease_expires_at=task.lease_expires_at.isoformat(),
            )
        )
    if pieces_done is not None:
        _refuse_pieces(task, pieces_done)
    raise Conflict(
        _l("Task %(task_id)s changed while you completed it; try again.", task_id=task_id)
    )


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
    pieces_done: int | None = None,
) -> PackingTask:
    """The claimer finished the task: it is ``packed`` and its pay goes into the earnings
    ledger (base and bonus apart). A parcel: the order is ``packed`` with the parcel's
    trace code, and the units are drawn from the products' lots, first in, first out; a
    weight off by more than ``tolerance_bp`` (basis points of the expected weight) flags
    it for review. A batch: ``pieces_done`` (default all) is paid pro rata and the rest
    stays on the work order (``work_orders.finish_batch``). Raises NotFound,
    NotTheClaimer, LeaseExpired, TaskNotClaimed, ValidationFailed (pieces).

    One conditional UPDATE decides (only the claimer, only while the lease runs, pieces
    only for a batch and never more than planned); then the task's lines are loaded,
    the order moves, the lots are drawn and the ledger gains its entry.
    """
    stmt = update(PackingTask).where(*_own_claim(task_id, user_id, now))
    if pieces_done is not None:
        stmt = stmt.where(
            PackingTask.kind == TaskKind.BATCH.value, PackingTask.pieces >= pieces_done
        )
    task = session.scalar(
        stmt.values(
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
        _refuse_complete(session, task_id, user_id=user_id, now=now, pieces_done=pieces_done)
    assert task is not None and task.workshop_id is not None
    if task.kind == TaskKind.BATCH:
        base_fen, bonus_fen = work_orders.finish_batch(
            session, task, pieces_done=pieces_done or task.pieces or 0, now=now
        )
    else:
        assert task.order_id is not None
        if packed_weight_g is not None and weight_is_off(
            packed_weight_g, task.expected_weight_g, tolerance_bp
        ):
            task.needs_review = True  # rare: one more UPDATE, at the flush below
        # the order before the lots: the order every complete locks them in
        # (fulfillment.hot_path), so two completes never wait for each other in a circle
        orders.mark_packed(session, task.order_id, trace_code=task.trace_code)
        service.record_lots(session, task)
        base_fen, bonus_fen = task.piece_rate_fen, task.bonus_fen
    earnings.record_piece(
        session,
        user_id=user_id,
        workshop_id=task.workshop_id,
        task_id=task.id,
        base_fen=base_fen,
        bonus_fen=bonus_fen,
        level=task.level,
        now=now,
    )
    session.flush()
    return task


def _refuse_pieces(task: PackingTask, pieces_done: int) -> None:
    """Why ``pieces_done`` cannot complete the task. Raises ValidationFailed."""
    if task.kind == TaskKind.PARCEL:
        raise ValidationFailed(
            _l("A parcel is packed whole; `pieces_done` is for a batch."),
            {"pieces_done": [N_("Only for a batch task.")]},
        )
    raise ValidationFailed(
        _l(
            "This batch has %(pieces)s pieces; %(pieces_done)s cannot be done.",
            pieces=task.pieces,
            pieces_done=pieces_done,
        ),
        {"pieces_done": [gettext("At most %(pieces)s.", pieces=task.pieces)]},
    )


def weight_is_off(packed_g: int, expected_g: int, tolerance_bp: int) -> bool:
    """|packed − expected| > tolerance × expected, in integers (basis points)."""
    return abs(packed_g - expected_g) * 10_000 > expected_g * tolerance_bp


def release(session: DbSession, task_id: int, *, user_id: int, now: datetime) -> PackingTask:
    """The claimer gives the task back: it is queued again, the order back to ``paid``.
    Raises NotFound, NotTheClaimer, LeaseExpired, TaskNotClaimed."""
    task = _lock_own_claim(session, task_id, user_id=user_id, now=now)
    service.requeue(session, task)
    if task.order_id is not None:
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
            _l(
                "The lease of task %(task_id)s was already renewed once; finish or release it.",
                task_id=task_id,
            )
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
        if task.order_id is None:
            continue  # a batch: no order to move
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
