"""Traceability: from a buyer's parcel back to the farmer's delivery.

A delivery becomes a lot (``shop.catalog.lots``); the lot is received into a product's
stock; packing a parcel draws its units from the lots, first in, first out
(``fulfillment.service.record_lots``). The parcel's trace code opens a public page
that shows where it came from — the product, the farmer's display name and village,
the delivery's date and grade, that it was bought under a guaranteed-price contract
(never the price), the workshop that packed it and the day — and nothing about any
person beyond that: no villager, no phone, no address, no buyer.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from contracts.models import Delivery, FarmerProfile
from fulfillment import service as fulfillment
from fulfillment.models import Workshop
from shop.accounts.models import User
from shop.catalog.models import Product, StockLot
from shop.db import DbSession
from shop.errors import NotFound
from shop.i18n import _l


def _origin(session: DbSession, lot_ids: list[int]) -> dict[int, dict[str, Any]]:
    """For each lot that came from a delivery: the farmer's public name and village,
    the day and grade of the delivery."""
    if not lot_ids:
        return {}
    rows = session.execute(
        select(
            Delivery.lot_id,
            Delivery.delivered_on,
            Delivery.grade,
            User.display_name,
            FarmerProfile.village,
        )
        .join(User, User.id == Delivery.farmer_id)
        .outerjoin(FarmerProfile, FarmerProfile.user_id == Delivery.farmer_id)
        .where(Delivery.lot_id.in_(lot_ids))
    ).all()
    return {
        lot_id: {
            "farmer": {"display_name": name, "village": village},
            "delivered_on": delivered_on,
            "grade": grade,
            "guaranteed_price": True,  # every delivery is under a contract (premium_bp ≥ 1000)
        }
        for lot_id, delivered_on, grade, name, village in rows
    }


def trace(session: DbSession, code: str, *, tz_name: str) -> dict[str, Any]:
    """What the public may know of the packed parcel ``code``. Raises NotFound (also
    before it is packed)."""
    task = fulfillment.packed_parcel(session, code)
    if task is None or task.packed_at is None:
        raise NotFound(_l("No packed parcel %(code)s.", code=code))
    drawn = fulfillment.task_lots(session, [task.id]).get(task.id, [])
    codes = [lot["code"] for lot in drawn]
    lot_rows = session.execute(
        select(StockLot.code, StockLot.id).where(StockLot.code.in_(codes))
    ).all()
    lot_ids = {lot_code: lot_id for lot_code, lot_id in lot_rows}
    origins = _origin(session, list(lot_ids.values()))
    names: dict[int, str] = {
        product_id: name
        for product_id, name in session.execute(
            select(Product.id, Product.name).where(
                Product.id.in_([line.product_id for line in task.lines])
            )
        )
    }
    unknown = {"farmer": None, "delivered_on": None, "grade": None, "guaranteed_price": False}
    lots = [
        {
            "code": lot["code"],
            "product": names.get(lot["product_id"]),
            "units": lot["qty"],
            **origins.get(lot_ids[lot["code"]], unknown),
        }
        for lot in drawn
    ]
    workshop = session.get(Workshop, task.workshop_id) if task.workshop_id else None
    packed_on: date = task.packed_at.astimezone(ZoneInfo(tz_name)).date()
    first = lots[0] if lots else {**unknown, "product": task.lines[0].name if task.lines else None}
    return {
        "code": task.trace_code,
        "product": first["product"],
        "farmer": first["farmer"],
        "delivered_on": first["delivered_on"],
        "grade": first["grade"],
        "guaranteed_price": first["guaranteed_price"],
        "workshop": {"name": workshop.name, "village": workshop.village} if workshop else None,
        "packed_on": packed_on,
        "products": [line.name for line in task.lines],
        "lots": lots,
    }


def farmer_lots(session: DbSession, farmer_id: int) -> list[dict[str, Any]]:
    """The farmer's lots, newest delivery first, with how many units were received and
    how many parcels of it reached buyers (and from when)."""
    rows = session.execute(
        select(Delivery.id, Delivery.delivered_on, Delivery.grade, StockLot, Product.name)
        .join(StockLot, StockLot.id == Delivery.lot_id)
        .join(Product, Product.id == Delivery.product_id)
        .where(Delivery.farmer_id == farmer_id)
        .order_by(Delivery.delivered_on.desc(), Delivery.id.desc())
    ).all()
    reached = fulfillment.lots_reaching_buyers(session, [row.StockLot.id for row in rows])
    return [
        {
            "delivery_id": delivery_id,
            "delivered_on": delivered_on,
            "grade": grade,
            "product": product,
            "lot_code": lot.code,
            "received": lot.received,
            "parcels": reached.get(lot.id, {}).get("parcels", 0),
            "units_packed": reached.get(lot.id, {}).get("units", 0),
            "first_packed_at": reached.get(lot.id, {}).get("first_packed_at"),
        }
        for delivery_id, delivered_on, grade, lot, product in rows
    ]
