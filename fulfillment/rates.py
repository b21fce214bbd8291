"""What a task pays, in exact integer fen.

- A parcel's base rate is Σ qty × packing_rate_fen, fixed when the task is created.
- A batch's base rate is ``batch_rate_fen × pieces / batch_pieces``, half up; a batch
  completed with fewer pieces pays the same formula with the pieces done.
- The claimer's skill bonus is fixed when they claim it: level 1 earns the base, levels
  2 and 3 the workshop's ``level2_bonus_bp`` / ``level3_bonus_bp`` on top, so a task pays
  ``base × (10000 + bonus_bp) / 10000`` half up, kept as base + bonus (the bonus is
  ``base × bonus_bp / 10000`` half up: the base is whole fen, so the sum is the same).
"""

from __future__ import annotations


def round_half_up_div(numerator: int, denominator: int) -> int:
    """numerator / denominator to the nearest integer, halves up (both ≥ 0, d > 0)."""
    quotient, remainder = divmod(numerator, denominator)
    return quotient + (1 if 2 * remainder >= denominator else 0)


def bonus_bp(level: int, level2_bonus_bp: int, level3_bonus_bp: int) -> int:
    """The bonus, in basis points, of a worker at ``level`` in a workshop."""
    return {2: level2_bonus_bp, 3: level3_bonus_bp}.get(level, 0)


def bonus_fen(base_fen: int, bonus_bp: int) -> int:
    return round_half_up_div(base_fen * bonus_bp, 10_000)


def batch_base_fen(batch_rate_fen: int, pieces: int, batch_pieces: int) -> int:
    """The worker's pay for ``pieces`` of a batch of ``batch_pieces`` (before the bonus)."""
    return round_half_up_div(batch_rate_fen * pieces, batch_pieces)


def batch_partner_fen(batch_price_fen: int, pieces: int, batch_pieces: int) -> int:
    """What the partner owes for ``pieces`` of a batch of ``batch_pieces``."""
    return round_half_up_div(batch_price_fen * pieces, batch_pieces)
