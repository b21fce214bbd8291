from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from shop.api import Int, ListQuery, page_schema
from shop.inputs import FullMatch, Input, Text
from shop.orders.models import Order, OrderLine, OrderState

MAX_LINES = 20
MAX_QTY = 999
ID = validate.Range(min=1, max=2**31 - 1)


class LineIn(Input):
    listing_id = Int(validate=ID)
    product_id = Int(validate=ID)
    qty = Int(required=True, validate=validate.Range(min=1, max=MAX_QTY))

    class Meta:
        model = OrderLine

    @ma.validates_schema
    def one_source(self, data: dict[str, object], **kwargs: object) -> None:
        if ("listing_id" in data) == ("product_id" in data):
            raise ma.ValidationError("Give exactly one of listing_id and product_id.", "_schema")


class ShippingIn(Input):
    name = Text(
        required=True, validate=validate.Length(min=1), metadata={"column": Order.ship_name}
    )
    phone = ma.fields.String(
        required=True,
        validate=[validate.Length(min=3), FullMatch(r"^[0-9+()\- ]+$")],
        metadata={"column": Order.ship_phone},
    )
    address = Text(
        required=True, validate=validate.Length(min=1), metadata={"column": Order.ship_address}
    )
    region = Text(
        required=True, validate=validate.Length(min=1), metadata={"column": Order.ship_region}
    )


class OrderIn(Input):
    lines = ma.fields.List(
        ma.fields.Nested(LineIn), required=True, validate=validate.Length(min=1, max=MAX_LINES)
    )
    shipping = ma.fields.Nested(ShippingIn, required=True)


class IdempotencyHeaders(Input):
    idempotency_key = ma.fields.String(
        data_key="Idempotency-Key",
        required=True,
        validate=[validate.Length(min=1), FullMatch(r"^[\x21-\x7e]+$")],
        metadata={
            "column": Order.idempotency_key,
            "description": "A fresh random value per order (e.g. a UUID); a retry reuses it.",
        },
    )

    class Meta:
        unknown = ma.EXCLUDE


class LineOut(ma.Schema):
    product_id = ma.fields.Integer(required=True)
    listing_id = ma.fields.Integer(required=True, allow_none=True)
    qty = ma.fields.Integer(required=True)
    unit_price_fen = ma.fields.Integer(required=True)


class ShippingOut(ma.Schema):
    name = ma.fields.String(required=True)
    phone = ma.fields.String(required=True)
    address = ma.fields.String(required=True)
    region = ma.fields.String(required=True)


class OrderOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    buyer_id = ma.fields.Integer(required=True)
    state = ma.fields.String(required=True)
    total_fen = ma.fields.Integer(required=True)
    lines = ma.fields.List(ma.fields.Nested(LineOut), required=True)
    shipping = ma.fields.Nested(ShippingOut, required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    expires_at = ma.fields.AwareDateTime(required=True)
    paid_at = ma.fields.AwareDateTime(required=True, allow_none=True)
    carrier = ma.fields.String(required=True, allow_none=True)
    tracking_no = ma.fields.String(required=True, allow_none=True)
    shipped_at = ma.fields.AwareDateTime(required=True, allow_none=True)
    delivered_at = ma.fields.AwareDateTime(required=True, allow_none=True)
    #: once packed: the parcel's trace page is /t/{trace_code} (GET /api/v1/trace/{code})
    trace_code = ma.fields.String(allow_none=True)


class OrderListQuery(ListQuery):
    state = ma.fields.String(validate=validate.OneOf([s.value for s in OrderState]))


class ShipIn(Input):
    carrier = Text(required=True, validate=validate.Length(min=1))
    tracking_no = Text(required=True, validate=validate.Length(min=1))

    class Meta:
        model = Order


OrderPage = page_schema(OrderOut, "OrderPage")
