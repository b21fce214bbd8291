"""Contract rules: farmers, contracts and their states, deliveries priced exactly, adjustments.

Market prices live in ``contracts.prices``, payout runs in ``contracts.payouts.service``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from flask_babel import gettext
from sqlalchemy import and_, select, update

from contracts.errors import CommitmentExceeded, NoMarketPrice
from contracts.models import (
    STANDARD_GRADE,
    Adjustment,
    Contract,
    ContractState,
    Delivery,
    FarmerProfile,
    MarketPrice,
)
from contracts.prices import price_in_force
from contracts.pricing import delivery_amount_fen
from shop.accounts.models import Principal, Role, User
from shop.accounts.service import get_user
from shop.catalog import lots
from shop.catalog.models import Product
from shop.db import DbSession, utcnow
from shop.errors import Conflict, NotFound, ValidationFailed
from shop.i18n import N_, _l

# ---------------------------------------------------------------------------- farmers


def get_farmer(session: DbSession, farmer_id: int) -> User:
    """The user ``farmer_id`` if they hold ``farmer``. Raises NotFound."""
    user = get_user(session, farmer_id)
    if user is None or not user.has_role(Role.FARMER):
        raise NotFound(_l("No farmer %(farmer_id)s.", farmer_id=farmer_id))
    return user


def farmer_profile(session: DbSession, farmer_id: int) -> FarmerProfile:
    """The farmer's profile, created empty the first time. Raises NotFound."""
    get_farmer(session, farmer_id)
    profile = session.get(FarmerProfile, farmer_id)
    if profile is None:
        profile = FarmerProfile(user_id=farmer_id)
        session.add(profile)
        session.flush()  # so the defaults (created_at) are there for the response
    return profile


def update_farmer_profile(
    session: DbSession, farmer_id: int, changes: dict[str, Any]
) -> FarmerProfile:
    """Set a farmer's village and phone. Raises NotFound."""
    profile = farmer_profile(session, farmer_id)
    for name in ("village", "phone"):
        if name in changes:
            setattr(profile, name, changes[name])
    return profile


def set_payout_account(session: DbSession, farmer_id: int, stripe_account_id: str) -> FarmerProfile:
    """Set the Stripe Connect account payouts go to. Raises NotFound.

    Payouts waiting for an account are sent by the next payout run.
    """
    profile = farmer_profile(session, farmer_id)
    profile.stripe_account_id = stripe_account_id
    return profile


# ---------------------------------------------------------------------------- contracts


def create_contract(
    session: DbSession,
    *,
    farmer_id: int,
    product_id: int,
    grade: str = STANDARD_GRADE,
    premium_bp: int,
    committed_kg: int,
    starts_on: date,
    ends_on: date,
    created_by: int | None,
) -> Contract:
    """A draft contract (premium bounds are checked by the schema and a CHECK constraint).

    Raises ValidationFailed (not a farmer, no such product, dates out of order).
    """
    errors: dict[str, list[str]] = {}
    farmer = get_user(session, farmer_id)
    if farmer is None or not farmer.has_role(Role.FARMER):
        errors["farmer_id"] = [f"User {farmer_id} is not a farmer."]
    if session.get(Product, product_id) is None:
        errors["product_id"] = [f"No product {product_id}."]
    if starts_on > ends_on:
        errors["ends_on"] = ["The contract must end on or after the day it starts."]
    if errors:
        raise ValidationFailed(_l("The contract cannot be created; see `errors`."), errors)
    contract = Contract(
        farmer_id=farmer_id,
        product_id=product_id,
        grade=grade,
        premium_bp=premium_bp,
        committed_kg=committed_kg,
        starts_on=starts_on,
        ends_on=ends_on,
        state=ContractState.DRAFT.value,
        delivered_g=0,
        created_by=created_by,
    )
    session.add(contract)
    session.flush()  # the caller needs the id
    return contract


def get_contract(session: DbSession, contract_id: int) -> Contract:
    """The contract. Raises NotFound."""
    contract = session.get(Contract, contract_id)
    if contract is None:
        raise NotFound(_l("No contract %(contract_id)s.", contract_id=contract_id))
    return contract


def contract_for(session: DbSession, contract_id: int, user: Principal) -> Contract:
    """The contract as ``user`` may see it: admins any, a farmer only their own.

    Raises NotFound (also for another farmer's contract: its existence does not leak).
    """
    contract = get_contract(session, contract_id)
    if user.has_role(Role.ADMIN) or contract.farmer_id == user.id:
        return contract
    raise NotFound(_l("No contract %(contract_id)s.", contract_id=contract_id))


def accept_contract(session: DbSession, contract_id: int, farmer: Principal) -> Contract:
    """The contract's farmer accepts a draft: it becomes active. Raises NotFound, Conflict."""
    contract = get_contract(session, contract_id)
    if contract.farmer_id != farmer.id:
        raise NotFound(_l("No contract %(contract_id)s.", contract_id=contract_id))
    accepted = session.execute(
        update(Contract)
        .where(Contract.id == contract_id, Contract.state == ContractState.DRAFT.value)
        .values(state=ContractState.ACTIVE.value, accepted_at=utcnow())
        .returning(Contract.id)
    ).scalar()
    if accepted is None:
        session.refresh(contract)
        raise Conflict(
            _l(
                "Only a draft contract can be accepted; this one is %(state)s.",
                state=contract.state,
            )
        )
    session.refresh(contract)
    return contract


def terminate_contract(session: DbSession, contract_id: int, *, reason: str) -> Contract:
    """End a draft or active contract early, with a reason. Raises NotFound, Conflict."""
    contract = get_contract(session, contract_id)
    ended = session.execute(
        update(Contract)
        .where(
            Contract.id == contract_id,
            Contract.state.in_([ContractState.DRAFT.value, ContractState.ACTIVE.value]),
        )
        .values(
            state=ContractState.TERMINATED.value,
            termination_reason=reason,
            terminated_at=utcnow(),
        )
        .returning(Contract.id)
    ).scalar()
    if ended is None:
        session.refresh(contract)
        raise Conflict(_l("A %(state)s contract cannot be terminated.", state=contract.state))
    session.refresh(contract)
    return contract


# ---------------------------------------------------------------------------- deliveries


@dataclass(frozen=True)
class DeliveryQuote:
    """What a delivery would be paid, before it is recorded (the weighing station shows it)."""

    contract: Contract
    grade: str
    weight_g: int
    price: MarketPrice
    amount_fen: int


def quote_delivery(
    session: DbSession, contract_id: int, *, delivered_on: date, weight_g: int, grade: str | None
) -> DeliveryQuote:
    """The price a delivery would be recorded at, writing nothing. Raises what
    ``record_delivery`` raises, except a race on the committed weight (seen only there):
    NotFound, Conflict, NoMarketPrice, CommitmentExceeded."""
    contract = get_contract(session, contract_id)
    if contract.state != ContractState.ACTIVE.value:
        raise Conflict(
            _l("Deliveries need an active contract; this one is %(state)s.", state=contract.state)
        )
    if not contract.starts_on <= delivered_on <= contract.ends_on:
        raise Conflict(
            _l(
                "%(delivered_on)s is outside the contract (%(starts_on)s to %(ends_on)s).",
                delivered_on=delivered_on.isoformat(),
                starts_on=contract.starts_on.isoformat(),
                ends_on=contract.ends_on.isoformat(),
            )
        )
    grade = grade or contract.grade
    price = price_in_force(session, product_id=contract.product_id, grade=grade, on=delivered_on)
    if price is None:
        raise NoMarketPrice(
            _l(
                "No market price for product %(product_id)s grade %(grade)s effective on or "
                "before %(delivered_on)s; record one first.",
                product_id=contract.product_id,
                grade=grade,
                delivered_on=delivered_on.isoformat(),
            )
        )
    remaining = contract.committed_kg * 1000 - contract.delivered_g
    if weight_g > remaining:
        raise CommitmentExceeded(
            _l(
                "%(weight_g)s g would pass the committed %(committed_kg)s kg; %(remaining)s g "
                "remain under this contract.",
                weight_g=weight_g,
                committed_kg=contract.committed_kg,
                remaining=remaining,
            ),
            remaining_g=remaining,
        )
    amount = delivery_amount_fen(
        market_fen_per_kg=price.price_fen_per_kg,
        premium_bp=contract.premium_bp,
        weight_g=weight_g,
    )
    return DeliveryQuote(contract, grade, weight_g, price, amount)


def record_delivery(
    session: DbSession,
    contract_id: int,
    *,
    delivered_on: date,
    weight_g: int,
    grade: str | None = None,
    recorded_by: int | None,
) -> Delivery:
    """Record a delivery, priced at the market price in force that day plus the premium.

    A delivery that would take the contract past its committed weight is refused whole
    (the operator records the weight that still fits, if the farmer agrees); one that
    reaches it exactly completes the contract. The commitment is checked and taken by one
    conditional UPDATE of the contract row, so concurrent deliveries cannot jointly pass it.

    Raises NotFound, Conflict (not active, day outside the contract), NoMarketPrice,
    CommitmentExceeded.
    """
    quote = quote_delivery(
        session, contract_id, delivered_on=delivered_on, weight_g=weight_g, grade=grade
    )
    contract, grade, price, amount = quote.contract, quote.grade, quote.price, quote.amount_fen

    # The gate: one statement checks the state and the room left and takes the weight.
    # On PostgreSQL a concurrent delivery waits on the row lock and re-checks the WHERE
    # against the committed total; on SQLite writers are serialized (BEGIN IMMEDIATE).
    delivered_g = session.execute(
        update(Contract)
        .where(
            Contract.id == contract_id,
            Contract.state == ContractState.ACTIVE.value,
            Contract.delivered_g + weight_g <= Contract.committed_kg * 1000,
        )
        .values(delivered_g=Contract.delivered_g + weight_g)
        .returning(Contract.delivered_g)
    ).scalar()
    if delivered_g is None:
        session.refresh(contract)
        if contract.state != ContractState.ACTIVE.value:
            raise Conflict(
                _l(
                    "Deliveries need an active contract; this one is %(state)s.",
                    state=contract.state,
                )
            )
        remaining = contract.committed_kg * 1000 - contract.delivered_g
        raise CommitmentExceeded(
            _l(
                "%(weight_g)s g would pass the committed %(committed_kg)s kg; %(remaining)s g "
                "remain under this contract.",
                weight_g=weight_g,
                committed_kg=contract.committed_kg,
                remaining=remaining,
            ),
            remaining_g=remaining,
        )
    session.execute(
        update(Contract)
        .where(
            and_(
                Contract.id == contract_id,
                Contract.state == ContractState.ACTIVE.value,
                Contract.delivered_g == Contract.committed_kg * 1000,
            )
        )
        .values(state=ContractState.COMPLETED.value, completed_at=utcnow())
    )
    delivery = Delivery(
        contract_id=contract.id,
        farmer_id=contract.farmer_id,
        product_id=contract.product_id,
        grade=grade,
        delivered_on=delivered_on,
        weight_g=weight_g,
        market_price_id=price.id,
        market_price_fen_per_kg=price.price_fen_per_kg,
        market_price_effective_on=price.effective_on,
        market_price_source=price.source,
        premium_bp=contract.premium_bp,
        amount_fen=amount,
        recorded_by=recorded_by,
        # the produce becomes a lot: received into stock under its code, traced to buyers
        lot_id=lots.open_lot(session, contract.product_id).id,
    )
    session.add(delivery)
    session.flush()  # the caller needs the id
    session.refresh(contract)
    return delivery


def record_adjustment(
    session: DbSession,
    contract_id: int,
    *,
    amount_fen: int,
    reason: str,
    adjusted_on: date,
    delivery_id: int | None = None,
    created_by: int | None,
) -> Adjustment:
    """Record a signed correction (deliveries are never edited). Raises NotFound, Conflict,
    ValidationFailed (zero amount, a delivery of another contract)."""
    contract = get_contract(session, contract_id)
    if amount_fen == 0:
        raise ValidationFailed(
            _l("An adjustment of zero changes nothing."), {"amount_fen": [N_("≠ 0")]}
        )
    if contract.state == ContractState.DRAFT.value:
        raise Conflict(_l("A draft contract has nothing to adjust."))
    if delivery_id is not None:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None or delivery.contract_id != contract_id:
            raise ValidationFailed(
                _l("That delivery is not under this contract."),
                {
                    "delivery_id": [
                        gettext(
                            "No delivery %(delivery_id)s under contract %(contract_id)s.",
                            delivery_id=delivery_id,
                            contract_id=contract_id,
                        )
                    ]
                },
            )
    adjustment = Adjustment(
        contract_id=contract_id,
        farmer_id=contract.farmer_id,
        delivery_id=delivery_id,
        amount_fen=amount_fen,
        reason=reason,
        adjusted_on=adjusted_on,
        created_by=created_by,
    )
    session.add(adjustment)
    session.flush()  # the caller needs the id
    return adjustment


def farmer_contracts_query(farmer_id: int) -> Any:
    return select(Contract).where(Contract.farmer_id == farmer_id)


def farmer_deliveries_query(farmer_id: int) -> Any:
    return select(Delivery).where(Delivery.farmer_id == farmer_id)
