"""The ``PaymentProvider`` protocol and its two implementations.

``StripeProvider`` talks to Stripe (or localstripe in tests, via ``STRIPE_API_BASE``)
through ``stripe.StripeClient``; ``SandboxProvider`` plays Stripe's part with local ids
for demos and development, and refuses to exist in production. Every call that moves
money carries an idempotency key derived from our own ids, so a retry, a double click
or a redelivered webhook never creates a second PaymentIntent or a second refund.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import stripe
from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.orm import object_session

from shop.db import db
from shop.errors import DomainError
from shop.i18n import _l
from shop.payments.errors import PaymentRefused, PaymentUnavailable
from shop.payments.models import Payment, PaymentStatus

if TYPE_CHECKING:
    from shop.orders.models import Order

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PaymentInfo:
    """What the buyer's app needs to pay: the provider's payment id and its client secret."""

    provider: str
    payment_id: str
    client_secret: str
    amount_fen: int
    currency: str


class PaymentProvider(Protocol):
    name: str

    def create_payment(self, order: Order) -> PaymentInfo:
        """Create (or, for the same order, get back) the payment for the order's total."""
        ...

    def refund(self, order: Order) -> None:
        """Give the order's payment back in full; safe to call twice."""
        ...


def payment_idempotency_key(order_id: int) -> str:
    return f"order-{order_id}"


def refund_idempotency_key(order_id: int) -> str:
    return f"refund-{order_id}"


def _recorded_payment(order: Order) -> Payment:
    """The payment row of an order, in the order's own session (the caller's transaction)."""
    session = object_session(order) or db.session
    payment = session.scalars(select(Payment).where(Payment.order_id == order.id)).one_or_none()
    if payment is None:
        raise PaymentRefused(
            _l("Order %(order_id)s has no recorded payment to refund.", order_id=order.id)
        )
    return payment


class StripeProvider:
    name = "stripe"

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str | None = None,
        currency: str = "cny",
        timeout_s: float = 20,
    ) -> None:
        self.currency = currency
        self.client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            # Retries are safe: every request that creates something has an idempotency key.
            max_network_retries=2,
            http_client=stripe.RequestsClient(timeout=timeout_s),
        )

    def create_payment(self, order: Order) -> PaymentInfo:
        try:
            intent = self.client.v1.payment_intents.create(
                params={
                    "amount": order.total_fen,
                    "currency": self.currency,
                    "metadata": {"order_id": str(order.id)},
                    # the methods the account enables (cards, Alipay, WeChat Pay), shown
                    # by the Payment Element on the order page
                    "automatic_payment_methods": {"enabled": True},
                },
                options={"idempotency_key": payment_idempotency_key(order.id)},
            )
        except stripe.StripeError as error:
            raise stripe_error(error, "create the payment") from error
        if intent.client_secret is None:
            raise PaymentUnavailable(_l("Stripe returned a PaymentIntent without a client secret."))
        return PaymentInfo(
            provider=self.name,
            payment_id=intent.id,
            client_secret=intent.client_secret,
            amount_fen=intent.amount,
            currency=intent.currency,
        )

    def refund(self, order: Order) -> None:
        payment = _recorded_payment(order)
        try:
            self.client.v1.refunds.create(
                params={
                    "payment_intent": payment.payment_id,
                    "metadata": {"order_id": str(order.id)},
                },
                options={"idempotency_key": refund_idempotency_key(order.id)},
            )
        except stripe.InvalidRequestError as error:
            if error.code != "charge_already_refunded":
                raise stripe_error(error, "refund the payment") from error
            log.info("order %s: payment %s was already refunded", order.id, payment.payment_id)
        except stripe.StripeError as error:
            raise stripe_error(error, "refund the payment") from error
        payment.status = PaymentStatus.REFUNDED


class SandboxProvider:
    """Stripe's part played locally: ids that look like Stripe's, no money moves.

    A payment succeeds only when someone calls the sandbox ``succeed`` endpoint, which
    goes through the same event handling as Stripe's webhook.
    """

    name = "sandbox"

    def __init__(self, *, env: str, currency: str = "cny") -> None:
        if env == "production":
            raise RuntimeError(
                "The sandbox payment provider does not run when SHANHUO_ENV=production: "
                "set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET."
            )
        self.currency = currency

    def create_payment(self, order: Order) -> PaymentInfo:
        # Random, not derived from the order: the public `succeed` endpoint takes this id,
        # so only the buyer who was given it can complete the payment.
        payment_id = f"sbx_pi_{secrets.token_hex(12)}"
        return PaymentInfo(
            provider=self.name,
            payment_id=payment_id,
            client_secret=f"{payment_id}_secret_{secrets.token_hex(12)}",
            amount_fen=order.total_fen,
            currency=self.currency,
        )

    def refund(self, order: Order) -> None:
        payment = _recorded_payment(order)
        log.info("sandbox: refunding %s for order %s", payment.payment_id, order.id)
        payment.status = PaymentStatus.REFUNDED


def stripe_error(error: stripe.StripeError, doing: str) -> DomainError:
    """A Stripe failure as a problem a person can act on (type ``payment``)."""
    said = error.user_message or str(error) or type(error).__name__
    code = {"stripe_code": error.code} if error.code else {}
    if isinstance(error, stripe.APIConnectionError):
        return PaymentUnavailable(f"Could not reach Stripe to {doing}; try again in a minute.")
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        return PaymentUnavailable(
            f"Stripe rejected the shop's credentials while trying to {doing}; "
            "the operator must check STRIPE_SECRET_KEY."
        )
    if isinstance(error, stripe.RateLimitError):
        return PaymentUnavailable(f"Stripe is busy and did not {doing}; try again shortly.")
    if isinstance(error, stripe.InvalidRequestError | stripe.CardError | stripe.IdempotencyError):
        return PaymentRefused(f"Stripe refused to {doing}: {said}", **code)
    return PaymentUnavailable(f"Stripe failed to {doing} ({said}); try again shortly.", **code)


def get_provider(app: Flask | None = None) -> PaymentProvider:
    """The provider configured for this app: Stripe when STRIPE_SECRET_KEY is set, else sandbox."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    config = app.config
    key: tuple[Any, ...]
    if config.get("STRIPE_SECRET_KEY"):
        key = ("stripe", config["STRIPE_SECRET_KEY"], config.get("STRIPE_API_BASE"))
    else:
        key = ("sandbox", config["SHANHUO_ENV"])
    key += (config["CURRENCY"], config["STRIPE_TIMEOUT_S"])
    cache: dict[tuple[Any, ...], PaymentProvider] = app.extensions.setdefault(
        "shanhuo.payment_providers", {}
    )
    if key not in cache:
        provider: PaymentProvider
        if key[0] == "stripe":
            provider = StripeProvider(
                config["STRIPE_SECRET_KEY"],
                api_base=config.get("STRIPE_API_BASE"),
                currency=config["CURRENCY"],
                timeout_s=config["STRIPE_TIMEOUT_S"],
            )
        else:
            provider = SandboxProvider(env=config["SHANHUO_ENV"], currency=config["CURRENCY"])
        cache[key] = provider
    return cache[key]


def sandbox_active(app: Flask | None = None) -> bool:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return not app.config.get("STRIPE_SECRET_KEY")
