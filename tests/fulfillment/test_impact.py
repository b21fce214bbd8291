"""The impact report's figures are the ledger's: per workshop, county-wide and for the
workshops serving disabled workers, by business month."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from fulfillment import earnings
from fulfillment.models import EarningEntry
from shop.db import db

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_the_impact_reports_sums_equal_the_ledgers(
    client, auth, make_workshop, villager_at, make_paid_order, make_product, fake_clock
):
    _, admin = auth("admin")
    town, aling = make_workshop(), make_workshop("爱玲之家 Ailing's Home")
    client.patch(f"/api/v1/workshops/{aling.id}", json={"serves_disabled": True}, headers=admin)
    a, a_headers = villager_at(town)
    _, b_headers = villager_at(aling)
    partner = client.post("/api/v1/partners", json={"name": "文具厂"}, headers=admin).json
    product = make_product(packing_rate_fen=70, stock=1000)

    def parcel(workshop: Any, headers: dict[str, str]) -> None:
        make_paid_order([(product, 1)])
        task = client.post(f"/api/v1/workshops/{workshop.id}/tasks/claim", headers=headers)
        assert task.status_code == 200, task.get_data(as_text=True)
        client.post(f"/api/v1/packing-tasks/{task.json['id']}/complete", json={}, headers=headers)

    # January: A packs two parcels at the town workshop (00:30 in Shanghai on Jan 1 is
    # still Dec 31 in UTC: it counts in January). Parcels go to the town workshop: both
    # queues are empty and it has the lower id.
    fake_clock.set(datetime(2026, 1, 1, 0, 30, tzinfo=SHANGHAI))
    parcel(town, a_headers)
    parcel(town, a_headers)
    # March: B does the batches of a work order at Ailing, one of them short
    fake_clock.set(datetime(2026, 3, 15, 9, 0, tzinfo=SHANGHAI))
    client.post(
        "/api/v1/work-orders",
        json={
            "partner_id": partner["id"],
            "workshop_id": aling.id,
            "item": "pencils",
            "pieces": 25,
            "batch_pieces": 10,
            "batch_rate_fen": 125,
            "batch_price_fen": 250,
            "due_on": "2026-03-16",
        },
        headers=admin,
    )
    done_pieces = []
    for pieces_done in (10, 7, None, None):
        task = client.post(f"/api/v1/workshops/{aling.id}/tasks/claim", headers=b_headers).json
        body = {} if pieces_done is None else {"pieces_done": pieces_done}
        client.post(f"/api/v1/packing-tasks/{task['id']}/complete", json=body, headers=b_headers)
        done_pieces.append(pieces_done or task["pieces"])
    assert sum(done_pieces) == 25
    # a correction in March takes 10 fen back from A
    first_entry = db.session.scalar(
        select(EarningEntry).where(EarningEntry.user_id == a.id).order_by(EarningEntry.id)
    )
    earnings.record_correction(
        db.session, first_entry.id, amount_fen=-10, reason="miscount", now=fake_clock()
    )
    db.session.commit()
    # the year after does not count
    fake_clock.set(datetime(2027, 1, 1, 0, 5, tzinfo=SHANGHAI))
    parcel(town, a_headers)

    report = client.get("/api/v1/reports/impact?year=2026", headers=admin)
    assert report.status_code == 200
    body = report.json
    start = datetime(2026, 1, 1, tzinfo=SHANGHAI)
    end = datetime(2027, 1, 1, tzinfo=SHANGHAI)

    def ledger(workshop_ids: list[int]) -> int:
        return int(
            db.session.scalar(
                select(func.sum(EarningEntry.amount_fen)).where(
                    EarningEntry.workshop_id.in_(workshop_ids),
                    EarningEntry.earned_at >= start,
                    EarningEntry.earned_at < end,
                )
            )
        )

    rows = {w["id"]: w for w in body["workshops"]}
    assert rows[town.id]["wages_fen"] == ledger([town.id]) == 2 * 70 - 10
    # 125 + round(125 × 7 / 10) = 87.5 → 88, + 125 × 5 / 10 = 62.5 → 63 (the last batch of 5),
    # + round(125 × 3 / 10) = 37.5 → 38 (the 3 left by the short one)
    assert rows[aling.id]["wages_fen"] == ledger([aling.id]) == 125 + 88 + 63 + 38
    assert body["totals"]["wages_fen"] == ledger([town.id, aling.id])
    assert body["serves_disabled"]["wages_fen"] == ledger([aling.id])
    assert body["serves_disabled"]["workshops"] == 1
    assert rows[aling.id]["serves_disabled"] is True
    assert (rows[town.id]["parcels"], rows[town.id]["pieces"]) == (2, 0)
    assert (rows[aling.id]["parcels"], rows[aling.id]["pieces"]) == (0, 25)
    assert (body["totals"]["parcels"], body["totals"]["pieces"], body["totals"]["workers"]) == (
        2,
        25,
        2,
    )
    # A: 140 in January, −10 in March; B: 314 in March
    assert rows[town.id]["workers_paid_by_month"] == [1] + [0] * 11
    assert body["totals"]["workers_paid_by_month"] == [1, 0, 1] + [0] * 9
    assert body["totals"]["median_monthly_wage_fen"] == (140 + 314) // 2
    assert rows[aling.id]["median_monthly_wage_fen"] == 314

    exported = client.get("/api/v1/reports/impact.csv?year=2026", headers=admin)
    assert exported.status_code == 200 and exported.mimetype == "text/csv"
    lines = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert [line["scope"] for line in lines] == ["workshop", "workshop", "total", "serves_disabled"]
    assert sum(int(line["wages_fen"]) for line in lines[:2]) == int(lines[2]["wages_fen"])
    assert int(lines[2]["wages_fen"]) == body["totals"]["wages_fen"]

    assert client.get("/api/v1/reports/impact?year=1999", headers=admin).status_code == 422
    _, villager = auth("villager")
    assert client.get("/api/v1/reports/impact", headers=villager).status_code == 403
