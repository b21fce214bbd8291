"""Payout runs: each delivery and adjustment paid once, Stripe Connect transfers with the
key ``payout-{id}``, pending without an account, failed then retried, concurrent runs."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
import stripe
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from contracts import prices, service
from contracts.models import Payout, PayoutItem
from contracts.payouts.providers import (
    SandboxPayouts,
    StripeConnectPayouts,
    TransferRequest,
    TransferUnreachable,
    payout_provider,
)
from contracts.tasks import send_payout, send_payout_now
from shop.db import db, utcnow
from tests.contracts.conftest import SEASON_END, SEASON_START
from tests.support.stripe import SECRET_KEY


@pytest.fixture
def stripe_on(app, localstripe, monkeypatch):
    """Payouts go through StripeConnectPayouts to the local Stripe server."""
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", localstripe.base_url)
    return localstripe


@pytest.fixture
def season(make_user, shiitake, make_price, make_contract, deliver):
    """A farmer with an account and an active contract at +12 %, shiitake at ¥16.80/kg."""
    farmer = make_user("farmer")
    service.set_payout_account(db.session, farmer.id, "acct_1QingguWu")
    db.session.commit()
    make_price(shiitake, 1680, SEASON_START)
    contract = make_contract(farmer, shiitake, premium_bp=1200, committed_kg=1000)
    return farmer, contract


def _run(client, admin, through):
    response = client.post("/api/v1/payouts/run", json={"through": through}, headers=admin)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["payouts"]


def _transfers(localstripe):
    return [r for r in localstripe.requests_seen() if r["path"] == "/v1/transfers"]


def test_a_run_pays_each_farmer_their_deliveries_and_adjustments_through_the_date(
    client, auth, season, deliver, make_user, make_contract, shiitake
):
    _, admin = auth("admin")
    farmer, contract = season
    first = deliver(contract, date(2025, 9, 10), 10_000)  # 18 816 fen
    second = deliver(contract, date(2025, 9, 30), 1_234)  # 2 322 fen
    later = deliver(contract, date(2025, 10, 1), 5_000)  # after the run's date
    adjustment = service.record_adjustment(
        db.session,
        contract.id,
        amount_fen=-500,
        reason="sorting loss",
        adjusted_on=date(2025, 9, 30),
        created_by=None,
    )
    db.session.commit()

    [payout] = _run(client, admin, "2025-09-30")

    assert payout == {
        "id": payout["id"],
        "farmer_id": farmer.id,
        "amount_fen": 18_816 + 2_322 - 500,
        "state": "paid",  # the sandbox, eagerly
        "reason": None,
        "deliveries": [first.id, second.id],
        "adjustments": [adjustment.id],
    }
    assert later.id not in payout["deliveries"]


def test_two_runs_in_a_row_pay_nothing_twice(client, auth, season, deliver, stripe_on):
    _, admin = auth("admin")
    _, contract = season
    deliver(contract, date(2025, 9, 10), 10_000)

    [paid] = _run(client, admin, "2025-09-30")
    assert _run(client, admin, "2025-09-30") == []
    assert _run(client, admin, "2025-12-31") == []

    assert paid["state"] == "paid"
    assert [t["idempotency_key"] for t in _transfers(stripe_on)] == [f"payout-{paid['id']}"]
    assert db.session.scalar(select(func.count(Payout.id))) == 1


def test_the_database_refuses_a_delivery_in_two_payouts(db_session, season, deliver):
    farmer, contract = season
    delivery = deliver(contract, date(2025, 9, 10), 1_000)
    payouts = [
        Payout(farmer_id=farmer.id, amount_fen=1_882, through=date(2025, 9, 30), state="pending")
        for _ in range(2)
    ]
    db.session.add_all(payouts)
    db.session.flush()
    db.session.add(PayoutItem(payout_id=payouts[0].id, delivery_id=delivery.id, amount_fen=1_882))
    db.session.flush()
    db.session.add(PayoutItem(payout_id=payouts[1].id, delivery_id=delivery.id, amount_fen=1_882))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_a_stripe_transfer_carries_the_amount_destination_group_metadata_and_key(
    client, auth, season, deliver, stripe_on
):
    _, admin = auth("admin")
    farmer, contract = season
    deliver(contract, date(2025, 9, 10), 10_000)

    [payout] = _run(client, admin, "2025-09-30")

    stored = db.session.get(Payout, payout["id"])
    db.session.refresh(stored)
    assert (stored.state, stored.provider, stored.attempts) == ("paid", "stripe", 1)
    assert stored.transfer_id.startswith("tr_")
    assert stored.paid_at is not None
    client_ = stripe.StripeClient(SECRET_KEY, base_addresses={"api": stripe_on.base_url})
    transfer = client_.v1.transfers.retrieve(stored.transfer_id)
    assert transfer.amount == 18_816
    assert transfer.currency == "cny"
    assert transfer.destination == "acct_1QingguWu"
    assert transfer.transfer_group == f"payout-{stored.id}"
    assert transfer.metadata.to_dict() == {
        "farmer_id": str(farmer.id),
        "payout_id": str(stored.id),
    }
    assert [t["idempotency_key"] for t in _transfers(stripe_on)] == [f"payout-{stored.id}"]


def test_a_failed_transfer_is_retried_by_the_next_run_with_the_same_key(
    client, auth, season, deliver, stripe_on
):
    _, admin = auth("admin")
    _farmer, contract = season
    deliver(contract, date(2025, 9, 10), 10_000)
    stripe_on.fail_next_transfers(1, "Insufficient funds in platform balance.")

    [failed] = _run(client, admin, "2025-09-30")
    assert failed["state"] == "failed"
    assert failed["reason"] == "Insufficient funds in platform balance."

    # Within 24 h Stripe replays the first answer for the same key: still failed.
    [replayed] = _run(client, admin, "2025-09-30")
    assert (replayed["id"], replayed["state"]) == (failed["id"], "failed")

    stripe_on.expire_idempotency_keys()  # a day passes
    [paid] = _run(client, admin, "2025-09-30")
    assert (paid["id"], paid["state"], paid["reason"]) == (failed["id"], "paid", None)

    key = f"payout-{failed['id']}"
    assert [t["idempotency_key"] for t in _transfers(stripe_on)] == [key, key, key]
    assert _run(client, admin, "2025-09-30") == []
    stored = db.session.get(Payout, failed["id"])
    db.session.refresh(stored)
    assert stored.attempts == 3


def test_a_farmer_without_an_account_waits_pending_and_a_later_run_pays_them(
    client, auth, make_user, shiitake, make_price, make_contract, deliver, stripe_on
):
    _, admin = auth("admin")
    farmer = make_user("farmer")
    make_price(shiitake, 1680, SEASON_START)
    contract = make_contract(farmer, shiitake)
    deliver(contract, date(2025, 9, 10), 10_000)

    [pending] = _run(client, admin, "2025-09-30")
    assert pending["state"] == "pending"
    assert "payout account" in pending["reason"]
    assert _transfers(stripe_on) == []
    [still] = _run(client, admin, "2025-09-30")
    assert (still["id"], still["state"]) == (pending["id"], "pending")

    client.post(
        f"/api/v1/farmers/{farmer.id}/payout-account",
        json={"stripe_account_id": "acct_1QingguWu"},
        headers=admin,
    )
    [paid] = _run(client, admin, "2025-09-30")
    assert (paid["id"], paid["state"], paid["reason"]) == (pending["id"], "paid", None)
    assert [t["idempotency_key"] for t in _transfers(stripe_on)] == [f"payout-{pending['id']}"]


def test_a_negative_net_is_carried_forward_to_the_next_run(client, auth, season, deliver):
    _, admin = auth("admin")
    _, contract = season
    delivery = deliver(contract, date(2025, 9, 10), 1_000)  # 1 882 fen
    adjustment = service.record_adjustment(
        db.session,
        contract.id,
        amount_fen=-2_000,
        reason="advance for spawn bags",
        adjusted_on=date(2025, 9, 10),
        created_by=None,
    )
    db.session.commit()

    assert _run(client, admin, "2025-09-30") == []  # net −118: nothing sent, nothing closed

    later = deliver(contract, date(2025, 10, 10), 10_000)  # 18 816 fen
    [payout] = _run(client, admin, "2025-10-31")
    assert payout["amount_fen"] == 1_882 - 2_000 + 18_816
    assert payout["deliveries"] == [delivery.id, later.id]
    assert payout["adjustments"] == [adjustment.id]


def test_the_farmer_statement_shows_every_line_and_totals_that_add_up(
    client, auth, token_for, season, deliver, stripe_on
):
    _, admin = auth("admin")
    farmer, contract = season
    headers = {"Authorization": f"Bearer {token_for(farmer)}"}
    first = deliver(contract, date(2025, 9, 10), 10_000)  # 18 816
    deliver(contract, date(2025, 10, 8), 86_750)  # 1680 × 1.12 × 86.75 = 163 228.8 → 163 229
    stripe_on.fail_next_transfers(1, "Your destination account needs to have its details.")
    _run(client, admin, "2025-09-30")
    stripe_on.expire_idempotency_keys()
    _run(client, admin, "2025-09-30")

    statement = client.get("/api/v1/farmers/me/payouts", headers=headers).get_json()

    [payout] = statement["items"]
    assert (payout["amount_fen"], payout["state"], payout["through"]) == (
        18_816,
        "paid",
        "2025-09-30",
    )
    [line] = payout["deliveries"]
    assert line["id"] == first.id
    assert (
        line["weight_g"],
        line["market_price_fen_per_kg"],
        line["premium_bp"],
        line["amount_fen"],
    ) == (10_000, 1680, 1200, 18_816)
    assert statement["totals"] == {
        "delivered_fen": 18_816 + 163_229,
        "adjustments_fen": 0,
        "paid_fen": 18_816,
        "pending_fen": 163_229,
    }
    deliveries = client.get("/api/v1/farmers/me/deliveries", headers=headers).get_json()
    assert [d["payout_id"] for d in deliveries["items"]] == [None, payout["id"]]

    _, other = auth("farmer")
    theirs = client.get("/api/v1/farmers/me/payouts", headers=other).get_json()
    assert theirs["items"] == []
    assert theirs["totals"]["delivered_fen"] == 0


def test_the_task_is_idempotent_eagerly_and_when_called_twice(
    client, auth, season, deliver, stripe_on
):
    _farmer, contract = season
    deliver(contract, date(2025, 9, 10), 10_000)
    from contracts.payouts import service as payouts

    run = payouts.run_payouts(
        db.session, through=date(2025, 9, 30), now=utcnow(), sending_lease=timedelta(minutes=15)
    )
    db.session.commit()
    [payout_id] = run.to_send

    send_payout.delay(payout_id)  # eager in the embedded default
    assert send_payout(payout_id) == "paid"  # called directly: nothing more happens
    assert send_payout_now(payout_id).state == "paid"

    assert [t["idempotency_key"] for t in _transfers(stripe_on)] == [f"payout-{payout_id}"]


def test_a_payout_being_sent_is_not_sent_again_until_its_claim_is_stale(
    client, auth, season, deliver, stripe_on
):
    _, admin = auth("admin")
    _, contract = season
    deliver(contract, date(2025, 9, 10), 10_000)
    stripe_on.fail_next_transfers(1)
    [payout] = _run(client, admin, "2025-09-30")
    # A sender claimed it and died before recording the outcome.
    db.session.execute(
        update(Payout)
        .where(Payout.id == payout["id"])
        .values(state="sending", sending_since=utcnow())
    )
    db.session.commit()
    assert _run(client, admin, "2025-09-30") == []
    assert send_payout_now(payout["id"]).state == "sending"

    db.session.execute(
        update(Payout)
        .where(Payout.id == payout["id"])
        .values(sending_since=utcnow() - timedelta(hours=1))
    )
    db.session.commit()
    stripe_on.expire_idempotency_keys()
    [retried] = _run(client, admin, "2025-09-30")
    assert (retried["id"], retried["state"]) == (payout["id"], "paid")
    assert {t["idempotency_key"] for t in _transfers(stripe_on)} == {f"payout-{payout['id']}"}


def test_an_unreachable_stripe_leaves_the_payout_failed_for_a_retry(
    client, auth, season, deliver, app, monkeypatch
):
    _, admin = auth("admin")
    _, contract = season
    deliver(contract, date(2025, 9, 10), 10_000)
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", "http://127.0.0.1:9")  # nothing listens

    [payout] = _run(client, admin, "2025-09-30")

    assert payout["state"] == "failed"
    assert "unreachable" in payout["reason"]


def test_stripe_connect_reports_unreachable_as_such():
    provider = StripeConnectPayouts(SECRET_KEY, "http://127.0.0.1:9")
    provider.client._requestor._options.max_network_retries = 0  # type: ignore[attr-defined]
    with pytest.raises(TransferUnreachable):
        provider.transfer(TransferRequest(1, 2, 100, "cny", "acct_1"))


def test_the_sandbox_is_refused_in_production():
    with pytest.raises(RuntimeError, match="STRIPE_SECRET_KEY"):
        payout_provider({"SHANHUO_ENV": "production", "STRIPE_SECRET_KEY": None})
    assert isinstance(payout_provider({"SHANHUO_ENV": "development"}), SandboxPayouts)
    assert isinstance(
        payout_provider({"SHANHUO_ENV": "production", "STRIPE_SECRET_KEY": SECRET_KEY}),
        StripeConnectPayouts,
    )


@pytest.mark.postgres
def test_two_runs_at_the_same_time_put_each_delivery_in_one_payout(
    committing, make_user, make_product, auth, localstripe, monkeypatch
):
    app = committing
    monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setitem(app.config, "STRIPE_API_BASE", localstripe.base_url)
    with app.app_context():
        _, admin = auth("admin")
        product = make_product()
        prices.add_market_price(
            db.session,
            product_id=product.id,
            price_fen_per_kg=1680,
            effective_on=SEASON_START,
            source="market",
            created_by=None,
        )
        delivery_ids = []
        for n in range(3):
            farmer = make_user("farmer")
            service.set_payout_account(db.session, farmer.id, f"acct_{n}Farmer")
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
            for day in (3, 9, 17):
                delivery = service.record_delivery(
                    db.session,
                    contract.id,
                    delivered_on=date(2025, 9, day),
                    weight_g=1_000 * day,
                    recorded_by=None,
                )
                delivery_ids.append(delivery.id)
        db.session.commit()

    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def run() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post("/api/v1/payouts/run", json={"through": "2025-09-30"}, headers=admin)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200, 200, 200, 200]
    with app.app_context():
        items = db.session.scalars(select(PayoutItem)).all()
        assert sorted(i.delivery_id for i in items) == sorted(delivery_ids)
        payouts = db.session.scalars(select(Payout)).all()
        assert len(payouts) == 3
        assert len({p.farmer_id for p in payouts}) == 3
        assert {p.state for p in payouts} == {"paid"}
    keys = [t["idempotency_key"] for t in _transfers(localstripe)]
    assert sorted(keys) == sorted(f"payout-{p.id}" for p in payouts)


def test_a_run_in_production_without_a_stripe_key_is_refused_before_anything_is_made(
    client, auth, season, deliver, app, monkeypatch
):
    _, admin = auth("admin")
    _, contract = season
    deliver(contract, date(2025, 9, 10), 10_000)
    monkeypatch.setitem(app.config, "SHANHUO_ENV", "production")
    response = client.post("/api/v1/payouts/run", json={"through": "2025-09-30"}, headers=admin)
    assert response.status_code == 503
    assert response.get_json()["type"] == "payout-provider"
    assert db.session.scalar(select(func.count(Payout.id))) == 0
