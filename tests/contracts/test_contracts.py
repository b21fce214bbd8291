"""Contracts: premium bounds, draft → active → completed/terminated, deliveries inside the
dates and the commitment (also under concurrency), adjustments, farmers' own views."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from contracts import service
from contracts.errors import CommitmentExceeded
from contracts.models import Adjustment, Contract, Delivery, FarmerProfile, Payout
from shop.db import db
from tests.contracts.conftest import SEASON_END, SEASON_START


def _contract_body(farmer, product, **changes):
    return {
        "farmer_id": farmer.id,
        "product_id": product.id,
        "premium_bp": 1200,
        "committed_kg": 500,
        "starts_on": "2025-09-01",
        "ends_on": "2025-12-31",
        **changes,
    }


def _deliveries() -> int:
    return db.session.scalar(select(func.count(Delivery.id)))


@pytest.mark.parametrize(
    ("premium_bp", "status"), [(999, 422), (1000, 201), (1500, 201), (1501, 422)]
)
def test_the_premium_must_be_between_10_and_15_percent(
    client, auth, make_user, shiitake, premium_bp, status
):
    _, admin = auth("admin")
    farmer = make_user("farmer")
    response = client.post(
        "/api/v1/contracts",
        json=_contract_body(farmer, shiitake, premium_bp=premium_bp),
        headers=admin,
    )
    assert response.status_code == status
    stored = [tuple(row) for row in db.session.execute(select(Contract.premium_bp, Contract.state))]
    if status == 422:
        assert response.get_json()["type"] == "validation"
        assert "premium_bp" in response.get_json()["errors"]
        assert stored == []
    else:
        assert response.get_json()["state"] == "draft"
        assert response.get_json()["premium_bp"] == premium_bp
        assert stored == [(premium_bp, "draft")]


@pytest.mark.parametrize("premium_bp", [999, 1501])
def test_the_database_refuses_a_premium_out_of_bounds_too(
    db_session, make_user, shiitake, premium_bp
):
    farmer = make_user("farmer")
    db.session.add(
        Contract(
            farmer_id=farmer.id,
            product_id=shiitake.id,
            grade="standard",
            premium_bp=premium_bp,
            committed_kg=1,
            starts_on=SEASON_START,
            ends_on=SEASON_END,
            state="draft",
            delivered_g=0,
        )
    )
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"ends_on": "2025-08-31"}, "ends_on"),
        ({"committed_kg": 0}, "committed_kg"),
        ({"committed_kg": 2.5}, "committed_kg"),
        ({"premium_bp": "1200"}, "premium_bp"),
        ({"product_id": 999_999}, "product_id"),
    ],
)
def test_bad_contracts_are_refused(client, auth, make_user, shiitake, changes, field):
    _, admin = auth("admin")
    farmer = make_user("farmer")
    response = client.post(
        "/api/v1/contracts", json=_contract_body(farmer, shiitake, **changes), headers=admin
    )
    assert response.status_code == 422
    assert field in response.get_json()["errors"]
    assert db.session.scalar(select(func.count(Contract.id))) == 0


def test_a_contract_binds_only_a_farmer(client, auth, make_user, shiitake):
    _, admin = auth("admin")
    buyer = make_user("buyer")
    response = client.post("/api/v1/contracts", json=_contract_body(buyer, shiitake), headers=admin)
    assert response.status_code == 422
    assert "farmer_id" in response.get_json()["errors"]


def test_only_the_contracts_farmer_accepts_it_and_only_once(client, auth, shiitake, make_contract):
    farmer, farmer_headers = auth("farmer")
    _, other_farmer = auth("farmer")
    contract = make_contract(farmer, shiitake, active=False)

    url = f"/api/v1/contracts/{contract.id}/accept"
    assert client.post(url, headers=other_farmer).status_code == 404
    accepted = client.post(url, headers=farmer_headers)
    assert accepted.status_code == 200
    assert accepted.get_json()["state"] == "active"
    assert accepted.get_json()["accepted_at"] is not None
    again = client.post(url, headers=farmer_headers)
    assert again.status_code == 409
    assert again.get_json()["type"] == "conflict"


def test_an_admin_terminates_a_contract_with_a_reason_and_deliveries_stop(
    client, auth, make_user, shiitake, make_price, make_contract
):
    _, admin = auth("admin")
    contract = make_contract(make_user("farmer"), shiitake)
    make_price(shiitake, 1680, SEASON_START)
    url = f"/api/v1/contracts/{contract.id}/terminate"
    assert client.post(url, json={"reason": " "}, headers=admin).status_code == 422
    ended = client.post(url, json={"reason": "合作社解散 cooperative dissolved"}, headers=admin)
    assert ended.status_code == 200
    assert ended.get_json()["state"] == "terminated"
    assert ended.get_json()["termination_reason"] == "合作社解散 cooperative dissolved"
    assert client.post(url, json={"reason": "again"}, headers=admin).status_code == 409
    delivery = client.post(
        f"/api/v1/contracts/{contract.id}/deliveries",
        json={"delivered_on": "2025-09-02", "weight_g": 1000},
        headers=admin,
    )
    assert delivery.status_code == 409
    assert delivery.get_json()["type"] == "conflict"


def test_a_draft_contract_takes_no_deliveries(
    client, auth, make_user, shiitake, make_price, make_contract
):
    _, admin = auth("admin")
    contract = make_contract(make_user("farmer"), shiitake, active=False)
    make_price(shiitake, 1680, SEASON_START)
    response = client.post(
        f"/api/v1/contracts/{contract.id}/deliveries",
        json={"delivered_on": "2025-09-02", "weight_g": 1000},
        headers=admin,
    )
    assert response.status_code == 409
    assert response.get_json()["type"] == "conflict"
    assert _deliveries() == 0


@pytest.mark.parametrize(
    ("day", "status"),
    [("2025-08-31", 409), ("2025-09-01", 201), ("2025-12-31", 201), ("2026-01-01", 409)],
)
def test_deliveries_only_within_the_contracts_dates(
    client, auth, make_user, shiitake, make_price, make_contract, day, status
):
    _, admin = auth("admin")
    contract = make_contract(make_user("farmer"), shiitake)
    make_price(shiitake, 1500, date(2025, 1, 1))
    response = client.post(
        f"/api/v1/contracts/{contract.id}/deliveries",
        json={"delivered_on": day, "weight_g": 1000},
        headers=admin,
    )
    assert response.status_code == status
    if status == 409:
        assert response.get_json()["type"] == "conflict"
        assert _deliveries() == 0
    else:
        assert response.get_json()["delivered_on"] == day
        assert _deliveries() == 1


def test_the_committed_weight_is_never_passed_and_reaching_it_completes_the_contract(
    client, auth, make_user, shiitake, make_price, make_contract
):
    _, admin = auth("admin")
    contract = make_contract(make_user("farmer"), shiitake, committed_kg=10)
    make_price(shiitake, 1680, SEASON_START)
    url = f"/api/v1/contracts/{contract.id}/deliveries"

    def deliver(weight_g):
        return client.post(
            url, json={"delivered_on": "2025-09-10", "weight_g": weight_g}, headers=admin
        )

    assert deliver(6_000).status_code == 201
    over = deliver(4_001)  # crosses the line: refused whole
    assert over.status_code == 409
    assert over.get_json()["type"] == "commitment"
    assert over.get_json()["remaining_g"] == 4_000
    assert _deliveries() == 1
    assert deliver(4_000).status_code == 201
    done = client.get(f"/api/v1/contracts/{contract.id}", headers=admin).get_json()
    assert (done["state"], done["delivered_g"], done["remaining_g"]) == ("completed", 10_000, 0)
    assert done["completed_at"] is not None
    after = deliver(1)
    assert after.status_code == 409
    assert after.get_json()["type"] == "conflict"  # the contract is no longer active


@pytest.mark.postgres
def test_racing_deliveries_never_jointly_pass_the_commitment(committing, make_user, make_product):
    app = committing
    with app.app_context():
        farmer = make_user("farmer")
        shiitake = make_product()
        from contracts import prices

        prices.add_market_price(
            db.session,
            product_id=shiitake.id,
            price_fen_per_kg=1680,
            effective_on=SEASON_START,
            source="market",
            created_by=None,
        )
        contract = service.create_contract(
            db.session,
            farmer_id=farmer.id,
            product_id=shiitake.id,
            premium_bp=1200,
            committed_kg=10,
            starts_on=SEASON_START,
            ends_on=SEASON_END,
            created_by=None,
        )
        service.accept_contract(db.session, contract.id, farmer)
        db.session.commit()
        contract_id = contract.id

    outcomes: list[str] = []
    barrier = threading.Barrier(16)

    def deliver() -> None:
        with app.app_context():
            barrier.wait()
            try:
                service.record_delivery(
                    db.session,
                    contract_id,
                    delivered_on=date(2025, 9, 10),
                    weight_g=1_500,
                    recorded_by=None,
                )
                db.session.commit()
                outcomes.append("delivered")
            except CommitmentExceeded:
                db.session.rollback()
                outcomes.append("commitment")
            except Exception as error:  # e.g. the contract just completed
                db.session.rollback()
                outcomes.append(type(error).__name__)

    threads = [threading.Thread(target=deliver) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes.count("delivered") == 6  # 6 × 1.5 kg = 9 kg; a 7th would be 10.5 kg
    assert outcomes.count("commitment") == 10
    with app.app_context():
        contract = db.session.get(Contract, contract_id)
        total = db.session.scalar(
            select(func.sum(Delivery.weight_g)).where(Delivery.contract_id == contract_id)
        )
        assert contract.delivered_g == total == 9_000
        assert contract.state == "active"


def test_deliveries_are_never_edited(
    db_session, make_user, shiitake, make_price, make_contract, deliver
):
    contract = make_contract(make_user("farmer"), shiitake)
    make_price(shiitake, 1680, SEASON_START)
    delivery = deliver(contract, date(2025, 9, 10), 1000)
    delivery.weight_g = 2000
    with pytest.raises(RuntimeError, match="never edited"):
        db.session.flush()
    db.session.rollback()


def test_corrections_are_signed_adjustments_with_a_reason(
    client, auth, make_user, shiitake, make_price, make_contract, deliver
):
    _, admin = auth("admin")
    contract = make_contract(make_user("farmer"), shiitake)
    make_price(shiitake, 1680, SEASON_START)
    delivery = deliver(contract, date(2025, 9, 10), 10_000)
    url = f"/api/v1/contracts/{contract.id}/adjustments"

    response = client.post(
        url,
        json={
            "amount_fen": -1_882,
            "reason": "1 kg was wet and rejected at the workshop",
            "delivery_id": delivery.id,
            "adjusted_on": "2025-09-11",
        },
        headers=admin,
    )
    assert response.status_code == 201
    body = response.get_json()
    assert (body["amount_fen"], body["delivery_id"], body["adjusted_on"]) == (
        -1_882,
        delivery.id,
        "2025-09-11",
    )
    for bad in [
        {"amount_fen": 0, "reason": "nothing"},
        {"amount_fen": 1.5, "reason": "half a fen"},
        {"amount_fen": 100},
        {"amount_fen": 100, "reason": "x", "delivery_id": delivery.id + 1000},
    ]:
        refused = client.post(url, json=bad, headers=admin)
        assert refused.status_code == 422, bad
    db.session.refresh(delivery)
    assert delivery.amount_fen == 18_816  # the delivery itself is unchanged
    stored = db.session.scalars(select(Adjustment)).all()  # the refused ones left nothing
    assert [(a.amount_fen, a.delivery_id, a.reason) for a in stored] == [
        (-1_882, delivery.id, "1 kg was wet and rejected at the workshop")
    ]


def test_a_farmer_sees_only_their_own_contracts_and_deliveries(
    client, auth, shiitake, make_price, make_contract, deliver
):
    wu, wu_headers = auth("farmer")
    li, _li_headers = auth("farmer")
    mine = make_contract(wu, shiitake)
    theirs = make_contract(li, shiitake)
    make_price(shiitake, 1680, SEASON_START)
    deliver(mine, date(2025, 9, 10), 1_234)
    deliver(theirs, date(2025, 9, 10), 5_000)

    contracts = client.get("/api/v1/farmers/me/contracts", headers=wu_headers).get_json()
    assert [c["id"] for c in contracts["items"]] == [mine.id]
    deliveries = client.get("/api/v1/farmers/me/deliveries", headers=wu_headers).get_json()
    [line] = deliveries["items"]
    assert line == {
        **line,
        "contract_id": mine.id,
        "delivered_on": "2025-09-10",
        "weight_g": 1_234,
        "market_price_fen_per_kg": 1680,
        "market_price_effective_on": "2025-09-01",
        "premium_bp": 1200,
        "amount_fen": 2_322,  # 1680 × 1.12 × 1.234 = 2321.9… → 2322
        "payout_id": None,
    }
    assert client.get(f"/api/v1/contracts/{theirs.id}", headers=wu_headers).status_code == 404
    assert client.get(f"/api/v1/contracts/{mine.id}", headers=wu_headers).status_code == 200
    assert client.get(f"/api/v1/farmers/{li.id}", headers=wu_headers).status_code == 404
    assert client.get(f"/api/v1/farmers/{wu.id}", headers=wu_headers).status_code == 200


@pytest.mark.parametrize("role", ["buyer", "villager", "streamer"])
def test_other_roles_have_no_farmer_views(client, auth, role):
    _, headers = auth(role)
    for path in ["contracts", "deliveries", "payouts"]:
        response = client.get(f"/api/v1/farmers/me/{path}", headers=headers)
        assert response.status_code == 403
        assert response.get_json()["type"] == "forbidden"
        assert client.get(f"/api/v1/farmers/me/{path}").status_code == 401


@pytest.mark.parametrize("role", ["farmer", "buyer", "villager", "streamer"])
def test_only_admins_write_contracts_deliveries_adjustments_and_payouts(
    client, auth, make_user, shiitake, make_contract, role
):
    farmer = make_user("farmer")
    contract = make_contract(farmer, shiitake)
    _, headers = auth(role)
    attempts = [
        ("/api/v1/contracts", _contract_body(farmer, shiitake)),
        (f"/api/v1/contracts/{contract.id}/terminate", {"reason": "x"}),
        (
            f"/api/v1/contracts/{contract.id}/deliveries",
            {"delivered_on": "2025-09-02", "weight_g": 1},
        ),
        (f"/api/v1/contracts/{contract.id}/adjustments", {"amount_fen": 1, "reason": "x"}),
        (f"/api/v1/farmers/{farmer.id}/payout-account", {"stripe_account_id": "acct_123"}),
        (f"/api/v1/farmers/{farmer.id}/profile", {"village": "x"}),
        ("/api/v1/payouts/run", {"through": "2025-12-31"}),
    ]
    for path, body in attempts:
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 403, path
        assert client.post(path, json=body).status_code == 401, path
    if role != "farmer":
        accept = client.post(f"/api/v1/contracts/{contract.id}/accept", headers=headers)
        assert accept.status_code == 403
    # Nothing was written: one contract, still active; no delivery, adjustment or payout.
    assert [c.state for c in db.session.scalars(select(Contract))] == ["active"]
    for model in (Delivery, Adjustment, Payout, FarmerProfile):
        assert db.session.scalar(select(func.count()).select_from(model)) == 0, model


def test_an_admin_keeps_a_farmers_profile_and_payout_account(client, auth, make_user):
    _, admin = auth("admin")
    farmer = make_user("farmer")
    profile = client.post(
        f"/api/v1/farmers/{farmer.id}/profile",
        json={"village": "庆元县 五大堡乡", "phone": "+86 578 600 0000"},
        headers=admin,
    )
    assert profile.status_code == 200
    assert profile.get_json()["has_payout_account"] is False
    for bad in ["acct_", "ba_123", "acct_12 3", "acct_123\n"]:
        response = client.post(
            f"/api/v1/farmers/{farmer.id}/payout-account",
            json={"stripe_account_id": bad},
            headers=admin,
        )
        assert response.status_code == 422, bad
    response = client.post(
        f"/api/v1/farmers/{farmer.id}/payout-account",
        json={"stripe_account_id": "acct_1QingguWu"},
        headers=admin,
    )
    assert response.status_code == 200
    assert response.get_json() == {
        "id": farmer.id,
        "display_name": farmer.display_name,
        "village": "庆元县 五大堡乡",
        "phone": "+86 578 600 0000",
        "stripe_account_id": "acct_1QingguWu",
        "has_payout_account": True,
    }
    buyer = make_user("buyer")
    not_a_farmer = client.post(
        f"/api/v1/farmers/{buyer.id}/payout-account",
        json={"stripe_account_id": "acct_1"},
        headers=admin,
    )
    assert not_a_farmer.status_code == 404
