"""The public trace endpoint of a parcel (the page is ``/t/{code}``)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app

from contracts import trace
from shop.api import Blueprint
from shop.auth import public
from shop.db import db

blp = Blueprint(
    "trace", __name__, url_prefix="/api/v1", description="Where a parcel came from (public)"
)


class TraceFarmerOut(ma.Schema):
    display_name = ma.fields.String(required=True)
    village = ma.fields.String(required=True, allow_none=True)


class TraceWorkshopOut(ma.Schema):
    name = ma.fields.String(required=True)
    village = ma.fields.String(required=True)


class TraceLotOut(ma.Schema):
    code = ma.fields.String(required=True)
    product = ma.fields.String(required=True, allow_none=True)
    units = ma.fields.Integer(required=True)
    farmer = ma.fields.Nested(TraceFarmerOut, required=True, allow_none=True)
    delivered_on = ma.fields.Date(required=True, allow_none=True)
    grade = ma.fields.String(required=True, allow_none=True)
    guaranteed_price = ma.fields.Boolean(required=True)


class TraceOut(ma.Schema):
    code = ma.fields.String(required=True)
    product = ma.fields.String(required=True, allow_none=True)
    farmer = ma.fields.Nested(TraceFarmerOut, required=True, allow_none=True)
    delivered_on = ma.fields.Date(required=True, allow_none=True)
    grade = ma.fields.String(required=True, allow_none=True)
    guaranteed_price = ma.fields.Boolean(required=True)
    workshop = ma.fields.Nested(TraceWorkshopOut, required=True, allow_none=True)
    packed_on = ma.fields.Date(required=True)
    products = ma.fields.List(ma.fields.String(), required=True)
    lots = ma.fields.List(ma.fields.Nested(TraceLotOut), required=True)


@blp.route("/trace/<string(maxlength=16):code>", methods=["GET"])
@public
@blp.response(200, TraceOut)
@blp.alt_response(404, response="NOT_FOUND")
def get_trace(code: str) -> Any:
    """Where a packed parcel came from (anyone): the product, the farmer's display name
    and village, the delivery's date and grade, that it was bought under a
    guaranteed-price contract, the workshop and the day it was packed. No villager,
    phone, address or price. The first lot the parcel drew from is at the top level;
    every lot is in ``lots``."""
    return trace.trace(db.session, code, tz_name=current_app.config["SHOP_TIMEZONE"])
