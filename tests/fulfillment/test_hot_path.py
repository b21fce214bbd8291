"""What a claim and a complete cost the database (README, Benchmarks)."""

from __future__ import annotations

import time

import pytest

from fulfillment.models import Workshop
from shop.accounts.token_cache import token_cache
from shop.db import db
from tests.support.statements import statements

pytestmark = pytest.mark.postgres


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


def test_claim_and_complete_stay_within_their_statement_budgets(
    app, committing, make_workshop, villager_at, make_paid_order
):
    with app.app_context():
        workshop_id = make_workshop().id
        _, headers = villager_at(db.session.get(Workshop, workshop_id))
        make_paid_order()
        db.session.remove()
        client = app.test_client()
        # With Redis, once the process's revocation poll has run, a signed token is let
        # in from memory, the first time too (shop/accounts/token_cache.py)
        cache = token_cache(app)
        token = [] if cache is not None else ["SELECT"]
        wait_until(lambda: cache is None or cache.trusted())
        with statements(app) as sent:
            claimed = client.post(f"/api/v1/workshops/{workshop_id}/tasks/claim", headers=headers)
        assert claimed.status_code == 200
        # token (without Redis); the claim, one statement in autocommit (fulfillment.hot_path)
        assert sent == [*token, "WITH"]
        with statements(app) as sent:
            done = client.post(
                f"/api/v1/packing-tasks/{claimed.json['id']}/complete", json={}, headers=headers
            )
        assert done.status_code == 200
        # token (without Redis); the complete, one statement in autocommit
        assert sent == [*token, "WITH"]
