"""``shanhuo seed-demo``: market prices, an active Qinggu contract, two deliveries, a payout."""

from __future__ import annotations

from sqlalchemy import func, select

from contracts.models import Contract, Delivery, MarketPrice, Payout, PayoutItem
from contracts.pricing import delivery_amount_fen
from shop.db import db


def _counts():
    return [
        db.session.scalar(select(func.count(model.id)))
        for model in (MarketPrice, Contract, Delivery, Payout, PayoutItem)
    ]


def test_the_demo_farmer_gets_a_statement_that_recomputes_by_hand(app, db_session, client):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert "MISMATCH" not in first.output
    counts = _counts()
    again = runner.invoke(args=["seed-demo"])
    assert again.exit_code == 0, again.output
    assert _counts() == counts  # idempotent

    token = client.post(
        "/api/v1/auth/token", json={"email": "farmer@shanhuo.demo", "password": "shanhuo-demo"}
    ).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    [contract] = client.get("/api/v1/farmers/me/contracts", headers=headers).get_json()["items"]
    assert (contract["state"], contract["premium_bp"]) == ("active", 1200)
    deliveries = client.get("/api/v1/farmers/me/deliveries", headers=headers).get_json()["items"]
    assert len(deliveries) == 2
    for line in deliveries:
        assert line["amount_fen"] == delivery_amount_fen(
            market_fen_per_kg=line["market_price_fen_per_kg"],
            premium_bp=line["premium_bp"],
            weight_g=line["weight_g"],
        )
    statement = client.get("/api/v1/farmers/me/payouts", headers=headers).get_json()
    [payout] = statement["items"]
    assert payout["state"] == "paid"
    assert payout["amount_fen"] == sum(d["amount_fen"] for d in payout["deliveries"])
    totals = statement["totals"]
    assert totals["delivered_fen"] == sum(d["amount_fen"] for d in deliveries)
    assert totals["paid_fen"] + totals["pending_fen"] == totals["delivered_fen"]
