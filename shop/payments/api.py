"""Payment endpoints: create an order's payment, Stripe's webhook, the sandbox's stand-in."""

from __future__ import annotations

from typing import Any, cast

from flask import Flask, current_app, request
from flask.blueprints import BlueprintSetupState

from shop.accounts.models import Role
from shop.api import Blueprint
from shop.auth import current_user, public, requires
from shop.db import db
from shop.errors import NotFound
from shop.i18n import _l
from shop.payments import service, webhook
from shop.payments.models import Payment
from shop.payments.providers import get_provider, sandbox_active
from shop.payments.schemas import EventResultOut, PaymentOut
from shop.request_guard import reads_raw_body

blp = Blueprint(
    "payments", __name__, url_prefix="/api/v1", description="Payments (Stripe or the sandbox)"
)


@blp.record_once
def _check_provider(state: BlueprintSetupState) -> None:
    # Fail at start-up, not at the first payment: production refuses the sandbox.
    get_provider(cast(Flask, state.app))


def payment_json(payment: Payment) -> dict[str, Any]:
    return {
        "provider": payment.provider,
        "payment_id": payment.payment_id,
        "client_secret": payment.client_secret,
        "amount_fen": payment.amount_fen,
        "currency": payment.currency,
        "status": payment.status,
    }


def result_json(result: webhook.EventResult) -> dict[str, Any]:
    return {"received": True, **vars(result)}


@blp.route("/orders/<int:order_id>/payment", methods=["POST"])
@requires(Role.BUYER)
@blp.response(200, PaymentOut)
@blp.alt_response(404, response="NOT_FOUND", description="no such order of yours")
@blp.alt_response(
    409,
    response="CONFLICT",
    description="conflict: not pending_payment; payment: the payment service refused",
)
@blp.alt_response(502, response="BAD_GATEWAY", description="payment: Stripe not reachable")
def create_payment(order_id: int) -> Any:
    """Create the order's payment (a Stripe PaymentIntent) once; a repeat returns the same one.

    Pay with the `client_secret` (Stripe.js, or the sandbox `succeed` endpoint). The order
    becomes `paid` when the payment service reports the money arrived, not before.
    """
    payment = service.start_payment(
        db.session, order_id, user=current_user(), provider=get_provider()
    )
    db.session.commit()
    return payment_json(payment)


#: The webhook reads the raw body itself (the signature covers its exact bytes).
WEBHOOK_DOC: dict[str, Any] = {
    "parameters": [
        {
            "in": "header",
            "name": "Stripe-Signature",
            "required": True,
            "schema": {"type": "string"},
            "description": "`t=<unix time>,v1=<HMAC-SHA256(secret, f'{t}.{body}')>`",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "A Stripe event object, exactly as Stripe sent it",
    },
}


@blp.route("/payments/stripe/webhook", methods=["POST"])
@public
@reads_raw_body
@blp.doc(**WEBHOOK_DOC)
@blp.response(200, EventResultOut)
@blp.alt_response(
    400,
    response="BAD_REQUEST",
    description="signature: missing, wrong or stale; malformed: signed but not an event we "
    "can read (not JSON, nested too deep, a field of the wrong type or too long)",
)
@blp.alt_response(
    502,
    response="BAD_GATEWAY",
    description="payment: a refund it must issue failed; Stripe delivers the event again later",
)
def stripe_webhook() -> Any:
    """Stripe's events, signed with `Stripe-Signature` (STRIPE_WEBHOOK_SECRET).

    Handles `payment_intent.succeeded`, `payment_intent.payment_failed` and
    `charge.refunded`; any other type is acknowledged and ignored. Each event id is
    handled once: a repeat is answered 200 with `duplicate: true` and changes nothing.
    """
    event = webhook.verify_stripe_event(
        request.get_data(cache=False),
        request.headers.get("Stripe-Signature"),
        current_app.config.get("STRIPE_WEBHOOK_SECRET"),
    )
    result = webhook.handle_event(db.session, event, provider=get_provider())
    db.session.commit()
    return result_json(result)


@blp.route("/payments/sandbox/<string(maxlength=255):payment_id>/succeed", methods=["POST"])
@public
@blp.response(200, EventResultOut)
@blp.alt_response(404, response="NOT_FOUND", description="no sandbox payment, or Stripe is on")
@blp.alt_response(409, response="CONFLICT", description="payment: a refund it must issue failed")
def sandbox_succeed(payment_id: str) -> Any:
    """Sandbox only (no STRIPE_SECRET_KEY): pay, as Stripe's `payment_intent.succeeded` would.

    For demos and local development; the same handling as the webhook. A repeat is the
    same event again (`duplicate: true`).
    """
    if not sandbox_active():
        raise NotFound(_l("The sandbox is off: payments go through Stripe."))
    result = service.sandbox_succeed(db.session, payment_id, provider=get_provider())
    db.session.commit()
    return result_json(result)
