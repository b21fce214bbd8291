"""Delivery pricing: DESIGN.md's formula in exact integers, and which market price applies."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.pricing import delivery_amount_fen


def decimal_amount(market_fen_per_kg: int, premium_bp: int, weight_g: int) -> int:
    """An independent computation: exact decimals, rounded half up."""
    with localcontext() as context:
        context.prec = 60
        exact = (
            Decimal(market_fen_per_kg)
            * (Decimal(1) + Decimal(premium_bp) / Decimal(10_000))
            * (Decimal(weight_g) / Decimal(1000))
        )
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@pytest.mark.parametrize(
    ("price", "premium", "weight", "expected", "exact"),
    [
        (125, 1000, 40, 6, "5.5"),  # exactly half a fen: up
        (125, 1200, 25, 4, "3.5"),
        (1993, 1000, 13, 28, "28.4999"),  # just under half: down
        (3877, 1000, 17, 72, "72.4999"),
        (2089, 1500, 1234, 2964, "2964.4999"),
        (1680, 1200, 1000, 1882, "1881.6"),  # ¥16.80/kg + 12 %, one kilogram
        (1680, 1200, 123_400, 232_189, "232189.44"),
        (1000, 1000, 1000, 1100, "1100"),  # exact, no rounding
        (1, 1000, 1, 0, "0.0011"),
    ],
)
def test_half_up_rounding_cases(price, premium, weight, expected, exact):
    numerator = price * (10_000 + premium) * weight
    assert Decimal(numerator) / Decimal(10_000_000) == Decimal(exact)
    assert delivery_amount_fen(market_fen_per_kg=price, premium_bp=premium, weight_g=weight) == (
        expected
    )


@settings(max_examples=500, deadline=None)
@given(
    price=st.integers(min_value=1, max_value=1_000_000),
    premium=st.integers(min_value=1000, max_value=1500),
    weight=st.integers(min_value=1, max_value=100_000_000),
)
def test_the_integer_formula_agrees_with_exact_decimals(price, premium, weight):
    computed = delivery_amount_fen(market_fen_per_kg=price, premium_bp=premium, weight_g=weight)
    assert type(computed) is int
    assert computed == decimal_amount(price, premium, weight)


@pytest.mark.parametrize("bad", [12.5, 12.0, -1, "12", True])
def test_the_formula_refuses_anything_but_non_negative_ints(bad):
    with pytest.raises(ValueError):
        delivery_amount_fen(market_fen_per_kg=bad, premium_bp=1200, weight_g=1000)


# --------------------------------------------------------------------- which price applies


def _deliver(client, admin, contract, on, weight_g=10_000, **extra):
    return client.post(
        f"/api/v1/contracts/{contract.id}/deliveries",
        json={"delivered_on": on.isoformat(), "weight_g": weight_g, **extra},
        headers=admin,
    )


def test_a_price_effective_on_the_delivery_day_itself_applies(
    client, auth, make_user, shiitake, make_price, make_contract
):
    _, admin = auth("admin")
    contract = make_contract(make_user("farmer"), shiitake, premium_bp=1200)
    make_price(shiitake, 1680, date(2025, 9, 1))
    make_price(shiitake, 1745, date(2025, 9, 15), source="庆元香菇市场 9/15")

    response = _deliver(client, admin, contract, date(2025, 9, 15), weight_g=10_000)

    assert response.status_code == 201
    body = response.get_json()
    assert body["market_price_fen_per_kg"] == 1745
    assert body["market_price_effective_on"] == "2025-09-15"
    assert body["market_price_source"] == "庆元香菇市场 9/15"
    assert body["premium_bp"] == 1200
    assert body["amount_fen"] == 19_544  # 1745 × 1.12 × 10 kg = 19544.0


def test_the_latest_earlier_price_applies(
    client, auth, make_user, shiitake, make_price, make_contract
):
    _, admin = auth("admin")
    contract = make_contract(make_user("farmer"), shiitake, premium_bp=1000)
    make_price(shiitake, 1500, date(2025, 8, 1))
    make_price(shiitake, 1680, date(2025, 9, 1))
    make_price(shiitake, 1745, date(2025, 9, 22))  # after the delivery: not used
    make_price(shiitake, 9999, date(2025, 9, 10), grade="premium")  # another grade

    body = _deliver(client, admin, contract, date(2025, 9, 21), weight_g=2_500).get_json()

    assert body["market_price_fen_per_kg"] == 1680
    assert body["market_price_effective_on"] == "2025-09-01"
    assert body["amount_fen"] == 4620  # 1680 × 1.10 × 2.5 kg


def test_a_delivery_of_another_grade_uses_that_grades_price(
    client, auth, make_user, shiitake, make_price, make_contract
):
    _, admin = auth("admin")
    contract = make_contract(make_user("farmer"), shiitake, premium_bp=1500)
    make_price(shiitake, 1680, date(2025, 9, 1))
    make_price(shiitake, 2390, date(2025, 9, 1), grade="premium")

    body = _deliver(client, admin, contract, date(2025, 9, 2), 1000, grade="premium").get_json()

    assert (body["grade"], body["market_price_fen_per_kg"], body["amount_fen"]) == (
        "premium",
        2390,
        2749,  # 2390 × 1.15 = 2748.5 → half up
    )


def test_no_market_price_at_all_is_a_422_and_nothing_is_recorded(
    client, auth, make_user, shiitake, make_price, make_contract
):
    _, admin = auth("admin")
    contract = make_contract(make_user("farmer"), shiitake)
    make_price(shiitake, 1680, date(2025, 9, 20))  # only after the delivery day

    response = _deliver(client, admin, contract, date(2025, 9, 19))

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["type"] == "no-market-price"
    contract_now = client.get(f"/api/v1/contracts/{contract.id}", headers=admin).get_json()
    assert contract_now["delivered_g"] == 0
