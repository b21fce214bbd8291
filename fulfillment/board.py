"""What the workshop pages read: queue depth and age per workshop, a villager's parcels of
the day with their pay, members with their names, a month's report (and as CSV).

Read queries only; the rules that change anything stay in ``service`` and ``claims``.
"""

from __future__ import annotations

import calendar
import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from fulfillment import earnings
from fulfillment.models import EarningEntry, PackingTask, TaskState, WorkshopMember
from shop.accounts.models import User
from shop.db import DbSession
from shop.errors import ValidationFailed
from shop.i18n import N_, _l

MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class QueueDepth:
    queued: int
    claimed: int
    oldest_queued_at: datetime | None  #: when the longest-waiting queued task was created


def queue_depths(
    session: DbSession, workshop_ids: list[int] | None = None
) -> dict[Any, QueueDepth]:
    """Per workshop id (None: tasks waiting for any active workshop): queued and claimed
    tasks and the oldest queued one."""
    stmt = (
        select(
            PackingTask.workshop_id,
            PackingTask.state,
            func.count(PackingTask.id),
            func.min(PackingTask.created_at),
        )
        .where(PackingTask.state.in_([TaskState.QUEUED.value, TaskState.CLAIMED.value]))
        .group_by(PackingTask.workshop_id, PackingTask.state)
    )
    if workshop_ids is not None:
        stmt = stmt.where(PackingTask.workshop_id.in_(workshop_ids))
    found: dict[Any, dict[str, Any]] = {}
    for workshop_id, state, count, oldest in session.execute(stmt).tuples():
        entry = found.setdefault(workshop_id, {"queued": 0, "claimed": 0, "oldest": None})
        entry[state] = int(count)
        if state == TaskState.QUEUED.value:
            entry["oldest"] = oldest
    return {
        key: QueueDepth(value["queued"], value["claimed"], value["oldest"])
        for key, value in found.items()
    }


def queue_tasks(session: DbSession, workshop_id: int, *, limit: int = 50) -> list[PackingTask]:
    """The workshop's queued and claimed tasks, oldest first (as they are claimed)."""
    return list(
        session.scalars(
            select(PackingTask)
            .where(
                PackingTask.workshop_id == workshop_id,
                PackingTask.state.in_([TaskState.QUEUED.value, TaskState.CLAIMED.value]),
            )
            .order_by(PackingTask.created_at, PackingTask.id)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class PackedParcel:
    task_id: int
    order_id: int | None  #: None for a batch of a work order
    packed_at: datetime
    amount_fen: int  #: what the ledger paid for it


def parcels_packed(session: DbSession, user_id: int, days: earnings.DayRange) -> list[PackedParcel]:
    """The parcels ``user_id`` was paid for in the range, latest first."""
    rows = session.execute(
        select(
            PackingTask.id, PackingTask.order_id, EarningEntry.earned_at, EarningEntry.amount_fen
        )
        .join(EarningEntry, EarningEntry.task_id == PackingTask.id)
        .where(
            EarningEntry.user_id == user_id,
            EarningEntry.earned_at >= days.start,
            EarningEntry.earned_at < days.end,
        )
        .order_by(EarningEntry.earned_at.desc(), EarningEntry.id.desc())
    ).tuples()
    return [PackedParcel(*row) for row in rows]


def members_with_users(session: DbSession, workshop_id: int) -> list[tuple[WorkshopMember, User]]:
    """The workshop's members and who they are, leads first."""
    return list(
        session.execute(
            select(WorkshopMember, User)
            .join(User, User.id == WorkshopMember.user_id)
            .where(WorkshopMember.workshop_id == workshop_id)
            .order_by(WorkshopMember.lead.desc(), User.display_name, User.id)
        ).tuples()
    )


def month_range(month: str | None, tz_name: str, now: datetime) -> earnings.DayRange:
    """``YYYY-MM`` (default: this month in the shop's time zone) as a range of days.
    Raises ValidationFailed."""
    tz = ZoneInfo(tz_name)
    if not month:
        today = now.astimezone(tz).date()
        year, number = today.year, today.month
    else:
        match = MONTH.match(month)
        if match is None or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
            raise ValidationFailed(_l("Give the month as YYYY-MM."), {"month": [N_("YYYY-MM")]})
        year, number = int(match.group(1)), int(match.group(2))
    last = calendar.monthrange(year, number)[1]
    return earnings.DayRange(date(year, number, 1), date(year, number, last), tz)


REPORT_CSV_HEADER = ("user_id", "name", "parcels", "earnings_fen", "days_worked")


def report_csv(report: dict[str, Any], names: dict[int, str]) -> str:
    """A workshop report's workers as CSV (money in integer fen), then a total line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(REPORT_CSV_HEADER)
    for worker in report["workers"]:
        writer.writerow(
            [
                worker["user_id"],
                _cell(names.get(worker["user_id"], "")),
                worker["tasks"],
                worker["earnings_fen"],
                worker["days_worked"],
            ]
        )
    writer.writerow(["total", "", report["tasks_packed"], report["wages_fen"], ""])
    return out.getvalue()


def _cell(value: str) -> str:
    """A name that a spreadsheet would run as a formula is written as plain text."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def user_names(session: DbSession, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids)))
    return {row.id: row.display_name for row in rows}
