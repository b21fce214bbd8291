"""Response schemas of the payment endpoints (their requests have no JSON body we parse)."""

from __future__ import annotations

import marshmallow as ma


class PaymentOut(ma.Schema):
    provider = ma.fields.String(required=True, metadata={"description": "stripe or sandbox"})
    payment_id = ma.fields.String(required=True, metadata={"description": "e.g. pi_…"})
    client_secret = ma.fields.String(
        required=True, metadata={"description": "for Stripe.js / the mobile SDK to confirm"}
    )
    amount_fen = ma.fields.Integer(required=True)
    currency = ma.fields.String(required=True)
    status = ma.fields.String(required=True)


class EventResultOut(ma.Schema):
    received = ma.fields.Boolean(required=True)
    event_id = ma.fields.String(required=True)
    duplicate = ma.fields.Boolean(
        required=True, metadata={"description": "already handled before: nothing changed"}
    )
    outcome = ma.fields.String(required=True, metadata={"description": "what handling it did"})
    order_id = ma.fields.Integer(allow_none=True, required=True)
    order_state = ma.fields.String(allow_none=True, required=True)
