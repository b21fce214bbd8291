from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from shop.api import Fen, Int, page_schema
from shop.catalog.models import Category, Product, StockLot, StockMovement
from shop.inputs import FullMatch, Input, Text

MAX_UNITS = 1_000_000
MAX_FEN = 100_000_000  # ¥1,000,000 per unit: far above anything we sell


class ProductIn(Input):
    sku = ma.fields.String(
        required=True, validate=[validate.Length(min=1, max=64), FullMatch(r"^\S+$")]
    )
    name = Text(required=True, validate=validate.Length(min=1, max=200))
    category = ma.fields.String(required=True, validate=validate.OneOf([c.value for c in Category]))
    unit_label = Text(required=True, validate=validate.Length(min=1, max=40))
    unit_weight_g = Int(required=True, validate=validate.Range(min=1, max=1_000_000))
    price_fen = Fen(required=True, validate=validate.Range(min=0, max=MAX_FEN))
    stock = Int(required=True, validate=validate.Range(min=0, max=MAX_UNITS))
    #: admins only; absent → DEFAULT_PACKING_RATE_FEN
    packing_rate_fen = Fen(validate=validate.Range(min=0, max=MAX_FEN))

    class Meta:
        model = Product


class ProductPatch(Input):
    name = Text(validate=validate.Length(min=1, max=200))
    price_fen = Fen(validate=validate.Range(min=0, max=MAX_FEN))
    packing_rate_fen = Fen(validate=validate.Range(min=0, max=MAX_FEN))

    class Meta:
        model = Product


class StockIn(Input):
    delta = Int(required=True, validate=validate.Range(min=-MAX_UNITS, max=MAX_UNITS))
    reason = Text(required=True, validate=validate.Length(min=1, max=200))
    #: receive a delivery's lot: the units are counted on it
    lot_code = Text(
        load_default=None,
        validate=validate.Length(min=1),
        metadata={"column": StockLot.code},
    )

    class Meta:
        model = StockMovement


class ImageIn(Input):
    media_id = Int(required=True, validate=validate.Range(min=1, max=2**31 - 1))


class ImageOut(ma.Schema):
    media_id = ma.fields.Integer(required=True)
    renditions = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())


class ProductOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    sku = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    category = ma.fields.String(required=True)
    unit_label = ma.fields.String(required=True)
    unit_weight_g = Int(required=True)
    price_fen = Fen(required=True)
    stock = Int(required=True)
    packing_rate_fen = Fen(required=True)
    #: the streamer who created it; null for a house product (created by an admin)
    owner_id = ma.fields.Integer(required=True, allow_none=True)
    images = ma.fields.List(ma.fields.Nested(ImageOut), required=True)


ProductPage = page_schema(ProductOut, "ProductPage")
