"""Payment errors: what Stripe (or the sandbox) refused, and webhooks we cannot trust."""

from __future__ import annotations

from shop.errors import DomainError
from shop.i18n import N_


class PaymentRefused(DomainError):
    """The payment service understood us and said no (e.g. nothing left to refund)."""

    type = "payment"
    status = 409
    title = N_("The payment service refused the request")


class PaymentUnavailable(DomainError):
    """The payment service could not be reached, or failed, or rejected our credentials."""

    type = "payment"
    status = 502
    title = N_("The payment service is not available")


class BadSignature(DomainError):
    """A webhook whose signature, or timestamp, does not check out."""

    type = "signature"
    status = 400
    title = N_("Webhook signature not valid")
