"""Partner firms and their work orders (来料加工): piece work in batches, in the same
queue as the parcels, paid into the same ledger.

A work order of ``pieces`` in batches of ``batch_pieces`` becomes ⌈pieces / batch_pieces⌉
batch tasks (the last one holds what is left over). The n-th of N batches is due n/N of
the way from the order's creation to the end of its due day (``SHOP_TIMEZONE``), so its
batches come up in the queue as the date nears, not all at once (``claims`` says how
they share the queue with parcels).

A batch completed short (``pieces_done`` < its pieces) pays
``round_half_up(batch_rate_fen × pieces_done / batch_pieces)`` and charges the partner
``round_half_up(batch_price_fen × pieces_done / batch_pieces)``; the pieces not done stay
on the work order as a new batch task of their own, due when the short one was (it keeps
its place in line). The partner's amount is kept per batch, like the wage, so a
statement for any period is the exact sum of its batches.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext
from sqlalchemy import func, insert, select, update

from fulfillment import rates
from fulfillment.earnings import DayRange
from fulfillment.errors import WorkshopInactive
from fulfillment.models import (
    EarningEntry,
    PackingTask,
    Partner,
    TaskKind,
    TaskState,
    WorkOrder,
    WorkOrderState,
)
from fulfillment.service import get_workshop
from shop.db import DbSession
from shop.errors import NotFound, ValidationFailed
from shop.i18n import _l

#: one work order queues at most this many batches (a 10,000-piece order in batches of 1)
MAX_BATCHES = 10_000


def create_partner(session: DbSession, *, name: str, contact: str | None) -> Partner:
    partner = Partner(name=name, contact=contact)
    session.add(partner)
    session.flush()  # the caller shows the id
    return partner


def get_partner(session: DbSession, partner_id: int) -> Partner:
    """The partner. Raises NotFound."""
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(_l("No partner %(partner_id)s.", partner_id=partner_id))
    return partner


def list_partners(session: DbSession) -> list[Partner]:
    return list(session.scalars(select(Partner).order_by(Partner.id)))


def batch_due_times(created: datetime, due_end: datetime, batches: int) -> list[datetime]:
    """When each batch is due: evenly spread from ``created`` to ``due_end`` (all at
    ``due_end`` when it has already passed)."""
    span = max(due_end - created, timedelta(0))
    return [created + span * n / batches for n in range(1, batches + 1)]


def end_of_day(day: date, tz_name: str) -> datetime:
    """The first instant after ``day`` in the business time zone."""
    return datetime.combine(day + timedelta(days=1), time(0), ZoneInfo(tz_name))


def create_work_order(
    session: DbSession,
    *,
    partner_id: int,
    workshop_id: int,
    item: str,
    pieces: int,
    batch_pieces: int,
    batch_rate_fen: int,
    batch_price_fen: int,
    due_on: date,
    created_by: int | None,
    now: datetime,
    tz_name: str,
) -> WorkOrder:
    """Record a work order and queue its batches at the workshop. Raises NotFound,
    ValidationFailed (batch larger than the order, too many batches), WorkshopInactive."""
    get_partner(session, partner_id)
    workshop = get_workshop(session, workshop_id)
    if not workshop.active:
        raise WorkshopInactive(
            _l(
                "Workshop %(workshop_id)s is closed; it takes no work orders.",
                workshop_id=workshop_id,
            )
        )
    if batch_pieces > pieces:
        raise ValidationFailed(
            _l("A batch cannot hold more pieces than the order."),
            {"batch_pieces": [gettext("At most %(pieces)s (the order's pieces).", pieces=pieces)]},
        )
    batches = -(-pieces // batch_pieces)
    if batches > MAX_BATCHES:
        raise ValidationFailed(
            _l(
                "%(batches)s batches is more than one work order may queue (%(MAX_BATCHES)s).",
                batches=batches,
                MAX_BATCHES=MAX_BATCHES,
            ),
            {
                "batch_pieces": [
                    gettext("At least %(value)s pieces a batch.", value=-(-pieces // MAX_BATCHES))
                ]
            },
        )
    order = WorkOrder(
        partner_id=partner_id,
        workshop_id=workshop_id,
        item=item,
        pieces=pieces,
        batch_pieces=batch_pieces,
        batch_rate_fen=batch_rate_fen,
        batch_price_fen=batch_price_fen,
        due_on=due_on,
        state=WorkOrderState.OPEN.value,
        created_by=created_by,
        created_at=now,
    )
    session.add(order)
    session.flush()  # the id, for its batches
    sizes = [batch_pieces] * (pieces // batch_pieces)
    if pieces % batch_pieces:
        sizes.append(pieces % batch_pieces)
    dues = batch_due_times(now, end_of_day(due_on, tz_name), len(sizes))
    # one INSERT of every batch (executemany), not an ORM object each
    session.execute(
        insert(PackingTask),
        [_batch_values(order, size, due_at, now) for size, due_at in zip(sizes, dues, strict=True)],
    )
    return order


def _batch_values(order: WorkOrder, pieces: int, due_at: datetime, now: datetime) -> dict[str, Any]:
    return {
        "kind": TaskKind.BATCH.value,
        "work_order_id": order.id,
        "workshop_id": order.workshop_id,
        "pieces": pieces,
        "state": TaskState.QUEUED.value,
        "piece_rate_fen": rates.batch_base_fen(order.batch_rate_fen, pieces, order.batch_pieces),
        "expected_weight_g": 0,
        "due_at": due_at,
        "created_at": now,
        "needs_review": False,
        "bonus_bp": 0,
        "bonus_fen": 0,
    }


def get_work_order(session: DbSession, work_order_id: int) -> WorkOrder:
    """The work order. Raises NotFound."""
    order = session.get(WorkOrder, work_order_id)
    if order is None:
        raise NotFound(_l("No work order %(work_order_id)s.", work_order_id=work_order_id))
    return order


def finish_batch(
    session: DbSession, task: PackingTask, *, pieces_done: int, now: datetime
) -> tuple[int, int]:
    """A batch task was completed with ``pieces_done`` of its pieces: price it for the
    worker and the partner, queue what is left as a new batch, close the work order when
    every piece is done. Returns the worker's (base_fen, bonus_fen)."""
    assert task.work_order_id is not None and task.pieces is not None
    # Locked: two batches finishing at once must not both think they were the last.
    order = session.scalar(
        select(WorkOrder).where(WorkOrder.id == task.work_order_id).with_for_update()
    )
    assert order is not None
    base_fen = rates.batch_base_fen(order.batch_rate_fen, pieces_done, order.batch_pieces)
    task.pieces_done = pieces_done
    task.partner_fen = rates.batch_partner_fen(
        order.batch_price_fen, pieces_done, order.batch_pieces
    )
    left = task.pieces - pieces_done
    if left > 0:
        session.add(PackingTask(**_batch_values(order, left, task.due_at, now)))
    session.flush()
    if left == 0:
        session.execute(
            update(WorkOrder)
            .where(
                WorkOrder.id == order.id,
                WorkOrder.pieces
                <= select(func.coalesce(func.sum(PackingTask.pieces_done), 0))
                .where(PackingTask.work_order_id == order.id)
                .scalar_subquery(),
            )
            .values(state=WorkOrderState.DONE.value, done_at=now)
        )
    return base_fen, rates.bonus_fen(base_fen, task.bonus_bp)


def progress(session: DbSession, order: WorkOrder) -> dict[str, Any]:
    """The work order with what is done: pieces, batches, wages (the ledger's entries for
    its batches, bonuses included) and what the partner owes."""
    done = session.execute(
        select(
            func.count(PackingTask.id),
            func.coalesce(func.sum(PackingTask.pieces_done), 0),
            func.coalesce(func.sum(PackingTask.partner_fen), 0),
        ).where(PackingTask.work_order_id == order.id, PackingTask.state == TaskState.PACKED)
    ).one()
    wages = session.scalar(
        select(func.coalesce(func.sum(EarningEntry.amount_fen), 0))
        .join(PackingTask, PackingTask.id == EarningEntry.task_id)
        .where(PackingTask.work_order_id == order.id)
    )
    open_tasks = session.scalar(
        select(func.count(PackingTask.id)).where(
            PackingTask.work_order_id == order.id,
            PackingTask.state.in_([TaskState.QUEUED.value, TaskState.CLAIMED.value]),
        )
    )
    return {
        **work_order_json(order),
        "batches_done": int(done[0]),
        "batches_open": int(open_tasks or 0),
        "pieces_done": int(done[1]),
        "pieces_left": order.pieces - int(done[1]),
        "wages_fen": int(wages or 0),
        "partner_amount_fen": int(done[2]),
    }


def work_order_json(order: WorkOrder) -> dict[str, Any]:
    return {
        "id": order.id,
        "partner_id": order.partner_id,
        "workshop_id": order.workshop_id,
        "item": order.item,
        "pieces": order.pieces,
        "batch_pieces": order.batch_pieces,
        "batch_rate_fen": order.batch_rate_fen,
        "batch_price_fen": order.batch_price_fen,
        "due_on": order.due_on,
        "batches": -(-order.pieces // order.batch_pieces),
        "state": order.state,
        "created_at": order.created_at,
        "done_at": order.done_at,
    }


def partner_statement(session: DbSession, partner_id: int, days: DayRange) -> dict[str, Any]:
    """What a partner's work orders got done in the range (batches by the day they were
    finished): pieces, what the partner owes, and the wages paid out of it, in total and
    per work order. Raises NotFound."""
    partner = get_partner(session, partner_id)
    rows = session.execute(
        select(
            WorkOrder.id,
            WorkOrder.item,
            WorkOrder.workshop_id,
            func.count(PackingTask.id),
            func.coalesce(func.sum(PackingTask.pieces_done), 0),
            func.coalesce(func.sum(PackingTask.partner_fen), 0),
            func.coalesce(func.sum(EarningEntry.amount_fen), 0),
        )
        .join(PackingTask, PackingTask.work_order_id == WorkOrder.id)
        .join(EarningEntry, EarningEntry.task_id == PackingTask.id)
        .where(
            WorkOrder.partner_id == partner_id,
            PackingTask.state == TaskState.PACKED,
            PackingTask.packed_at >= days.start,
            PackingTask.packed_at < days.end,
        )
        .group_by(WorkOrder.id, WorkOrder.item, WorkOrder.workshop_id)
        .order_by(WorkOrder.id)
    ).all()
    work_orders = [
        {
            "id": order_id,
            "item": item,
            "workshop_id": workshop_id,
            "batches": int(batches),
            "pieces": int(pieces),
            "partner_amount_fen": int(owed),
            "wages_fen": int(wages),
        }
        for order_id, item, workshop_id, batches, pieces, owed, wages in rows
    ]
    return {
        "partner_id": partner.id,
        "name": partner.name,
        "from": days.first,
        "to": days.last,
        "pieces": sum(w["pieces"] for w in work_orders),
        "partner_amount_fen": sum(w["partner_amount_fen"] for w in work_orders),
        "wages_fen": sum(w["wages_fen"] for w in work_orders),
        "work_orders": work_orders,
    }
