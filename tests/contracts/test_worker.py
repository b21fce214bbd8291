"""A payout run sends ``contracts.send_payout`` to a real Celery worker on Redis (started
here as a subprocess) which transfers through the local Stripe server, against the test
PostgreSQL database with real commits. Sending the task again pays nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from contracts import prices, service
from contracts.models import Payout
from shop.celery_app import send_task
from shop.db import db
from tests.contracts.conftest import SEASON_END, SEASON_START
from tests.support import celery_worker as worker_support
from tests.support.stripe import SECRET_KEY

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def broker_app(app_config: dict[str, Any], localstripe: Any) -> Iterator[Flask]:
    with worker_support.broker_app(
        app_config, STRIPE_SECRET_KEY=SECRET_KEY, STRIPE_API_BASE=localstripe.base_url
    ) as sending:
        yield sending


@pytest.fixture
def celery_worker(app_config: dict[str, Any], tmp_path: Path, localstripe: Any) -> Iterator[Path]:
    stripe_env = {"STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_API_BASE": localstripe.base_url}
    with worker_support.celery_worker(app_config, tmp_path, "contracts-test", stripe_env) as log:
        yield log


_wait_for = worker_support.wait_for


def _payout(payout_id: int) -> Payout | None:
    return db.session.scalar(
        select(Payout).where(Payout.id == payout_id).execution_options(populate_existing=True)
    )


def test_a_run_is_paid_by_a_real_worker_and_resending_pays_nothing_more(
    committing, broker_app, celery_worker, localstripe, make_user, make_product, auth
):
    with broker_app.app_context():
        _, admin = auth("admin")
        farmer = make_user("farmer")
        service.set_payout_account(db.session, farmer.id, "acct_1QingguWu")
        product = make_product()
        prices.add_market_price(
            db.session,
            product_id=product.id,
            price_fen_per_kg=1680,
            effective_on=SEASON_START,
            source="market",
            created_by=None,
        )
        contract = service.create_contract(
            db.session,
            farmer_id=farmer.id,
            product_id=product.id,
            premium_bp=1200,
            committed_kg=100,
            starts_on=SEASON_START,
            ends_on=SEASON_END,
            created_by=None,
        )
        service.accept_contract(db.session, contract.id, farmer)
        service.record_delivery(
            db.session,
            contract.id,
            delivered_on=date(2025, 9, 10),
            weight_g=10_000,
            recorded_by=None,
        )
        db.session.commit()

        response = broker_app.test_client().post(
            "/api/v1/payouts/run", json={"through": "2025-09-30"}, headers=admin
        )
        assert response.status_code == 200
        [queued] = response.get_json()["payouts"]
        assert queued["state"] in ("pending", "sending", "paid")  # the worker may be quick

        paid = _wait_for(
            lambda: (p := _payout(queued["id"])) is not None and p.state == "paid" and p,
            "the payout to be paid",
            celery_worker,
        )
        assert paid.amount_fen == 18_816 and paid.transfer_id.startswith("tr_")

        send_task("contracts.send_payout", queued["id"])  # again, twice: nothing more
        send_task("contracts.send_payout", queued["id"])
        _wait_for(
            lambda: celery_worker.read_text().count("contracts.send_payout") >= 6,
            "the repeated tasks to be handled",
            celery_worker,
        )
        assert _payout(queued["id"]).transfer_id == paid.transfer_id  # type: ignore[union-attr]

    transfers = [r for r in localstripe.requests_seen() if r["path"] == "/v1/transfers"]
    assert [t["idempotency_key"] for t in transfers] == [f"payout-{queued['id']}"]
    assert "Traceback" not in celery_worker.read_text()
