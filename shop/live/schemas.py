from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from shop.api import Fen, Int
from shop.inputs import Input, Text
from shop.live.models import LiveListing, LiveSession

MAX_UNITS = 1_000_000
MAX_FEN = 100_000_000


class SessionIn(Input):
    title = Text(required=True, validate=validate.Length(min=1, max=200))
    scheduled_at = ma.fields.AwareDateTime(required=True)

    class Meta:
        model = LiveSession


class ListingIn(Input):
    product_id = Int(required=True, validate=validate.Range(min=1, max=2**31 - 1))
    flash_price_fen = Fen(required=True, validate=validate.Range(min=0, max=MAX_FEN))
    allotted_qty = Int(required=True, validate=validate.Range(min=1, max=MAX_UNITS))
    per_buyer_limit = Int(
        load_default=None, allow_none=True, validate=validate.Range(min=1, max=MAX_UNITS)
    )

    class Meta:
        model = LiveListing


class ListingPatchIn(Input):
    """Any of the three; ``per_buyer_limit: null`` removes the limit."""

    flash_price_fen = Fen(validate=validate.Range(min=0, max=MAX_FEN))
    allotted_qty = Int(validate=validate.Range(min=1, max=MAX_UNITS))
    per_buyer_limit = Int(allow_none=True, validate=validate.Range(min=1, max=MAX_UNITS))

    class Meta:
        model = LiveListing


class ListingOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    session_id = ma.fields.Integer(required=True)
    product_id = ma.fields.Integer(required=True)
    flash_price_fen = ma.fields.Integer(required=True)
    allotted_qty = ma.fields.Integer(required=True)
    remaining = ma.fields.Integer(required=True)
    per_buyer_limit = ma.fields.Integer(required=True, allow_none=True)
    withdrawn = ma.fields.Boolean(required=True)


class CoverIn(Input):
    media_id = Int(required=True, validate=validate.Range(min=1, max=2**31 - 1))


class CoverOut(ma.Schema):
    media_id = ma.fields.Integer(required=True)
    #: rendition name (``thumb``, ``medium``) → URL
    renditions = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(), required=True)


class SessionOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    title = ma.fields.String(required=True)
    state = ma.fields.String(required=True)
    streamer_id = ma.fields.Integer(required=True)
    scheduled_at = ma.fields.AwareDateTime(required=True)
    started_at = ma.fields.AwareDateTime(required=True, allow_none=True)
    ended_at = ma.fields.AwareDateTime(required=True, allow_none=True)
    pinned_listing_id = ma.fields.Integer(required=True, allow_none=True)
    listings = ma.fields.List(ma.fields.Nested(ListingOut), required=True)
    cover = ma.fields.Nested(CoverOut, required=True, allow_none=True)


class StatsOut(ma.Schema):
    orders = ma.fields.Integer(required=True)
    paid_orders = ma.fields.Integer(required=True)
    units = ma.fields.Integer(required=True)
    gmv_fen = ma.fields.Integer(required=True)
    buyers = ma.fields.Integer(required=True)
    returning_buyers = ma.fields.Integer(required=True)


class EventsHeaders(Input):
    last_event_id = ma.fields.String(
        data_key="Last-Event-ID", load_default=None, validate=validate.Length(max=40)
    )

    class Meta:
        unknown = ma.EXCLUDE
