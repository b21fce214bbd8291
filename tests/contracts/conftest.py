"""Fixtures for the contracts tests: a product with market prices, farmers, contracts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from contracts import prices, service
from contracts.models import Contract
from shop.db import db

SEASON_START = date(2025, 9, 1)
SEASON_END = date(2025, 12, 31)


@pytest.fixture
def shiitake(make_product: Callable[..., Any]) -> Any:
    return make_product(name="庆元鲜香菇 fresh shiitake", unit_label="1 kg", unit_weight_g=1000)


@pytest.fixture
def make_price() -> Callable[..., Any]:
    """``make_price(product, 1680, date(2025, 9, 1))`` → a committed market price."""

    def make(
        product: Any,
        price_fen_per_kg: int,
        effective_on: date,
        grade: str = "standard",
        source: str = "庆元香菇市场 weekly average",
    ) -> Any:
        price = prices.add_market_price(
            db.session,
            product_id=product.id,
            grade=grade,
            price_fen_per_kg=price_fen_per_kg,
            effective_on=effective_on,
            source=source,
            created_by=None,
        )
        db.session.commit()
        return price

    return make


@pytest.fixture
def make_contract() -> Callable[..., Contract]:
    """``make_contract(farmer, product, premium_bp=1200, committed_kg=100)`` → an active
    contract over ``SEASON_START`` … ``SEASON_END`` (``active=False`` leaves it a draft)."""

    def make(
        farmer: Any,
        product: Any,
        *,
        premium_bp: int = 1200,
        committed_kg: int = 100,
        grade: str = "standard",
        starts_on: date = SEASON_START,
        ends_on: date = SEASON_END,
        active: bool = True,
    ) -> Contract:
        contract = service.create_contract(
            db.session,
            farmer_id=farmer.id,
            product_id=product.id,
            grade=grade,
            premium_bp=premium_bp,
            committed_kg=committed_kg,
            starts_on=starts_on,
            ends_on=ends_on,
            created_by=None,
        )
        if active:
            service.accept_contract(db.session, contract.id, farmer)
        db.session.commit()
        return contract

    return make


@pytest.fixture
def deliver() -> Callable[..., Any]:
    """``deliver(contract, date(2025, 9, 15), 12_340)`` → a committed delivery."""

    def make(
        contract: Contract, delivered_on: date, weight_g: int, grade: str | None = None
    ) -> Any:
        delivery = service.record_delivery(
            db.session,
            contract.id,
            delivered_on=delivered_on,
            weight_g=weight_g,
            grade=grade,
            recorded_by=None,
        )
        db.session.commit()
        return delivery

    return make
