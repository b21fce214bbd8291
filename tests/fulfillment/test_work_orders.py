"""Work orders (来料加工): batches in the workshop's queue, paid by the piece into the
same ledger, a short batch pro rata with the rest left on the order, the partner's
statement; and the queue's fairness rule between parcels and batches."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from fulfillment.models import EarningEntry, PackingTask
from shop.db import db


@pytest.fixture
def admin(auth: Any) -> dict[str, str]:
    return auth("admin")[1]


@pytest.fixture
def make_work_order(client: Any, admin: dict[str, str]) -> Any:
    """``make_work_order(workshop, pieces=1000, batch_pieces=100, …)`` → the API's body."""

    def make(workshop: Any, **fields: Any) -> dict[str, Any]:
        partner = client.post(
            "/api/v1/partners",
            json={"name": "庆元文具厂 Qingyuan Stationery", "contact": "0578-1234567"},
            headers=admin,
        )
        assert partner.status_code == 201, partner.json
        body = {
            "partner_id": partner.json["id"],
            "workshop_id": workshop.id,
            "item": "铅笔包装 pencils, 12 a box",
            "pieces": 1000,
            "batch_pieces": 100,
            "batch_rate_fen": 150,
            "batch_price_fen": 333,
            "due_on": (date.today() + timedelta(days=10)).isoformat(),
            **fields,
        }
        created = client.post("/api/v1/work-orders", json=body, headers=admin)
        assert created.status_code == 201, created.json
        return dict(created.json)

    return make


def claim(client: Any, workshop: Any, headers: dict[str, str]) -> dict[str, Any]:
    response = client.post(f"/api/v1/workshops/{workshop.id}/tasks/claim", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.json)


def complete(client: Any, task_id: int, headers: dict[str, str], **body: Any) -> Any:
    return client.post(f"/api/v1/packing-tasks/{task_id}/complete", json=body, headers=headers)


def test_a_work_order_of_1000_pieces_with_a_short_batch_pays_and_charges_exactly(
    client, admin, make_workshop, villager_at, make_work_order, fake_clock
):
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    order = make_work_order(workshop)
    assert order["state"] == "open" and order["batches"] == 10
    assert order["pieces_done"] == 0 and order["partner_amount_fen"] == 0
    queued = client.get(f"/api/v1/workshops/{workshop.id}/tasks?state=queued", headers=admin)
    batches = queued.json["items"]
    assert [t["kind"] for t in batches] == ["batch"] * 10
    assert {t["work_order_id"] for t in batches} == {order["id"]}
    assert [t["pieces"] for t in batches] == [100] * 10
    assert [t["piece_rate_fen"] for t in batches] == [150] * 10

    # Three full batches, then one done short: 37 of its 100 pieces.
    for _ in range(3):
        task = claim(client, workshop, headers)
        assert complete(client, task["id"], headers).status_code == 200
    short = claim(client, workshop, headers)
    done = complete(client, short["id"], headers, pieces_done=37)
    assert done.status_code == 200, done.json
    assert done.json["pieces_done"] == 37

    progress = client.get(f"/api/v1/work-orders/{order['id']}", headers=admin).json
    # 150 × 37 / 100 = 55.5 → 56 fen; 333 × 37 / 100 = 123.21 → 123 fen
    assert progress["pieces_done"] == 337
    assert progress["pieces_left"] == 663
    assert progress["batches_done"] == 4
    assert progress["wages_fen"] == 3 * 150 + 56
    assert progress["partner_amount_fen"] == 3 * 333 + 123
    assert progress["state"] == "open"

    # The 63 pieces left are a batch of their own, next in line (the short one's due time).
    rest = claim(client, workshop, headers)
    assert rest["kind"] == "batch" and rest["pieces"] == 63
    assert rest["piece_rate_fen"] == 95  # 150 × 63 / 100 = 94.5 → 95
    assert complete(client, rest["id"], headers, pieces_done=64).status_code == 422
    assert complete(client, rest["id"], headers).status_code == 200
    while True:
        response = client.post(f"/api/v1/workshops/{workshop.id}/tasks/claim", headers=headers)
        if response.status_code == 204:
            break
        assert complete(client, response.json["id"], headers).status_code == 200

    progress = client.get(f"/api/v1/work-orders/{order['id']}", headers=admin).json
    wages = 9 * 150 + 56 + 95
    owed = 9 * 333 + 123 + 210  # 333 × 63 / 100 = 209.79 → 210
    assert progress["pieces_done"] == 1000 and progress["pieces_left"] == 0
    assert progress["batches_done"] == 11 and progress["batches_open"] == 0
    assert progress["wages_fen"] == wages
    assert progress["partner_amount_fen"] == owed
    assert progress["state"] == "done"
    ledger = db.session.scalars(
        select(EarningEntry.amount_fen)
        .join(PackingTask, PackingTask.id == EarningEntry.task_id)
        .where(PackingTask.work_order_id == order["id"])
    ).all()
    assert sum(ledger) == wages and len(ledger) == 11

    today = fake_clock().date()
    days = f"from={today - timedelta(days=1)}&to={today + timedelta(days=1)}"
    statement = client.get(
        f"/api/v1/partners/{order['partner_id']}/statement?{days}", headers=admin
    )
    assert statement.status_code == 200
    assert statement.json["pieces"] == 1000
    assert statement.json["partner_amount_fen"] == owed
    assert statement.json["wages_fen"] == wages
    assert [w["id"] for w in statement.json["work_orders"]] == [order["id"]]
    earlier = client.get(
        f"/api/v1/partners/{order['partner_id']}/statement?from=2025-01-01&to=2025-01-31",
        headers=admin,
    )
    assert earlier.json["pieces"] == 0 and earlier.json["work_orders"] == []


def test_a_parcel_cannot_be_completed_with_pieces_and_a_batch_has_no_slip(
    client, make_workshop, villager_at, make_work_order, make_paid_order
):
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    make_paid_order()
    parcel = claim(client, workshop, headers)
    assert parcel["kind"] == "parcel"
    refused = complete(client, parcel["id"], headers, pieces_done=1)
    assert refused.status_code == 422 and refused.json["type"] == "validation"
    assert complete(client, parcel["id"], headers).status_code == 200
    make_work_order(workshop, pieces=10, batch_pieces=10)
    batch = claim(client, workshop, headers)
    assert (
        client.get(f"/api/v1/packing-tasks/{batch['id']}/slip.png", headers=headers).status_code
        == 409
    )


def test_work_order_input_is_checked_and_writes_nothing(client, admin, make_workshop):
    workshop = make_workshop()
    partner = client.post("/api/v1/partners", json={"name": "P"}, headers=admin).json
    good = {
        "partner_id": partner["id"],
        "workshop_id": workshop.id,
        "item": "pencils",
        "pieces": 100,
        "batch_pieces": 10,
        "batch_rate_fen": 100,
        "batch_price_fen": 200,
        "due_on": "2030-01-01",
    }
    for bad in (
        {"batch_pieces": 101},  # larger than the order
        {"pieces": 1_000_000, "batch_pieces": 1},  # more than 10,000 batches
        {"pieces": 0},
        {"batch_rate_fen": -1},
        {"due_on": "1999-12-31"},
    ):
        response = client.post("/api/v1/work-orders", json={**good, **bad}, headers=admin)
        assert response.status_code == 422, (bad, response.json)
    missing = client.post(
        "/api/v1/work-orders", json={**good, "partner_id": 999_999}, headers=admin
    )
    assert missing.status_code == 404
    assert db.session.scalar(select(PackingTask.id).where(PackingTask.kind == "batch")) is None


def test_a_fresh_parcel_goes_before_batches_due_later(
    client, make_workshop, villager_at, make_work_order, make_paid_order, fake_clock
):
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    # ten batches over ten days: the first is due in about a day; a parcel in two hours
    make_work_order(workshop)
    order_id = make_paid_order()
    first = claim(client, workshop, headers)
    assert first["kind"] == "parcel" and first["order_id"] == order_id


def test_a_parcel_queued_after_a_10000_piece_work_order_is_claimed_once_it_is_due(
    client, make_workshop, villager_at, make_work_order, make_paid_order, fake_clock
):
    """The fairness rule: batches due before a parcel go first, but once the parcel's
    own due time (paid + PARCEL_DUE_S) has passed it goes before every batch, however
    many are overdue."""
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    # 1,000 batches of 10, all overdue (due yesterday)
    make_work_order(
        workshop,
        pieces=10_000,
        batch_pieces=10,
        due_on=(fake_clock().date() - timedelta(days=1)).isoformat(),
    )
    order_id = make_paid_order()
    batch = claim(client, workshop, headers)
    assert batch["kind"] == "batch", "an overdue batch is due before a fresh parcel"
    assert complete(client, batch["id"], headers).status_code == 200

    fake_clock.advance(2 * 3600 + 60)  # the parcel is now past its due time
    parcel = claim(client, workshop, headers)
    assert parcel["kind"] == "parcel" and parcel["order_id"] == order_id
    queued = db.session.scalar(
        select(PackingTask.id).where(PackingTask.kind == "batch", PackingTask.state == "queued")
    )
    assert queued is not None, "999 batches were still waiting"


def test_batches_of_a_closed_workshop_stay_with_it_and_parcels_move(
    client, admin, make_workshop, villager_at, make_work_order, make_paid_order
):
    first, second = make_workshop(), make_workshop()
    make_work_order(first, pieces=20, batch_pieces=10)
    order_id = make_paid_order()
    assert client.post(f"/api/v1/workshops/{first.id}/deactivate", headers=admin).status_code == 200
    rows = db.session.execute(
        select(PackingTask.kind, PackingTask.workshop_id).execution_options(populate_existing=True)
    ).all()
    assert sorted(rows) == [("batch", first.id), ("batch", first.id), ("parcel", second.id)]
    parcel = db.session.scalar(select(PackingTask).where(PackingTask.order_id == order_id))
    assert parcel is not None and parcel.workshop_id == second.id
