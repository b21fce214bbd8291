"""A payout run sends ``contracts.send_payout`` to a real Celery worker on Redis (started
here as a subprocess) which transfers through the local Stripe server, against the test
PostgreSQL database with real commits. Sending the task again pays nothing more."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from contracts import prices, service
from contracts.models import Payout
from shop.app import create_app
from shop.celery_app import send_task
from shop.db import db
from tests.contracts.conftest import SEASON_END, SEASON_START
from tests.support.stripe import SECRET_KEY

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker_app(app: Flask, app_config: dict[str, Any], localstripe: Any) -> Iterator[Flask]:
    """The same app, sending tasks to Redis instead of running them in-process."""
    redis_url = os.environ["REDIS_URL"]
    sending = create_app(
        {
            **app_config,
            "REDIS_URL": redis_url,
            "CELERY_BROKER_URL": redis_url,
            "STRIPE_SECRET_KEY": SECRET_KEY,
            "STRIPE_API_BASE": localstripe.base_url,
        }
    )
    app.extensions["celery"].set_default()  # the test app stays Celery's default
    yield sending
    with sending.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def celery_worker(app_config: dict[str, Any], tmp_path: Path, localstripe: Any) -> Iterator[Path]:
    redis_url = os.environ["REDIS_URL"]
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": app_config["DATABASE_URL"],
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "SHANHUO_INSTANCE": str(tmp_path),
        "SECRET_KEY": "test-secret",
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_API_BASE": localstripe.base_url,
    }
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "wsgi.celery_app",
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"contracts-test-{os.getpid()}@%h",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Celery worker did not start:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield log_path
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def _wait_for(check: Callable[[], Any], what: str, log: Path, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()  # see what the worker committed
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; worker log:\n{log.read_text()}")


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
