"""Piece-rate earnings: exact fen, business days in Asia/Shanghai, an append-only ledger,
and the workshop reports."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from fulfillment import earnings
from fulfillment.models import EarningEntry
from shop.db import db
from tests.fulfillment.conftest import task_of


def claim_and_complete(client, workshop, headers, **body):
    task_id = client.post(f"/api/v1/workshops/{workshop.id}/tasks/claim", headers=headers).json[
        "id"
    ]
    done = client.post(f"/api/v1/packing-tasks/{task_id}/complete", json=body, headers=headers)
    assert done.status_code == 200, done.json
    return task_id


def test_each_task_pays_exactly_its_piece_rate_in_fen(
    client, make_workshop, villager_at, make_paid_order, make_product, fake_clock
):
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    shiitake = make_product(packing_rate_fen=35)
    pomelo = make_product(packing_rate_fen=120, category="pomelo")
    make_paid_order([(shiitake, 3)])  # 105
    make_paid_order([(shiitake, 1), (pomelo, 2)])  # 35 + 240 = 275
    make_paid_order([(pomelo, 7)])  # 840
    for _ in range(3):
        claim_and_complete(client, workshop, headers)

    response = client.get("/api/v1/villagers/me/earnings", headers=headers)
    assert response.status_code == 200
    body = response.json
    today = fake_clock.current.astimezone(earnings.ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert body["tasks_packed"] == 3 and body["earnings_fen"] == 105 + 275 + 840
    assert body["by_day"] == [{"date": today, "tasks": 3, "earnings_fen": 1220}]
    assert body["timezone"] == "Asia/Shanghai" and body["to"] == today


def test_days_are_shanghai_days_not_utc_days(
    client, make_workshop, villager_at, make_paid_order, make_product, fake_clock
):
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    product = make_product(packing_rate_fen=50)
    # 23:59:59 on 1 March in Qingyuan, then midnight: two business days, one UTC day.
    for moment in (
        datetime(2025, 3, 1, 15, 59, 59, tzinfo=UTC),
        datetime(2025, 3, 1, 16, 0, 0, tzinfo=UTC),
        datetime(2025, 3, 2, 1, 0, 0, tzinfo=UTC),  # 09:00 on 2 March
    ):
        make_paid_order([(product, 1)])
        fake_clock.set(moment)
        claim_and_complete(client, workshop, headers)

    fake_clock.set(datetime(2025, 3, 10, 4, 0, tzinfo=UTC))
    body = client.get(
        "/api/v1/villagers/me/earnings?from=2025-03-01&to=2025-03-02", headers=headers
    ).json
    assert body["by_day"] == [
        {"date": "2025-03-01", "tasks": 1, "earnings_fen": 50},
        {"date": "2025-03-02", "tasks": 2, "earnings_fen": 100},
    ]
    only_second = client.get(
        "/api/v1/villagers/me/earnings?from=2025-03-02&to=2025-03-02", headers=headers
    ).json
    assert only_second["tasks_packed"] == 2 and only_second["earnings_fen"] == 100
    only_first = client.get(
        "/api/v1/villagers/me/earnings?from=2025-02-01&to=2025-03-01", headers=headers
    ).json
    assert only_first["tasks_packed"] == 1 and only_first["earnings_fen"] == 50


def test_an_earnings_range_must_be_sane(client, auth):
    _, headers = auth("villager")
    for query in ("from=2025-03-02&to=2025-03-01", "from=2024-01-01&to=2025-03-01", "from=nope"):
        response = client.get(f"/api/v1/villagers/me/earnings?{query}", headers=headers)
        assert response.status_code == 422, query
        assert response.json["type"] == "validation"


def test_ledger_entries_are_never_updated_a_correction_is_a_new_entry(
    client, make_workshop, villager_at, make_paid_order, make_product, fake_clock
):
    workshop = make_workshop()
    villager, headers = villager_at(workshop)
    order_id = make_paid_order([(make_product(packing_rate_fen=80), 2)])
    claim_and_complete(client, workshop, headers)
    entry = db.session.scalar(
        select(EarningEntry).where(EarningEntry.task_id == task_of(order_id).id)
    )
    assert entry is not None
    before = (entry.id, entry.user_id, entry.amount_fen, entry.earned_at, entry.task_id)

    # The database itself refuses to change a ledger row.
    with pytest.raises(DBAPIError, match="append-only"), db.session.begin_nested():
        db.session.execute(
            update(EarningEntry).where(EarningEntry.id == entry.id).values(amount_fen=1)
        )

    correction = earnings.record_correction(
        db.session, entry.id, amount_fen=-30, reason="two bags were one", now=fake_clock.current
    )
    db.session.commit()
    db.session.expire_all()
    again = db.session.get(EarningEntry, entry.id)
    assert (again.id, again.user_id, again.amount_fen, again.earned_at, again.task_id) == before
    assert (correction.corrects_id, correction.amount_fen, correction.task_id) == (
        entry.id,
        -30,
        None,
    )
    body = client.get("/api/v1/villagers/me/earnings", headers=headers).json
    assert body["tasks_packed"] == 1 and body["earnings_fen"] == 160 - 30
    assert villager.id == correction.user_id


def test_the_workshop_report_counts_tasks_wages_workers_days_and_the_median_wait(
    client, make_workshop, villager_at, make_paid_order, make_product, auth, fake_clock
):
    workshop = make_workshop()
    other = make_workshop()
    alice, alice_h = villager_at(workshop)
    bob, bob_h = villager_at(workshop)
    carol, carol_h = villager_at(other)
    product = make_product(packing_rate_fen=60)
    start = datetime(2025, 5, 6, 1, 0, tzinfo=UTC)  # 09:00 in Qingyuan
    plan = [  # (who, at) — alice works two days, bob one
        (alice_h, start),
        (bob_h, start.replace(hour=2)),
        (alice_h, start.replace(day=7)),
    ]
    for headers, moment in plan:
        make_paid_order([(product, 1)])
        make_paid_order([(product, 1)])  # the other workshop gets every second order
        fake_clock.set(moment)
        claim_and_complete(client, workshop, headers)
    claim_and_complete(client, other, carol_h)

    fake_clock.set(datetime(2025, 5, 20, tzinfo=UTC))
    _, admin = auth("admin")
    response = client.get(
        f"/api/v1/workshops/{workshop.id}/report?from=2025-05-01&to=2025-05-31", headers=admin
    )
    assert response.status_code == 200
    report = response.json
    assert report["tasks_packed"] == 3 and report["wages_fen"] == 180
    assert report["active_workers"] == 2
    assert report["workers"] == [
        {"user_id": alice.id, "tasks": 2, "earnings_fen": 120, "days_worked": 2},
        {"user_id": bob.id, "tasks": 1, "earnings_fen": 60, "days_worked": 1},
    ]
    from fulfillment.models import PackingTask, TaskState

    waits = sorted(
        int((t.packed_at - t.paid_at).total_seconds())
        for t in db.session.scalars(
            select(PackingTask).where(
                PackingTask.workshop_id == workshop.id, PackingTask.state == TaskState.PACKED
            )
        )
    )
    assert report["median_paid_to_packed_s"] == waits[1]

    everything = client.get(
        "/api/v1/workshops/report?from=2025-05-01&to=2025-05-31", headers=admin
    ).json
    by_id = {w["workshop_id"]: w for w in everything["workshops"]}
    assert by_id[workshop.id]["wages_fen"] == 180 and by_id[other.id]["wages_fen"] == 60
    assert everything["totals"]["tasks_packed"] == 4
    assert everything["totals"]["wages_fen"] == 240
    assert everything["totals"]["active_workers"] == 3
    assert {w["user_id"] for w in everything["totals"]["workers"]} == {alice.id, bob.id, carol.id}

    # Outside the range: nothing.
    empty = client.get(
        f"/api/v1/workshops/{workshop.id}/report?from=2025-06-01&to=2025-06-30", headers=admin
    ).json
    assert empty["tasks_packed"] == 0 and empty["median_paid_to_packed_s"] is None


def test_a_workshops_lead_sees_its_report_but_not_anothers(
    client, make_workshop, villager_at, auth
):
    workshop, other = make_workshop(), make_workshop()
    _, lead = villager_at(workshop, lead=True)
    _, member = villager_at(workshop)
    assert client.get(f"/api/v1/workshops/{workshop.id}/report", headers=lead).status_code == 200
    assert client.get(f"/api/v1/workshops/{other.id}/report", headers=lead).status_code == 403
    assert client.get(f"/api/v1/workshops/{workshop.id}/report", headers=member).status_code == 403
    assert client.get("/api/v1/workshops/report", headers=lead).status_code == 403


def test_median_of_whole_seconds():
    assert earnings.median_int([]) is None
    assert earnings.median_int([7]) == 7
    assert earnings.median_int([9, 1, 5]) == 5
    assert earnings.median_int([1, 4]) == 2
