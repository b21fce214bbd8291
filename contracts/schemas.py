from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from contracts.models import (
    MAX_PREMIUM_BP,
    MIN_PREMIUM_BP,
    STANDARD_GRADE,
    Adjustment,
    Contract,
    Delivery,
    FarmerProfile,
    MarketPrice,
    Payout,
)
from contracts.prices import GRADE_PATTERN, MAX_PRICE_FEN_PER_KG
from shop.api import Fen, Int, ListQuery, page_schema
from shop.i18n import N_
from shop.inputs import FullMatch, Input, Text

MAX_COMMITTED_KG = 1_000_000  #: 1,000 t: keeps grams within a 32-bit column
MAX_DELIVERY_G = 100_000_000  #: 100 t in one delivery
MAX_ADJUSTMENT_FEN = 10_000_000_000  #: ¥100 million either way


#: Not blank, and no control characters (PostgreSQL text refuses NUL; none belong in a
#: name or a reason). One pattern: the OpenAPI document can carry only one.
_printable_text = FullMatch(
    r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$",
    error=N_("Must not be blank or contain control characters."),
)


def _text(max_length: int, **kwargs: object) -> ma.fields.String:
    """Free text, trimmed (``Text``), then not blank and printable."""
    return Text(
        validate=[validate.Length(min=1, max=max_length), _printable_text],
        **kwargs,  # type: ignore[arg-type]
    )


def _grade(**kwargs: object) -> ma.fields.String:
    return ma.fields.String(
        validate=[
            validate.Length(min=1, max=40),
            FullMatch(GRADE_PATTERN, error=N_("1–40 printable characters, no outer spaces.")),
        ],
        **kwargs,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------- farmers


class FarmerProfileIn(Input):
    village = _text(100, allow_none=True)
    phone = ma.fields.String(
        allow_none=True,
        validate=[validate.Length(min=3, max=40), FullMatch(r"^\+?[0-9][0-9 -]*[0-9]$")],
    )

    class Meta:
        model = FarmerProfile


class PayoutAccountIn(Input):
    stripe_account_id = ma.fields.String(
        required=True,
        validate=[
            validate.Length(max=255),
            FullMatch(
                r"^acct_[A-Za-z0-9]{1,250}$",
                error=N_("A Stripe Connect account id: acct_ followed by letters and digits."),
            ),
        ],
    )

    class Meta:
        model = FarmerProfile


class FarmerOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    display_name = ma.fields.String(required=True)
    village = ma.fields.String(allow_none=True, required=True)
    phone = ma.fields.String(allow_none=True, required=True)
    stripe_account_id = ma.fields.String(allow_none=True, required=True)
    has_payout_account = ma.fields.Boolean(required=True)


# ---------------------------------------------------------------------------- market prices


class MarketPriceIn(Input):
    product_id = Int(required=True, validate=validate.Range(min=1, max=2**31 - 1))
    grade = _grade(load_default=STANDARD_GRADE)
    price_fen_per_kg = Fen(required=True, validate=validate.Range(min=1, max=MAX_PRICE_FEN_PER_KG))
    effective_on = ma.fields.Date(required=True)
    source = _text(200, required=True)

    class Meta:
        model = MarketPrice


class MarketPriceOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    product_id = ma.fields.Integer(required=True)
    product_sku = ma.fields.String(required=True)
    grade = ma.fields.String(required=True)
    price_fen_per_kg = ma.fields.Integer(required=True)
    effective_on = ma.fields.Date(required=True)
    source = ma.fields.String(required=True)
    created_at = ma.fields.AwareDateTime(required=True)


MarketPricePage = page_schema(MarketPriceOut, "MarketPricePage")


class MarketPriceQuery(ListQuery):
    product_id = ma.fields.Integer(validate=validate.Range(min=1, max=2**31 - 1))
    grade = _grade()

    class Meta:
        model = MarketPrice


class ImportLineError(ma.Schema):
    line = ma.fields.Integer(required=True)
    message = ma.fields.String(required=True)


class ImportOut(ma.Schema):
    imported = ma.fields.Integer(required=True)
    errors = ma.fields.List(ma.fields.Nested(ImportLineError), required=True)


class ContractIn(Input):
    farmer_id = Int(required=True, validate=validate.Range(min=1, max=2**31 - 1))
    product_id = Int(required=True, validate=validate.Range(min=1, max=2**31 - 1))
    grade = _grade(load_default=STANDARD_GRADE)
    premium_bp = Int(
        required=True,
        validate=validate.Range(
            min=MIN_PREMIUM_BP,
            max=MAX_PREMIUM_BP,
            error=N_("The premium must be between 1000 and 1500 basis points (10–15 %)."),
        ),
    )
    committed_kg = Int(required=True, validate=validate.Range(min=1, max=MAX_COMMITTED_KG))
    starts_on = ma.fields.Date(required=True)
    ends_on = ma.fields.Date(required=True)

    class Meta:
        model = Contract


class TerminateIn(Input):
    reason = _text(500, required=True, metadata={"column": Contract.termination_reason})


class ContractOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    farmer_id = ma.fields.Integer(required=True)
    product_id = ma.fields.Integer(required=True)
    grade = ma.fields.String(required=True)
    premium_bp = ma.fields.Integer(required=True)
    committed_kg = ma.fields.Integer(required=True)
    delivered_g = ma.fields.Integer(required=True)
    remaining_g = ma.fields.Integer(required=True)
    starts_on = ma.fields.Date(required=True)
    ends_on = ma.fields.Date(required=True)
    state = ma.fields.String(required=True)
    termination_reason = ma.fields.String(allow_none=True, required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    accepted_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    completed_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    terminated_at = ma.fields.AwareDateTime(allow_none=True, required=True)


ContractPage = page_schema(ContractOut, "ContractPage")


class DeliveryIn(Input):
    delivered_on = ma.fields.Date(required=True)
    weight_g = Int(required=True, validate=validate.Range(min=1, max=MAX_DELIVERY_G))
    grade = _grade()

    class Meta:
        model = Delivery


class DeliveryOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    contract_id = ma.fields.Integer(required=True)
    product_id = ma.fields.Integer(required=True)
    grade = ma.fields.String(required=True)
    delivered_on = ma.fields.Date(required=True)
    weight_g = ma.fields.Integer(required=True)
    market_price_fen_per_kg = ma.fields.Integer(required=True)
    market_price_effective_on = ma.fields.Date(required=True)
    market_price_source = ma.fields.String(required=True)
    premium_bp = ma.fields.Integer(required=True)
    amount_fen = ma.fields.Integer(required=True)
    #: the lot the produce became: receive it into stock under this code
    lot_code = ma.fields.String(required=True, allow_none=True)
    payout_id = ma.fields.Integer(allow_none=True)
    created_at = ma.fields.AwareDateTime(required=True)


DeliveryPage = page_schema(DeliveryOut, "DeliveryPage")


class AdjustmentIn(Input):
    amount_fen = Fen(
        required=True,
        validate=[
            validate.Range(min=-MAX_ADJUSTMENT_FEN, max=MAX_ADJUSTMENT_FEN),
            validate.NoneOf([0], error=N_("An adjustment of zero changes nothing.")),
        ],
    )
    reason = _text(500, required=True)
    delivery_id = Int(validate=validate.Range(min=1, max=2**31 - 1))
    adjusted_on = ma.fields.Date()

    class Meta:
        model = Adjustment


class AdjustmentOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    contract_id = ma.fields.Integer(required=True)
    delivery_id = ma.fields.Integer(allow_none=True, required=True)
    amount_fen = ma.fields.Integer(required=True)
    reason = ma.fields.String(required=True)
    adjusted_on = ma.fields.Date(required=True)
    created_at = ma.fields.AwareDateTime(required=True)


# ---------------------------------------------------------------------------- payouts


class PayoutRunIn(Input):
    through = ma.fields.Date(required=True)

    class Meta:
        model = Payout


class PayoutRunItem(ma.Schema):
    id = ma.fields.Integer(required=True)
    farmer_id = ma.fields.Integer(required=True)
    amount_fen = ma.fields.Integer(required=True)
    state = ma.fields.String(required=True)
    reason = ma.fields.String(allow_none=True, required=True)
    deliveries = ma.fields.List(ma.fields.Integer(), required=True)
    adjustments = ma.fields.List(ma.fields.Integer(), required=True)


class PayoutRunOut(ma.Schema):
    payouts = ma.fields.List(ma.fields.Nested(PayoutRunItem), required=True)


class StatementPayout(ma.Schema):
    id = ma.fields.Integer(required=True)
    amount_fen = ma.fields.Integer(required=True)
    state = ma.fields.String(required=True)
    reason = ma.fields.String(allow_none=True, required=True)
    through = ma.fields.Date(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    paid_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    deliveries = ma.fields.List(ma.fields.Nested(DeliveryOut), required=True)
    adjustments = ma.fields.List(ma.fields.Nested(AdjustmentOut), required=True)


class PayoutTotals(ma.Schema):
    delivered_fen = ma.fields.Integer(required=True)
    adjustments_fen = ma.fields.Integer(required=True)
    paid_fen = ma.fields.Integer(required=True)
    pending_fen = ma.fields.Integer(required=True)


class FarmerPayoutsOut(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(StatementPayout), required=True)
    next_cursor = ma.fields.String(allow_none=True, required=True)
    totals = ma.fields.Nested(PayoutTotals, required=True)
