"""Keeping a task: ``POST /packing-tasks/{id}/extend`` renews the claimer's lease once per
claim; a second time, after the lease ran out, or by anyone else is refused and changes
nothing."""

from __future__ import annotations

from datetime import timedelta

from shop.db import db
from tests.fulfillment.conftest import task_of

LEASE_S = 1800  # the test app's CLAIM_LEASE_S (the default)


def claim(client, workshop, headers):
    response = client.post(f"/api/v1/workshops/{workshop.id}/tasks/claim", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_the_claimer_extends_once_and_the_lease_runs_a_full_term_from_then(
    app, client, fake_clock, make_workshop, villager_at, make_paid_order
):
    assert app.config["CLAIM_LEASE_S"] == LEASE_S
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    order_id = make_paid_order()
    task = claim(client, workshop, headers)
    assert task["lease_extended"] is False

    fake_clock.advance(LEASE_S - 120)  # two minutes left
    extended = client.post(f"/api/v1/packing-tasks/{task['id']}/extend", headers=headers)
    assert extended.status_code == 200, extended.json
    assert extended.json["lease_extended"] is True
    stored = task_of(order_id)
    assert stored.lease_expires_at == fake_clock.current + timedelta(seconds=LEASE_S)

    again = client.post(f"/api/v1/packing-tasks/{task['id']}/extend", headers=headers)
    assert again.status_code == 409
    assert again.json["type"] == "conflict"
    db.session.expire_all()
    assert task_of(order_id).lease_expires_at == stored.lease_expires_at  # unchanged

    # the extension is real: past the first lease, the claimer still completes
    fake_clock.advance(600)
    done = client.post(f"/api/v1/packing-tasks/{task['id']}/complete", json={}, headers=headers)
    assert done.status_code == 200, done.json


def test_after_the_lease_ran_out_extending_is_refused_and_the_task_is_not_taken_back(
    client, fake_clock, make_workshop, villager_at, make_paid_order
):
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    order_id = make_paid_order()
    task = claim(client, workshop, headers)

    fake_clock.advance(LEASE_S + 1)
    late = client.post(f"/api/v1/packing-tasks/{task['id']}/extend", headers=headers)
    assert late.status_code == 409
    assert late.json["type"] == "conflict"
    assert "expired" in late.json["detail"]
    db.session.expire_all()
    stored = task_of(order_id)
    assert stored.lease_extended is False
    assert stored.lease_expires_at < fake_clock.current


def test_only_the_claimer_extends(client, make_workshop, villager_at, make_paid_order):
    workshop = make_workshop()
    claimer, claimer_h = villager_at(workshop)
    _, colleague_h = villager_at(workshop)
    order_id = make_paid_order()
    task = claim(client, workshop, claimer_h)

    refused = client.post(f"/api/v1/packing-tasks/{task['id']}/extend", headers=colleague_h)
    assert refused.status_code == 403
    db.session.expire_all()
    stored = task_of(order_id)
    assert (stored.claimed_by, stored.lease_extended) == (claimer.id, False)


def test_a_new_claim_may_extend_again(client, make_workshop, villager_at, make_paid_order):
    workshop = make_workshop()
    _, headers = villager_at(workshop)
    make_paid_order()
    task = claim(client, workshop, headers)
    path = f"/api/v1/packing-tasks/{task['id']}"
    assert client.post(f"{path}/extend", headers=headers).status_code == 200
    assert client.post(f"{path}/release", headers=headers).status_code == 200

    again = claim(client, workshop, headers)
    assert again["id"] == task["id"] and again["lease_extended"] is False
    assert client.post(f"{path}/extend", headers=headers).status_code == 200
