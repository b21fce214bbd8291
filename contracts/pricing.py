"""The delivery price formula of DESIGN.md, in exact integer arithmetic.

::

    amount_fen = round_half_up(market_fen_per_kg × (10000 + premium_bp) × weight_g / 10_000_000)

``10_000_000`` is 10 000 (basis points) × 1 000 (grams per kilogram). Every input is a
non-negative integer, so one ``divmod`` gives the exact quotient and remainder, and
"half up" is: round up when twice the remainder reaches the divisor. No float ever
touches the amount.
"""

from __future__ import annotations

BP_PER_UNIT = 10_000
GRAMS_PER_KG = 1_000
DIVISOR = BP_PER_UNIT * GRAMS_PER_KG


def delivery_amount_fen(*, market_fen_per_kg: int, premium_bp: int, weight_g: int) -> int:
    """What a delivery is worth, in fen, rounded half up."""
    for name, value in (
        ("market_fen_per_kg", market_fen_per_kg),
        ("premium_bp", premium_bp),
        ("weight_g", weight_g),
    ):
        if type(value) is not int or value < 0:
            raise ValueError(f"{name} must be a non-negative int, not {value!r}")
    numerator = market_fen_per_kg * (BP_PER_UNIT + premium_bp) * weight_g
    quotient, remainder = divmod(numerator, DIVISOR)
    return quotient + (1 if 2 * remainder >= DIVISOR else 0)
