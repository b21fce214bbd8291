"""Lots: which delivery the units on the shelf came from.

A farmer's delivery opens a lot under a short code (``contracts`` calls ``open_lot``).
Receiving the lot into stock (``POST /products/{id}/stock`` with ``lot_code``) adds
the units to the product's stock and counts them on the lot. Packing a parcel draws its
units from the product's lots, oldest received first (``draw_fifo``), so the parcel can
say where it came from. Stock received without a lot draws from no lot: a parcel of it
is traced to its workshop only.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime

from flask_babel import gettext
from sqlalchemy import select, update

from shop.catalog.models import StockLot
from shop.db import DbSession
from shop.errors import ValidationFailed
from shop.i18n import N_, _l

#: no 0/O, 1/I/L: codes are read off paper and typed on phones
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
LOT_CODE_LENGTH = 7  #: 31⁷ ≈ 2.7e10: a county's deliveries never come near a collision


def new_code(length: int, prefix: str = "") -> str:
    """A random code of ``length`` letters from CODE_ALPHABET."""
    return prefix + "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def normalize_code(code: str) -> str:
    """Codes are typed by people: case and surrounding spaces do not matter."""
    return code.strip().upper()


def open_lot(session: DbSession, product_id: int) -> StockLot:
    """A new, empty lot of the product under a fresh code."""
    lot = StockLot(
        code=new_code(LOT_CODE_LENGTH, prefix="L"), product_id=product_id, received=0, remaining=0
    )
    session.add(lot)
    session.flush()  # the id, for the delivery that points at it
    return lot


def get_lot(session: DbSession, code: str) -> StockLot | None:
    return session.scalar(select(StockLot).where(StockLot.code == normalize_code(code)))


def receive(
    session: DbSession, product_id: int, code: str, *, units: int, now: datetime
) -> StockLot:
    """Count ``units`` received into the product's stock on the lot ``code`` (the caller
    adds them to the stock in the same transaction). Raises ValidationFailed (no such
    lot, a lot of another product, not a positive number of units)."""
    lot = get_lot(session, code)
    if lot is None:
        raise ValidationFailed(
            _l("No lot %(code)s.", code=code), {"lot_code": [N_("No lot has this code.")]}
        )
    if lot.product_id != product_id:
        raise ValidationFailed(
            _l(
                "Lot %(code)s is of product %(product_id)s, not %(product_id2)s.",
                code=lot.code,
                product_id=lot.product_id,
                product_id2=product_id,
            ),
            {
                "lot_code": [
                    gettext("This lot is of product %(product_id)s.", product_id=lot.product_id)
                ]
            },
        )
    if units <= 0:
        raise ValidationFailed(
            _l("A lot is received with a positive delta."), {"delta": [N_("Must be positive.")]}
        )
    session.execute(
        update(StockLot)
        .where(StockLot.id == lot.id)
        .values(
            received=StockLot.received + units,
            remaining=StockLot.remaining + units,
            # the first receipt fixes the lot's place in line
            received_at=lot.received_at or now,
        )
    )
    session.refresh(lot)
    return lot


def draw_fifo(session: DbSession, wanted: Mapping[int, int]) -> list[tuple[StockLot, int]]:
    """Take ``wanted[product_id]`` units of each product from its lots, oldest received
    first; returns (lot, units) drawn. What the lots do not cover is drawn from no lot.

    The lots are locked (in one order: product, receipt, id) so two parcels packed at
    once never draw the same unit; one SELECT when no lot has units left.
    """
    if not wanted:
        return []
    lots = session.scalars(
        select(StockLot)
        .where(
            StockLot.product_id.in_(list(wanted)),
            StockLot.remaining > 0,
            StockLot.received_at.is_not(None),
        )
        .order_by(StockLot.product_id, StockLot.received_at, StockLot.id)
        .with_for_update()
    ).all()
    left = dict(wanted)
    drawn: list[tuple[StockLot, int]] = []
    for lot in lots:
        take = min(left[lot.product_id], lot.remaining)
        if take <= 0:
            continue
        left[lot.product_id] -= take
        lot.remaining -= take  # flushed as one UPDATE per lot drawn from
        drawn.append((lot, take))
    session.flush()
    return drawn


def lots_by_id(session: DbSession, lot_ids: list[int]) -> dict[int, StockLot]:
    if not lot_ids:
        return {}
    return {
        lot.id: lot for lot in session.scalars(select(StockLot).where(StockLot.id.in_(lot_ids)))
    }
