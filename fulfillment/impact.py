"""The impact report: what the workshops paid their people in a year, per workshop,
county-wide, and for the workshops that serve disabled workers — the figures a county
reports (workers, parcels and pieces, wages, the median monthly wage, how many earned
each month). Everything is read from the earnings ledger and the packed tasks, so its
sums are the ledger's.

Definitions (months and the year are business time, ``SHOP_TIMEZONE``):

- ``workers``: people with at least one paid task in the year;
- ``parcels`` / ``pieces``: parcel tasks packed, pieces done in batches;
- ``wages_fen``: every ledger entry of the year, corrections included;
- a worker's monthly wage is the sum of their entries in that month (across workshops
  for the totals); ``median_monthly_wage_fen`` is the median over every (worker, month)
  with a positive wage, ``workers_paid_by_month`` counts those per month.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from fulfillment.earnings import median_int
from fulfillment.models import EarningEntry, PackingTask, TaskKind, TaskState, Workshop
from shop.db import DbSession


def _figures(entries: Iterable[Any], tasks: Iterable[Any], tz: ZoneInfo) -> dict[str, Any]:
    monthly: dict[tuple[int, int], int] = defaultdict(int)
    workers: set[int] = set()
    wages = 0
    for _, user_id, earned_at, amount_fen, task_id in entries:
        monthly[(user_id, earned_at.astimezone(tz).month)] += amount_fen
        wages += amount_fen
        if task_id is not None:
            workers.add(user_id)
    parcels = pieces = 0
    for _, kind, pieces_done in tasks:
        if kind == TaskKind.PARCEL:
            parcels += 1
        else:
            pieces += pieces_done or 0
    paid = {key: fen for key, fen in monthly.items() if fen > 0}
    return {
        "workers": len(workers),
        "parcels": parcels,
        "pieces": pieces,
        "wages_fen": wages,
        "median_monthly_wage_fen": median_int(list(paid.values())),
        "workers_paid_by_month": [
            sum(1 for (_, month) in paid if month == m) for m in range(1, 13)
        ],
    }


def impact_report(session: DbSession, year: int, tz_name: str) -> dict[str, Any]:
    """``{year, workshops: [...], totals, serves_disabled}`` (see the module docstring)."""
    tz = ZoneInfo(tz_name)
    start, end = datetime(year, 1, 1, tzinfo=tz), datetime(year + 1, 1, 1, tzinfo=tz)
    entries = session.execute(
        select(
            EarningEntry.workshop_id,
            EarningEntry.user_id,
            EarningEntry.earned_at,
            EarningEntry.amount_fen,
            EarningEntry.task_id,
        ).where(EarningEntry.earned_at >= start, EarningEntry.earned_at < end)
    ).all()
    tasks = session.execute(
        select(PackingTask.workshop_id, PackingTask.kind, PackingTask.pieces_done).where(
            PackingTask.state == TaskState.PACKED,
            PackingTask.packed_at >= start,
            PackingTask.packed_at < end,
        )
    ).all()
    workshops = list(session.scalars(select(Workshop).order_by(Workshop.id)))
    disabled = {w.id for w in workshops if w.serves_disabled}
    return {
        "year": year,
        "workshops": [
            {
                "id": w.id,
                "name": w.name,
                "village": w.village,
                "serves_disabled": w.serves_disabled,
                **_figures(
                    (e for e in entries if e[0] == w.id), (t for t in tasks if t[0] == w.id), tz
                ),
            }
            for w in workshops
        ],
        "totals": _figures(entries, tasks, tz),
        "serves_disabled": {
            "workshops": len(disabled),
            **_figures(
                (e for e in entries if e[0] in disabled), (t for t in tasks if t[0] in disabled), tz
            ),
        },
    }


CSV_FIELDS = [
    "scope",
    "workshop_id",
    "name",
    "serves_disabled",
    "workers",
    "parcels",
    "pieces",
    "wages_fen",
    "median_monthly_wage_fen",
    *[f"workers_paid_{m:02d}" for m in range(1, 13)],
]


def impact_csv(report: dict[str, Any]) -> str:
    """The report as CSV: a row per workshop, then the totals and the disabled-serving
    workshops' totals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)

    def row(scope: str, figures: dict[str, Any], workshop: dict[str, Any] | None) -> None:
        writer.writerow(
            [
                scope,
                workshop["id"] if workshop else "",
                workshop["name"] if workshop else "",
                ("yes" if workshop["serves_disabled"] else "no") if workshop else "",
                figures["workers"],
                figures["parcels"],
                figures["pieces"],
                figures["wages_fen"],
                figures["median_monthly_wage_fen"] or "",
                *figures["workers_paid_by_month"],
            ]
        )

    for workshop in report["workshops"]:
        row("workshop", workshop, workshop)
    row("total", report["totals"], None)
    row("serves_disabled", report["serves_disabled"], None)
    return out.getvalue()
