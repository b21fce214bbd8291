"""Workshops, members, and packing tasks: creating one per paid order, assigning it to a
workshop, dropping it when the order is cancelled. Claims and leases are in ``claims``,
the earnings ledger and reports in ``earnings``."""

from __future__ import annotations

import heapq
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from fulfillment.errors import AlreadyMember, NotAMember, NotAVillager
from fulfillment.models import (
    PackingTask,
    PackingTaskLine,
    PackingTaskLot,
    TaskKind,
    TaskState,
    Workshop,
    WorkshopMember,
)
from shop.accounts import service as accounts
from shop.accounts.models import Principal, Role
from shop.catalog import lots
from shop.catalog import service as catalog
from shop.catalog.models import StockLot
from shop.core.sql import dialect_insert
from shop.db import DbSession
from shop.errors import NotFound
from shop.i18n import _l
from shop.orders import service as orders
from shop.orders.models import OrderState

log = logging.getLogger(__name__)

#: a parcel is due this long after its order is paid (``PARCEL_DUE_S``; claims, fairness)
DEFAULT_PARCEL_DUE_S = 2 * 3600
#: 31¹⁰ ≈ 8e14 codes: a million parcels a year meet a collision about once in 800 years
TRACE_CODE_LENGTH = 10


# ---------------------------------------------------------------- workshops and members


def create_workshop(
    session: DbSession, *, name: str, village: str, serves_disabled: bool = False
) -> Workshop:
    """Open a workshop; tasks waiting for any active workshop are assigned now."""
    workshop = Workshop(name=name, village=village, active=True, serves_disabled=serves_disabled)
    session.add(workshop)
    session.flush()  # the id, for the assignment below and the caller
    assign_unassigned(session)
    return workshop


def get_workshop(session: DbSession, workshop_id: int) -> Workshop:
    """The workshop. Raises NotFound."""
    workshop = session.get(Workshop, workshop_id)
    if workshop is None:
        raise NotFound(_l("No workshop %(workshop_id)s.", workshop_id=workshop_id))
    return workshop


def list_workshops(session: DbSession, *, member_id: int | None = None) -> list[Workshop]:
    """Every workshop, or only those ``member_id`` works at."""
    stmt = select(Workshop).order_by(Workshop.id)
    if member_id is not None:
        stmt = stmt.join(WorkshopMember).where(WorkshopMember.user_id == member_id)
    return list(session.scalars(stmt))


def deactivate_workshop(session: DbSession, workshop_id: int) -> Workshop:
    """Close a workshop: its queued parcels move to the other active workshops (or wait,
    unassigned, for one). Claimed tasks stay with their villagers; batches stay with
    their work order's workshop (the partner's material is there). Raises NotFound."""
    workshop = get_workshop(session, workshop_id)
    workshop.active = False
    session.flush()  # the balancing below must no longer count this workshop as active
    queued = session.scalars(
        select(PackingTask)
        .where(
            PackingTask.workshop_id == workshop_id,
            PackingTask.state == TaskState.QUEUED,
            PackingTask.kind == TaskKind.PARCEL.value,
        )
        .order_by(PackingTask.id)
        .with_for_update()
    ).all()
    _distribute(session, queued)
    return workshop


def activate_workshop(session: DbSession, workshop_id: int) -> Workshop:
    """Reopen a workshop; unassigned tasks come to it. Raises NotFound."""
    workshop = get_workshop(session, workshop_id)
    workshop.active = True
    session.flush()
    assign_unassigned(session)
    return workshop


def add_member(session: DbSession, workshop_id: int, *, user_id: int, lead: bool) -> WorkshopMember:
    """Add a villager to a workshop. Raises NotFound, NotAVillager (422), AlreadyMember (409)."""
    get_workshop(session, workshop_id)
    user = accounts.get_user(session, user_id)
    if user is None:
        raise NotFound(_l("No user %(user_id)s.", user_id=user_id))
    if not user.has_role(Role.VILLAGER):
        raise NotAVillager(
            _l("User %(user_id)s does not hold the villager role.", user_id=user_id),
            {"user_id": ["The user must hold the villager role."]},
        )
    if session.get(WorkshopMember, (workshop_id, user_id)) is not None:
        raise AlreadyMember(
            _l(
                "User %(user_id)s is already a member of workshop %(workshop_id)s.",
                user_id=user_id,
                workshop_id=workshop_id,
            )
        )
    member = WorkshopMember(workshop_id=workshop_id, user_id=user_id, lead=lead)
    session.add(member)
    session.flush()  # a racing duplicate fails here on the primary key
    return member


def list_members(session: DbSession, workshop_id: int) -> list[WorkshopMember]:
    get_workshop(session, workshop_id)
    return list(
        session.scalars(
            select(WorkshopMember)
            .where(WorkshopMember.workshop_id == workshop_id)
            .order_by(WorkshopMember.user_id)
        )
    )


def membership(session: DbSession, workshop_id: int, user_id: int) -> WorkshopMember | None:
    return session.get(WorkshopMember, (workshop_id, user_id))


def _member(session: DbSession, workshop_id: int, user_id: int) -> WorkshopMember:
    get_workshop(session, workshop_id)
    member = membership(session, workshop_id, user_id)
    if member is None:
        raise NotFound(
            _l(
                "User %(user_id)s is not a member of workshop %(workshop_id)s.",
                user_id=user_id,
                workshop_id=workshop_id,
            )
        )
    return member


def remove_member(session: DbSession, workshop_id: int, user_id: int) -> None:
    """Take a villager off a workshop. A task they hold stays theirs until it is done,
    released or its lease runs out; earnings stay. Raises NotFound."""
    session.delete(_member(session, workshop_id, user_id))
    session.flush()


def set_lead(session: DbSession, workshop_id: int, user_id: int, *, lead: bool) -> WorkshopMember:
    """Mark a member as the workshop's lead (or no longer). Raises NotFound."""
    member = _member(session, workshop_id, user_id)
    member.lead = lead
    session.flush()
    return member


def led_workshops(session: DbSession, user_id: int) -> list[Workshop]:
    """The workshops ``user_id`` is a lead of."""
    return list(
        session.scalars(
            select(Workshop)
            .join(WorkshopMember)
            .where(WorkshopMember.user_id == user_id, WorkshopMember.lead.is_(True))
            .order_by(Workshop.id)
        )
    )


def check_can_see_workshop(session: DbSession, workshop_id: int, user: Principal) -> Workshop:
    """Admins and the workshop's villagers. Raises NotFound, NotAMember."""
    workshop = get_workshop(session, workshop_id)
    if user.has_role(Role.ADMIN):
        return workshop
    if not user.has_role(Role.VILLAGER) or membership(session, workshop_id, user.id) is None:
        raise NotAMember(
            _l("You are not a member of workshop %(workshop_id)s.", workshop_id=workshop_id)
        )
    return workshop


def check_can_see_report(session: DbSession, workshop_id: int, user: Principal) -> Workshop:
    """Admins and the workshop's lead. Raises NotFound, NotAMember."""
    workshop = get_workshop(session, workshop_id)
    if user.has_role(Role.ADMIN):
        return workshop
    member = membership(session, workshop_id, user.id)
    if member is None or not member.lead or not user.has_role(Role.VILLAGER):
        raise NotAMember(
            _l(
                "Only an admin or the lead of workshop %(workshop_id)s sees its report.",
                workshop_id=workshop_id,
            )
        )
    return workshop


# ---------------------------------------------------------------- tasks


def get_task(session: DbSession, task_id: int) -> PackingTask:
    """The packing task. Raises NotFound."""
    task = session.get(PackingTask, task_id)
    if task is None:
        raise NotFound(_l("No packing task %(task_id)s.", task_id=task_id))
    return task


def check_can_see_task(session: DbSession, task: PackingTask, user: Principal) -> None:
    """Admins, the claimer, and the villagers of the task's workshop. Raises NotAMember."""
    if user.has_role(Role.ADMIN):
        return
    if user.has_role(Role.VILLAGER):
        if task.claimed_by == user.id or task.packed_by == user.id:
            return
        if task.workshop_id is not None and membership(session, task.workshop_id, user.id):
            return
    raise NotAMember(
        _l(
            "Packing task %(task_id)s belongs to a workshop you are not a member of.",
            task_id=task.id,
        )
    )


def list_tasks(session: DbSession, workshop_id: int, *, state: str | None) -> Any:
    """A select of the workshop's tasks, for pagination (oldest first)."""
    stmt = select(PackingTask).where(PackingTask.workshop_id == workshop_id)
    if state is not None:
        stmt = stmt.where(PackingTask.state == state)
    return stmt


def create_packing_task(
    session: DbSession, order_id: int, *, now: datetime, due_s: int = DEFAULT_PARCEL_DUE_S
) -> PackingTask | None:
    """Queue the packing task of a paid order, due ``due_s`` after payment, with its trace
    code (printed on the slip before it is packed); returns it, or None when the order is
    not (or no longer) paid. Idempotent: an order has one task (UNIQUE), a repeat
    returns it."""
    existing = session.scalar(select(PackingTask).where(PackingTask.order_id == order_id))
    if existing is not None:
        return existing
    try:
        order = orders.get_order(session, order_id)
    except NotFound:
        log.warning("no packing task for order %s: no such order", order_id)
        return None
    if order.state != OrderState.PAID:
        log.info("no packing task for order %s: it is %s", order_id, order.state)
        return None

    lines: list[dict[str, Any]] = []
    for line in order.lines:
        product = catalog.get_product(session, line.product_id)
        lines.append(
            {
                "product_id": product.id,
                "name": product.name,
                "unit_label": product.unit_label,
                "qty": line.qty,
                "unit_weight_g": product.unit_weight_g,
                "packing_rate_fen": product.packing_rate_fen,
            }
        )
    paid_at = order.paid_at or now
    values = {
        "kind": TaskKind.PARCEL.value,
        "order_id": order_id,
        "workshop_id": least_busy_workshop(session),
        "state": TaskState.QUEUED.value,
        "piece_rate_fen": sum(x["qty"] * x["packing_rate_fen"] for x in lines),
        "expected_weight_g": sum(x["qty"] * x["unit_weight_g"] for x in lines),
        "paid_at": paid_at,
        "due_at": paid_at + timedelta(seconds=due_s),
        "created_at": now,
        "needs_review": False,
        "bonus_bp": 0,
        "bonus_fen": 0,
        "trace_code": lots.new_code(TRACE_CODE_LENGTH),
    }
    # INSERT … ON CONFLICT DO NOTHING: a duplicate event racing this one inserts nothing
    # and raises nothing; whoever lost returns the winner's task.
    task_id = session.execute(
        dialect_insert(session, PackingTask)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["order_id"])
        .returning(PackingTask.id)
    ).scalar()
    if task_id is None:
        return session.scalar(select(PackingTask).where(PackingTask.order_id == order_id))
    session.add_all(PackingTaskLine(task_id=task_id, **line) for line in lines)
    session.flush()  # so the task below loads its lines
    return session.get(PackingTask, task_id)


def drop_packing_task(session: DbSession, order_id: int) -> bool:
    """The order was cancelled or refunded: its queued task is cancelled. Returns whether
    one was. A claimed or packed task is left alone (the order could not be refunded)."""
    dropped = session.execute(
        update(PackingTask)
        .where(PackingTask.order_id == order_id, PackingTask.state == TaskState.QUEUED)
        .values(state=TaskState.CANCELLED.value)
        .returning(PackingTask.id)
    ).scalar()
    return dropped is not None


# ---------------------------------------------------------------- assignment


def _queued_counts(session: DbSession) -> list[tuple[int, int]]:
    """(queued parcels, workshop id) for every active workshop. Batches do not count: a
    workshop with a large work order still gets its share of parcels, and the queue's
    fairness rule (``claims``) keeps them from waiting behind the batches."""
    rows = session.execute(
        select(Workshop.id, func.count(PackingTask.id))
        .outerjoin(
            PackingTask,
            (PackingTask.workshop_id == Workshop.id)
            & (PackingTask.state == TaskState.QUEUED)
            & (PackingTask.kind == TaskKind.PARCEL.value),
        )
        .where(Workshop.active.is_(True))
        .group_by(Workshop.id)
    ).all()
    return [(count, workshop_id) for workshop_id, count in rows]


def least_busy_workshop(session: DbSession) -> int | None:
    """The active workshop with the fewest queued tasks (ties: the lowest id), or None."""
    counts = _queued_counts(session)
    return min(counts)[1] if counts else None


def _distribute(session: DbSession, tasks: Iterable[PackingTask]) -> None:
    """Give each task, oldest first, to the active workshop with the fewest queued tasks."""
    heap = _queued_counts(session)
    heapq.heapify(heap)
    for task in tasks:
        if not heap:
            task.workshop_id = None
            continue
        count, workshop_id = heapq.heappop(heap)
        task.workshop_id = workshop_id
        heapq.heappush(heap, (count + 1, workshop_id))
    session.flush()


def assign_unassigned(session: DbSession) -> None:
    """Queued tasks that had no active workshop go to one now."""
    waiting = session.scalars(
        select(PackingTask)
        .where(PackingTask.workshop_id.is_(None), PackingTask.state == TaskState.QUEUED)
        .where(PackingTask.kind == TaskKind.PARCEL.value)
        .order_by(PackingTask.id)
        .with_for_update()
    ).all()
    if waiting:
        _distribute(session, waiting)


def requeue(session: DbSession, task: PackingTask) -> None:
    """Put a claimed task back in the queue (release or expired lease), same place in
    line. If its workshop has closed meanwhile, a parcel goes to another one (a batch
    stays with its work order's workshop). The next claim fixes the rate again."""
    task.state = TaskState.QUEUED
    task.claimed_by = None
    task.claimed_at = None
    task.lease_expires_at = None
    task.level = None
    task.bonus_bp = task.bonus_fen = 0
    if task.kind == TaskKind.BATCH:
        return
    workshop = session.get(Workshop, task.workshop_id) if task.workshop_id else None
    if workshop is None or not workshop.active:
        session.flush()  # the task must count as queued-but-unplaced before balancing
        _distribute(session, [task])


# ---------------------------------------------------------------- lots and trace codes


def record_lots(session: DbSession, task: PackingTask) -> list[PackingTaskLot]:
    """A parcel is packed: draw its units from its products' lots, first in, first out,
    and keep which lots it drew from."""
    wanted: dict[int, int] = defaultdict(int)
    for line in task.lines:
        wanted[line.product_id] += line.qty
    drawn = [
        PackingTaskLot(task_id=task.id, lot_id=lot.id, product_id=lot.product_id, qty=qty)
        for lot, qty in lots.draw_fifo(session, wanted)
    ]
    session.add_all(drawn)
    return drawn


def task_lots(session: DbSession, task_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The lots each task drew from: ``{task_id: [{code, product_id, qty}]}``."""
    if not task_ids:
        return {}
    rows = session.execute(
        select(PackingTaskLot.task_id, StockLot.code, PackingTaskLot.product_id, PackingTaskLot.qty)
        .join(StockLot, StockLot.id == PackingTaskLot.lot_id)
        .where(PackingTaskLot.task_id.in_(task_ids))
        .order_by(PackingTaskLot.task_id, StockLot.received_at, StockLot.id)
    )
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for task_id, code, product_id, qty in rows:
        found[task_id].append({"code": code, "product_id": product_id, "qty": qty})
    return found


def packed_parcel(session: DbSession, trace_code: str) -> PackingTask | None:
    """The packed parcel with this trace code (any case), or None."""
    return session.scalar(
        select(PackingTask).where(
            PackingTask.trace_code == lots.normalize_code(trace_code),
            PackingTask.kind == TaskKind.PARCEL.value,
            PackingTask.state == TaskState.PACKED,
        )
    )


def lots_reaching_buyers(session: DbSession, lot_ids: list[int]) -> dict[int, dict[str, Any]]:
    """For each lot that reached buyers: ``{parcels, units, first_packed_at}``."""
    if not lot_ids:
        return {}
    rows = session.execute(
        select(
            PackingTaskLot.lot_id,
            func.count(PackingTaskLot.task_id),
            func.sum(PackingTaskLot.qty),
            func.min(PackingTask.packed_at),
        )
        .join(PackingTask, PackingTask.id == PackingTaskLot.task_id)
        .where(PackingTaskLot.lot_id.in_(lot_ids))
        .group_by(PackingTaskLot.lot_id)
    )
    return {
        lot_id: {"parcels": parcels, "units": int(units), "first_packed_at": first}
        for lot_id, parcels, units, first in rows
    }
