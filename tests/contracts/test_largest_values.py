"""A contract at the largest price, premium and commitment the API accepts, delivered in
the largest deliveries it accepts, is priced and paid out exactly; one past any of those
limits is a 422 that writes nothing. (On PostgreSQL a 32-bit column overflows for real.)"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from contracts.models import MAX_PREMIUM_BP, Contract, Delivery, MarketPrice
from contracts.prices import MAX_PRICE_FEN_PER_KG
from contracts.pricing import delivery_amount_fen
from contracts.schemas import MAX_COMMITTED_KG, MAX_DELIVERY_G
from shop.db import db
from tests.contracts.conftest import SEASON_END, SEASON_START

DELIVERIES = MAX_COMMITTED_KG * 1000 // MAX_DELIVERY_G  # the whole commitment


def test_the_largest_contract_is_priced_and_paid_out_exactly(client, auth, shiitake):
    farmer, farmer_h = auth("farmer")
    _, admin = auth("admin")
    price = client.post(
        "/api/v1/market-prices",
        json={
            "product_id": shiitake.id,
            "price_fen_per_kg": MAX_PRICE_FEN_PER_KG,
            "effective_on": SEASON_START.isoformat(),
            "source": "test",
        },
        headers=admin,
    )
    assert price.status_code == 201, price.json
    contract = client.post(
        "/api/v1/contracts",
        json={
            "farmer_id": farmer.id,
            "product_id": shiitake.id,
            "premium_bp": MAX_PREMIUM_BP,
            "committed_kg": MAX_COMMITTED_KG,
            "starts_on": SEASON_START.isoformat(),
            "ends_on": SEASON_END.isoformat(),
        },
        headers=admin,
    )
    assert contract.status_code == 201, contract.json
    contract_id = contract.json["id"]
    assert (
        client.post(f"/api/v1/contracts/{contract_id}/accept", headers=farmer_h).status_code == 200
    )

    each = delivery_amount_fen(
        market_fen_per_kg=MAX_PRICE_FEN_PER_KG, premium_bp=MAX_PREMIUM_BP, weight_g=MAX_DELIVERY_G
    )
    assert each > 2**31 - 1
    for n in range(DELIVERIES):
        delivered = client.post(
            f"/api/v1/contracts/{contract_id}/deliveries",
            json={
                "delivered_on": (SEASON_START + timedelta(days=n)).isoformat(),
                "weight_g": MAX_DELIVERY_G,
            },
            headers=admin,
        )
        assert delivered.status_code == 201, delivered.json
        assert delivered.json["amount_fen"] == each
    assert db.session.get(Contract, contract_id).delivered_g == MAX_COMMITTED_KG * 1000

    account = client.post(
        f"/api/v1/farmers/{farmer.id}/payout-account",
        json={"stripe_account_id": "acct_1Largest"},
        headers=admin,
    )
    assert account.status_code == 200, account.json
    run = client.post(
        "/api/v1/payouts/run", json={"through": SEASON_END.isoformat()}, headers=admin
    )
    assert run.status_code == 200, run.json
    assert [p["amount_fen"] for p in run.json["payouts"]] == [DELIVERIES * each]
    statement = client.get("/api/v1/farmers/me/payouts", headers=farmer_h).json
    assert statement["totals"]["delivered_fen"] == DELIVERIES * each


def test_one_past_the_largest_price_commitment_or_delivery_is_refused(
    client, auth, shiitake, make_price, make_contract
):
    farmer, _ = auth("farmer")
    _, admin = auth("admin")
    too_dear = client.post(
        "/api/v1/market-prices",
        json={
            "product_id": shiitake.id,
            "price_fen_per_kg": MAX_PRICE_FEN_PER_KG + 1,
            "effective_on": SEASON_START.isoformat(),
            "source": "test",
        },
        headers=admin,
    )
    assert too_dear.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(MarketPrice)) == 0
    too_big = client.post(
        "/api/v1/contracts",
        json={
            "farmer_id": farmer.id,
            "product_id": shiitake.id,
            "premium_bp": MAX_PREMIUM_BP,
            "committed_kg": MAX_COMMITTED_KG + 1,
            "starts_on": SEASON_START.isoformat(),
            "ends_on": SEASON_END.isoformat(),
        },
        headers=admin,
    )
    assert too_big.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Contract)) == 0

    make_price(shiitake, 1680, SEASON_START)
    contract = make_contract(farmer, shiitake, premium_bp=1200, committed_kg=MAX_COMMITTED_KG)
    too_heavy = client.post(
        f"/api/v1/contracts/{contract.id}/deliveries",
        json={"delivered_on": SEASON_START.isoformat(), "weight_g": MAX_DELIVERY_G + 1},
        headers=admin,
    )
    assert too_heavy.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Delivery)) == 0
