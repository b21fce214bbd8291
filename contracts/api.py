"""Contracts endpoints: farmers, contracts, deliveries, adjustments, payouts, farmer views."""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from contracts import service
from contracts.errors import PayoutProviderUnavailable
from contracts.models import Adjustment, Contract, Delivery, FarmerProfile, Payout
from contracts.payouts import service as payouts
from contracts.payouts.providers import payout_provider
from contracts.schemas import (
    AdjustmentIn,
    AdjustmentOut,
    ContractIn,
    ContractOut,
    ContractPage,
    DeliveryIn,
    DeliveryOut,
    DeliveryPage,
    FarmerOut,
    FarmerPayoutsOut,
    FarmerProfileIn,
    PayoutAccountIn,
    PayoutRunIn,
    PayoutRunOut,
    TerminateIn,
)
from contracts.tasks import send_payout, sending_lease
from shop.accounts.models import Role, User
from shop.api import Blueprint, ListQuery
from shop.auth import current_user, requires
from shop.db import db, utcnow
from shop.errors import Conflict, NotFound
from shop.i18n import _l
from shop.pagination import paginate

log = logging.getLogger(__name__)

blp = Blueprint(
    "contracts",
    __name__,
    url_prefix="/api/v1",
    description="Farmers, market prices, guaranteed-price contracts, deliveries, payouts",
)


def _today() -> date:
    return datetime.now(ZoneInfo(current_app.config["SHOP_TIMEZONE"])).date()


# ---------------------------------------------------------------------------- JSON shapes


def farmer_json(user: User, profile: FarmerProfile | None) -> dict[str, Any]:
    return {
        "id": user.id,
        "display_name": user.display_name,
        "village": profile.village if profile else None,
        "phone": profile.phone if profile else None,
        "stripe_account_id": profile.stripe_account_id if profile else None,
        "has_payout_account": bool(profile and profile.stripe_account_id),
    }


def contract_json(contract: Contract) -> dict[str, Any]:
    return {
        "id": contract.id,
        "farmer_id": contract.farmer_id,
        "product_id": contract.product_id,
        "grade": contract.grade,
        "premium_bp": contract.premium_bp,
        "committed_kg": contract.committed_kg,
        "delivered_g": contract.delivered_g,
        "remaining_g": contract.committed_kg * 1000 - contract.delivered_g,
        "starts_on": contract.starts_on,
        "ends_on": contract.ends_on,
        "state": contract.state,
        "termination_reason": contract.termination_reason,
        "created_at": contract.created_at,
        "accepted_at": contract.accepted_at,
        "completed_at": contract.completed_at,
        "terminated_at": contract.terminated_at,
    }


def delivery_json(delivery: Delivery, payout_id: int | None = None) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "contract_id": delivery.contract_id,
        "product_id": delivery.product_id,
        "grade": delivery.grade,
        "delivered_on": delivery.delivered_on,
        "weight_g": delivery.weight_g,
        "market_price_fen_per_kg": delivery.market_price_fen_per_kg,
        "market_price_effective_on": delivery.market_price_effective_on,
        "market_price_source": delivery.market_price_source,
        "premium_bp": delivery.premium_bp,
        "amount_fen": delivery.amount_fen,
        "lot_code": delivery.lot.code if delivery.lot else None,
        "payout_id": payout_id,
        "created_at": delivery.created_at,
    }


def adjustment_json(adjustment: Adjustment) -> dict[str, Any]:
    return {
        "id": adjustment.id,
        "contract_id": adjustment.contract_id,
        "delivery_id": adjustment.delivery_id,
        "amount_fen": adjustment.amount_fen,
        "reason": adjustment.reason,
        "adjusted_on": adjustment.adjusted_on,
        "created_at": adjustment.created_at,
    }


# ---------------------------------------------------------------------------- farmers


@blp.route("/farmers/<int:farmer_id>", methods=["GET"])
@requires(Role.ADMIN, Role.FARMER)
@blp.response(200, FarmerOut)
@blp.alt_response(404, response="NOT_FOUND")
def get_farmer(farmer_id: int) -> Any:
    """A farmer's profile (admins; a farmer only their own)."""
    user = current_user()
    if not user.has_role(Role.ADMIN) and user.id != farmer_id:
        raise NotFound(_l("No farmer %(farmer_id)s.", farmer_id=farmer_id))
    farmer = service.get_farmer(db.session, farmer_id)
    return farmer_json(farmer, db.session.get(FarmerProfile, farmer_id))


@blp.route("/farmers/<int:farmer_id>/profile", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(FarmerProfileIn)
@blp.response(200, FarmerOut)
@blp.alt_response(404, response="NOT_FOUND")
def update_farmer(data: dict[str, Any], farmer_id: int) -> Any:
    """Set a farmer's village and phone."""
    profile = service.update_farmer_profile(db.session, farmer_id, data)
    db.session.commit()
    return farmer_json(service.get_farmer(db.session, farmer_id), profile)


@blp.route("/farmers/<int:farmer_id>/payout-account", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(PayoutAccountIn)
@blp.response(200, FarmerOut)
@blp.alt_response(404, response="NOT_FOUND")
def set_payout_account(data: dict[str, Any], farmer_id: int) -> Any:
    """Set the Stripe Connect account (``acct_…``) the farmer's payouts go to.

    Payouts waiting for an account are sent by the next payout run.
    """
    profile = service.set_payout_account(db.session, farmer_id, data["stripe_account_id"])
    db.session.commit()
    return farmer_json(service.get_farmer(db.session, farmer_id), profile)


# ---------------------------------------------------------------------------- contracts


@blp.route("/contracts", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(ContractIn)
@blp.response(201, ContractOut)
def create_contract(data: dict[str, Any]) -> Any:
    """Draft a contract: premium 1000–1500 bp over the market price, for a committed weight."""
    contract = service.create_contract(db.session, **data, created_by=current_user().id)
    db.session.commit()
    return contract_json(contract)


@blp.route("/contracts/<int:contract_id>", methods=["GET"])
@requires(Role.ADMIN, Role.FARMER)
@blp.response(200, ContractOut)
@blp.alt_response(404, response="NOT_FOUND")
def get_contract(contract_id: int) -> Any:
    """One contract (admins; a farmer only their own)."""
    return contract_json(service.contract_for(db.session, contract_id, current_user()))


@blp.route("/contracts/<int:contract_id>/accept", methods=["POST"])
@requires(Role.FARMER)
@blp.response(200, ContractOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="not a draft")
def accept_contract(contract_id: int) -> Any:
    """The contract's farmer accepts it: draft → active."""
    contract = service.accept_contract(db.session, contract_id, current_user())
    db.session.commit()
    return contract_json(contract)


@blp.route("/contracts/<int:contract_id>/terminate", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(TerminateIn)
@blp.response(200, ContractOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="already completed or terminated")
def terminate_contract(data: dict[str, Any], contract_id: int) -> Any:
    """End a draft or active contract early, with a reason."""
    contract = service.terminate_contract(db.session, contract_id, reason=data["reason"])
    db.session.commit()
    return contract_json(contract)


@blp.route("/contracts/<int:contract_id>/deliveries", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(DeliveryIn)
@blp.response(201, DeliveryOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(
    409,
    response="CONFLICT",
    description="`conflict`: contract not active or day outside its dates; "
    "`commitment`: past the committed weight (refused whole, `remaining_g` says what fits)",
)
@blp.alt_response(422, response="UNPROCESSABLE_ENTITY", description="`no-market-price`")
def record_delivery(data: dict[str, Any], contract_id: int) -> Any:
    """Record a delivery, priced at the market price in force that day plus the premium:
    round_half_up(market_fen_per_kg × (10000 + premium_bp) × weight_g / 10 000 000)."""
    delivery = service.record_delivery(
        db.session, contract_id, **data, recorded_by=current_user().id
    )
    db.session.commit()
    return delivery_json(delivery)


@blp.route("/contracts/<int:contract_id>/adjustments", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(AdjustmentIn)
@blp.response(201, AdjustmentOut)
@blp.alt_response(404, response="NOT_FOUND")
@blp.alt_response(409, response="CONFLICT", description="a draft contract")
def record_adjustment(data: dict[str, Any], contract_id: int) -> Any:
    """Record a signed correction in fen, with a reason (deliveries are never edited).
    ``adjusted_on`` (default today) decides which payout run includes it."""
    adjustment = service.record_adjustment(
        db.session,
        contract_id,
        amount_fen=data["amount_fen"],
        reason=data["reason"],
        adjusted_on=data.get("adjusted_on") or _today(),
        delivery_id=data.get("delivery_id"),
        created_by=current_user().id,
    )
    db.session.commit()
    return adjustment_json(adjustment)


# ---------------------------------------------------------------------------- payouts


@blp.route("/payouts/run", methods=["POST"])
@requires(Role.ADMIN)
@blp.arguments(PayoutRunIn)
@blp.response(200, PayoutRunOut)
@blp.alt_response(409, response="CONFLICT", description="a concurrent run got there first")
@blp.alt_response(503, response="SERVICE_UNAVAILABLE", description="no payout provider")
def run_payouts(data: dict[str, Any]) -> Any:
    """Pay every farmer what is owed through a date: one payout per farmer, each delivery
    and adjustment in at most one payout; earlier pending or failed payouts are retried."""
    try:
        payout_provider(current_app.config)
    except RuntimeError as error:  # production without a Stripe key: nothing may be "paid"
        raise PayoutProviderUnavailable(str(error)) from None
    try:
        run = payouts.run_payouts(
            db.session, through=data["through"], now=utcnow(), sending_lease=sending_lease()
        )
        ids = [p.id for p in run.payouts]
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(_l("Another payout run included these items first; run again.")) from None
    # Sent only now that the run has committed: a task must find the payout it is given.
    for payout_id in run.to_send:
        send_payout.delay(payout_id)
    db.session.expire_all()
    found = {p.id: p for p in db.session.scalars(select(Payout).where(Payout.id.in_(ids)))}
    lines = payouts.payout_lines(db.session, ids)
    return {
        "payouts": [
            {
                "id": pid,
                "farmer_id": found[pid].farmer_id,
                "amount_fen": found[pid].amount_fen,
                "state": found[pid].state,
                "reason": found[pid].reason,
                "deliveries": [d.id for d in lines[pid]["deliveries"]],
                "adjustments": [a.id for a in lines[pid]["adjustments"]],
            }
            for pid in ids
        ]
    }


# ---------------------------------------------------------------------------- farmer views


@blp.route("/farmers/me/contracts", methods=["GET"])
@requires(Role.FARMER)
@blp.arguments(ListQuery, location="query")
@blp.response(200, ContractPage)
def my_contracts(query: dict[str, Any]) -> Any:
    """The signed-in farmer's contracts, newest first."""
    stmt = service.farmer_contracts_query(current_user().id)
    page = paginate(db.session, stmt, Contract.id, descending=True, **query)
    return {**page, "items": [contract_json(c) for c in page["items"]]}


@blp.route("/farmers/me/deliveries", methods=["GET"])
@requires(Role.FARMER)
@blp.arguments(ListQuery, location="query")
@blp.response(200, DeliveryPage)
def my_deliveries(query: dict[str, Any]) -> Any:
    """The signed-in farmer's deliveries, newest first, each with the market price, its
    date and source, the premium and the amount — and the payout it is in, if any."""
    stmt = service.farmer_deliveries_query(current_user().id)
    page = paginate(db.session, stmt, Delivery.id, descending=True, **query)
    in_payout = payouts.delivery_payouts(db.session, [d.id for d in page["items"]])
    return {
        **page,
        "items": [delivery_json(d, in_payout.get(d.id)) for d in page["items"]],
    }


@blp.route("/farmers/me/payouts", methods=["GET"])
@requires(Role.FARMER)
@blp.arguments(ListQuery, location="query")
@blp.response(200, FarmerPayoutsOut)
def my_payouts(query: dict[str, Any]) -> Any:
    """The signed-in farmer's payouts, newest first, with what each pays, and totals:
    delivered + adjustments = paid + pending."""
    farmer_id = current_user().id
    page = paginate(
        db.session, payouts.farmer_payouts_query(farmer_id), Payout.id, descending=True, **query
    )
    lines = payouts.payout_lines(db.session, [p.id for p in page["items"]])
    return {
        "items": [
            {
                "id": p.id,
                "amount_fen": p.amount_fen,
                "state": p.state,
                "reason": p.reason,
                "through": p.through,
                "created_at": p.created_at,
                "paid_at": p.paid_at,
                "deliveries": [delivery_json(d, p.id) for d in lines[p.id]["deliveries"]],
                "adjustments": [adjustment_json(a) for a in lines[p.id]["adjustments"]],
            }
            for p in page["items"]
        ],
        "next_cursor": page["next_cursor"],
        "totals": payouts.farmer_totals(db.session, farmer_id),
    }
