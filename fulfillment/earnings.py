"""The piece-rate ledger and what is read from it: a villager's earnings by day, and the
workshop reports a county uses to show what a common-prosperity workshop pays its people.

Days are business days in ``SHOP_TIMEZONE`` (Asia/Shanghai by default), not UTC days: a
task packed at 07:30 in Qingyuan is that day's work, though it is 23:30 UTC the day before.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext
from sqlalchemy import select

from fulfillment.models import EarningEntry, PackingTask, TaskKind, TaskState, Workshop
from shop.db import DbSession
from shop.errors import NotFound, ValidationFailed
from shop.i18n import N_, _l

#: the longest range one earnings or report request may cover
MAX_RANGE_DAYS = 366


def record_piece(
    session: DbSession,
    *,
    user_id: int,
    workshop_id: int,
    task_id: int,
    base_fen: int,
    bonus_fen: int,
    level: int | None,
    now: datetime,
) -> EarningEntry:
    """Pay for one finished task: a new ledger entry (UNIQUE per task, so never twice),
    its base rate and the claimer's skill bonus kept apart."""
    entry = EarningEntry(
        user_id=user_id,
        workshop_id=workshop_id,
        task_id=task_id,
        amount_fen=base_fen + bonus_fen,
        base_fen=base_fen,
        bonus_fen=bonus_fen,
        level=level,
        earned_at=now,
    )
    session.add(entry)
    return entry


def record_correction(
    session: DbSession, entry_id: int, *, amount_fen: int, reason: str, now: datetime
) -> EarningEntry:
    """Correct a ledger entry by adding another (the original is never changed); the
    amount is added to what the original paid (negative to take back). Raises NotFound."""
    original = session.get(EarningEntry, entry_id)
    if original is None:
        raise NotFound(_l("No earnings entry %(entry_id)s.", entry_id=entry_id))
    entry = EarningEntry(
        user_id=original.user_id,
        workshop_id=original.workshop_id,
        corrects_id=original.id,
        amount_fen=amount_fen,
        base_fen=amount_fen,  # a correction is not a bonus
        bonus_fen=0,
        reason=reason,
        earned_at=now,
    )
    session.add(entry)
    session.flush()  # the caller shows the id
    return entry


@dataclass(frozen=True)
class DayRange:
    """``first`` … ``last`` inclusive, business days in ``tz``."""

    first: date
    last: date
    tz: ZoneInfo

    @classmethod
    def parse(cls, first: date | None, last: date | None, tz_name: str, now: datetime) -> DayRange:
        """Defaults: the 30 days up to today. Raises ValidationFailed."""
        tz = ZoneInfo(tz_name)
        today = now.astimezone(tz).date()
        last = last or (today if first is None else max(today, first))
        first = first or last - timedelta(days=29)
        if first > last:
            raise ValidationFailed(
                _l("`from` is after `to`."), {"from": [N_("Must not be after `to`.")]}
            )
        if (last - first).days >= MAX_RANGE_DAYS:
            raise ValidationFailed(
                _l(
                    "Ask for at most %(MAX_RANGE_DAYS)s days at a time.",
                    MAX_RANGE_DAYS=MAX_RANGE_DAYS,
                ),
                {
                    "to": [
                        gettext(
                            "At most %(MAX_RANGE_DAYS)s days after `from`.",
                            MAX_RANGE_DAYS=MAX_RANGE_DAYS,
                        )
                    ]
                },
            )
        return cls(first, last, tz)

    @property
    def start(self) -> datetime:
        """The first instant of ``first`` in the business time zone."""
        return datetime.combine(self.first, time(0), self.tz)

    @property
    def end(self) -> datetime:
        """The first instant after ``last`` (exclusive bound)."""
        return datetime.combine(self.last + timedelta(days=1), time(0), self.tz)

    def day_of(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()


def villager_earnings(session: DbSession, user_id: int, days: DayRange) -> dict[str, Any]:
    """``{tasks_packed, earnings_fen, by_day: [{date, tasks, earnings_fen}]}`` for the range;
    corrections count in the money, not in the tasks. Days without entries are left out."""
    entries = session.execute(
        select(EarningEntry.earned_at, EarningEntry.amount_fen, EarningEntry.task_id)
        .where(
            EarningEntry.user_id == user_id,
            EarningEntry.earned_at >= days.start,
            EarningEntry.earned_at < days.end,
        )
        .order_by(EarningEntry.earned_at, EarningEntry.id)
    ).all()
    tasks: dict[date, int] = defaultdict(int)
    fen: dict[date, int] = defaultdict(int)
    for earned_at, amount_fen, task_id in entries:
        day = days.day_of(earned_at)
        fen[day] += amount_fen
        tasks[day] += task_id is not None
    return {
        "from": days.first,
        "to": days.last,
        "timezone": days.tz.key,
        "tasks_packed": sum(tasks.values()),
        "earnings_fen": sum(fen.values()),
        "by_day": [
            {"date": day, "tasks": tasks[day], "earnings_fen": fen[day]} for day in sorted(fen)
        ],
    }


def median_int(values: list[int]) -> int | None:
    """The median, in whole seconds (the mean of the middle two, rounded down)."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) // 2


def _report(entries: list[Any], waits_s: list[int], days: DayRange) -> dict[str, Any]:
    per_worker: dict[int, dict[str, Any]] = {}
    for user_id, earned_at, amount_fen, task_id in entries:
        worker = per_worker.setdefault(
            user_id, {"user_id": user_id, "tasks": 0, "earnings_fen": 0, "days": set()}
        )
        worker["earnings_fen"] += amount_fen
        if task_id is not None:
            worker["tasks"] += 1
            worker["days"].add(days.day_of(earned_at))
    workers = [
        {
            "user_id": w["user_id"],
            "tasks": w["tasks"],
            "earnings_fen": w["earnings_fen"],
            "days_worked": len(w["days"]),
        }
        for w in sorted(per_worker.values(), key=lambda w: w["user_id"])
    ]
    return {
        "from": days.first,
        "to": days.last,
        "tasks_packed": sum(w["tasks"] for w in workers),
        "wages_fen": sum(w["earnings_fen"] for w in workers),
        "active_workers": sum(1 for w in workers if w["tasks"] > 0),
        "workers": workers,
        "median_paid_to_packed_s": median_int(waits_s),
    }


def _entries(session: DbSession, days: DayRange, workshop_id: int | None) -> list[Any]:
    stmt = select(
        EarningEntry.workshop_id,
        EarningEntry.user_id,
        EarningEntry.earned_at,
        EarningEntry.amount_fen,
        EarningEntry.task_id,
    ).where(EarningEntry.earned_at >= days.start, EarningEntry.earned_at < days.end)
    if workshop_id is not None:
        stmt = stmt.where(EarningEntry.workshop_id == workshop_id)
    return list(session.execute(stmt.order_by(EarningEntry.id)).all())


def _waits(session: DbSession, days: DayRange, workshop_id: int | None) -> list[Any]:
    stmt = select(PackingTask.workshop_id, PackingTask.paid_at, PackingTask.packed_at).where(
        PackingTask.kind == TaskKind.PARCEL.value,  # a batch was never paid for by a buyer
        PackingTask.state == TaskState.PACKED,
        PackingTask.packed_at >= days.start,
        PackingTask.packed_at < days.end,
    )
    if workshop_id is not None:
        stmt = stmt.where(PackingTask.workshop_id == workshop_id)
    return list(session.execute(stmt).all())


def _seconds(paid_at: datetime, packed_at: datetime) -> int:
    return int((packed_at - paid_at).total_seconds())


def workshop_report(session: DbSession, workshop_id: int, days: DayRange) -> dict[str, Any]:
    """Tasks packed, wages, active workers, per-worker earnings and days worked, and the
    median seconds from paid to packed, for one workshop over the range."""
    entries = [row[1:] for row in _entries(session, days, workshop_id)]
    waits = [_seconds(paid, packed) for _, paid, packed in _waits(session, days, workshop_id)]
    return {"workshop_id": workshop_id, **_report(entries, waits, days)}


def all_workshops_report(session: DbSession, days: DayRange) -> dict[str, Any]:
    """The workshop report for every workshop, and the totals over all of them."""
    entries = _entries(session, days, None)
    waits = _waits(session, days, None)
    reports = []
    for workshop in session.scalars(select(Workshop).order_by(Workshop.id)):
        mine = [row[1:] for row in entries if row[0] == workshop.id]
        my_waits = [_seconds(p, k) for w, p, k in waits if w == workshop.id]
        reports.append(
            {
                "workshop_id": workshop.id,
                "name": workshop.name,
                "village": workshop.village,
                "active": workshop.active,
                **_report(mine, my_waits, days),
            }
        )
    totals = _report([row[1:] for row in entries], [_seconds(p, k) for _, p, k in waits], days)
    return {"from": days.first, "to": days.last, "workshops": reports, "totals": totals}
