"""Skill tiers: levels per kind set by an admin or the workshop's lead (with who and
why), the workshop's bonus per level, a rate fixed at claim, base and bonus apart in the
ledger, and the report's wages by level and trainings."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from fulfillment.models import EarningEntry, SkillChange
from shop.db import db


@pytest.fixture
def admin(auth: Any) -> dict[str, str]:
    return auth("admin")[1]


def set_level(client: Any, workshop: Any, user: Any, headers: dict[str, str], **body: Any) -> Any:
    return client.put(
        f"/api/v1/workshops/{workshop.id}/members/{user.id}/skills",
        json={"kind": "parcel", "level": 2, "reason": "培训结业 training passed", **body},
        headers=headers,
    )


def test_a_level_change_after_the_claim_does_not_change_that_tasks_pay(
    client, admin, make_workshop, villager_at, make_paid_order, make_product
):
    workshop = make_workshop()
    villager, headers = villager_at(workshop)
    bonus = client.put(
        f"/api/v1/workshops/{workshop.id}/skill-bonus", json={"2": 1250, "3": 2500}, headers=admin
    )
    assert bonus.status_code == 200
    assert bonus.json["skill_bonus_bp"] == {"1": 0, "2": 1250, "3": 2500}
    assert set_level(client, workshop, villager, admin, level=2).status_code == 200
    make_paid_order([(make_product(packing_rate_fen=333), 1)])

    task = client.post(f"/api/v1/workshops/{workshop.id}/tasks/claim", headers=headers).json
    assert (task["level"], task["bonus_bp"]) == (2, 1250)
    assert task["bonus_fen"] == 42  # 333 × 1250 / 10000 = 41.625 → 42

    raised = set_level(client, workshop, villager, admin, level=3, reason="技能比赛 competition")
    assert raised.json["skills"] == {"parcel": 3, "batch": 1}
    done = client.post(f"/api/v1/packing-tasks/{task['id']}/complete", json={}, headers=headers)
    assert done.status_code == 200

    entry = db.session.scalar(select(EarningEntry).where(EarningEntry.task_id == task["id"]))
    assert entry is not None
    assert (entry.base_fen, entry.bonus_fen, entry.amount_fen) == (333, 42, 375)
    assert entry.level == 2

    # the next task pays level 3: 333 × 2500 / 10000 = 83.25 → 83
    make_paid_order([(make_product(packing_rate_fen=333), 1)])
    task = client.post(f"/api/v1/workshops/{workshop.id}/tasks/claim", headers=headers).json
    assert (task["level"], task["bonus_fen"]) == (3, 83)
    client.post(f"/api/v1/packing-tasks/{task['id']}/complete", json={}, headers=headers)
    entry = db.session.scalar(select(EarningEntry).where(EarningEntry.task_id == task["id"]))
    assert (entry.base_fen, entry.bonus_fen) == (333, 83)


def test_a_short_batch_pays_its_bonus_on_the_pro_rata_base(
    client, admin, make_workshop, villager_at
):
    workshop = make_workshop()
    villager, headers = villager_at(workshop)
    client.put(
        f"/api/v1/workshops/{workshop.id}/skill-bonus", json={"2": 1000, "3": 2000}, headers=admin
    )
    set_level(client, workshop, villager, admin, kind="batch", level=3)
    partner = client.post("/api/v1/partners", json={"name": "P"}, headers=admin).json
    client.post(
        "/api/v1/work-orders",
        json={
            "partner_id": partner["id"],
            "workshop_id": workshop.id,
            "item": "pencils",
            "pieces": 100,
            "batch_pieces": 100,
            "batch_rate_fen": 155,
            "batch_price_fen": 300,
            "due_on": "2030-01-01",
        },
        headers=admin,
    )
    task = client.post(f"/api/v1/workshops/{workshop.id}/tasks/claim", headers=headers).json
    assert task["bonus_fen"] == 31  # 155 × 2000 / 10000
    client.post(
        f"/api/v1/packing-tasks/{task['id']}/complete", json={"pieces_done": 45}, headers=headers
    )
    entry = db.session.scalar(select(EarningEntry).where(EarningEntry.task_id == task["id"]))
    # base 155 × 45 / 100 = 69.75 → 70; bonus 70 × 2000 / 10000 = 14
    assert (entry.base_fen, entry.bonus_fen, entry.amount_fen) == (70, 14, 84)


def test_only_an_admin_or_the_workshops_own_lead_sets_levels(
    client, auth, make_workshop, villager_at
):
    admin_user, admin = auth("admin")
    home, other = make_workshop(), make_workshop()
    lead, lead_headers = villager_at(home, lead=True)
    member, member_headers = villager_at(home)
    stranger, _ = villager_at(other)
    _, buyer_headers = auth("buyer")

    assert set_level(client, home, member, lead_headers).status_code == 200
    assert set_level(client, other, stranger, lead_headers).status_code == 403
    assert set_level(client, home, lead, lead_headers).status_code == 403, "not their own"
    assert set_level(client, home, lead, member_headers).status_code == 403
    assert set_level(client, home, member, buyer_headers).status_code == 403
    assert set_level(client, home, lead, admin).status_code == 200
    assert set_level(client, home, member, admin, level=4).status_code == 422
    assert set_level(client, home, member, admin, kind="crate").status_code == 422
    assert set_level(client, home, member, admin, reason=" ").status_code == 422
    bonus = client.put(
        f"/api/v1/workshops/{home.id}/skill-bonus", json={"2": 100, "3": 200}, headers=lead_headers
    )
    assert bonus.status_code == 403, "a bonus is a wage: admins only"

    changes = db.session.scalars(
        select(SkillChange).where(SkillChange.workshop_id == home.id).order_by(SkillChange.id)
    ).all()
    assert [(c.user_id, c.from_level, c.to_level, c.changed_by) for c in changes] == [
        (member.id, 1, 2, lead.id),
        (lead.id, 1, 2, admin_user.id),
    ]
    assert changes[0].reason == "培训结业 training passed"
    history = client.get(f"/api/v1/workshops/{home.id}/skill-changes", headers=lead_headers)
    assert len(history.json["items"]) == 2
    assert (
        client.get(f"/api/v1/workshops/{home.id}/skill-changes", headers=member_headers).status_code
        == 403
    )

    # an admin names the lead
    promoted = client.patch(
        f"/api/v1/workshops/{home.id}/members/{member.id}", json={"lead": True}, headers=admin
    )
    assert promoted.status_code == 200 and promoted.json["lead"] is True
    assert (
        client.patch(
            f"/api/v1/workshops/{home.id}/members/{member.id}",
            json={"lead": True},
            headers=lead_headers,
        ).status_code
        == 403
    )


def test_the_workshop_report_shows_wages_by_level_and_trainings(
    client, admin, make_workshop, villager_at, make_paid_order, make_product, fake_clock
):
    workshop = make_workshop()
    _, lead_headers = villager_at(workshop, lead=True)
    skilled, skilled_headers = villager_at(workshop)
    _, novice_headers = villager_at(workshop)
    other_workshop = make_workshop()
    outsider, _ = villager_at(other_workshop)
    client.put(
        f"/api/v1/workshops/{workshop.id}/skill-bonus", json={"2": 2000, "3": 4000}, headers=admin
    )
    set_level(client, workshop, skilled, lead_headers, level=2)
    product = make_product(packing_rate_fen=100)
    for headers in (skilled_headers, novice_headers):
        make_paid_order([(product, 1)])
        task = client.post(f"/api/v1/workshops/{workshop.id}/tasks/claim", headers=headers).json
        client.post(f"/api/v1/packing-tasks/{task['id']}/complete", json={}, headers=headers)
    today = fake_clock().astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    training = client.post(
        f"/api/v1/workshops/{workshop.id}/trainings",
        json={"title": "香菇分拣 sorting shiitake", "held_on": today, "attendee_ids": [skilled.id]},
        headers=lead_headers,
    )
    assert training.status_code == 201
    assert training.json["attendee_ids"] == [skilled.id]
    not_member = client.post(
        f"/api/v1/workshops/{workshop.id}/trainings",
        json={"title": "x", "held_on": today, "attendee_ids": [outsider.id]},
        headers=lead_headers,
    )
    assert not_member.status_code == 422
    assert (
        client.post(
            f"/api/v1/workshops/{workshop.id}/trainings",
            json={"title": "x", "held_on": today, "attendee_ids": []},
            headers=skilled_headers,
        ).status_code
        == 403
    )

    report = client.get(f"/api/v1/workshops/{workshop.id}/report", headers=admin).json
    by_level = {row["level"]: row for row in report["wages_by_level"]}
    assert by_level[1] == {
        "level": 1,
        "workers": 1,
        "tasks": 1,
        "base_fen": 100,
        "bonus_fen": 0,
        "wages_fen": 100,
    }
    assert by_level[2] == {
        "level": 2,
        "workers": 1,
        "tasks": 1,
        "base_fen": 100,
        "bonus_fen": 20,
        "wages_fen": 120,
    }
    assert report["wages_fen"] == 220
    assert [t["title"] for t in report["trainings"]] == ["香菇分拣 sorting shiitake"]
