"""Where payout money goes: a Stripe Connect Transfer, or the sandbox for local demos.

Both implement ``PayoutProvider``. A provider is told everything it needs (no
database): the payout id (which gives the idempotency key ``payout-{id}``), the
farmer, the amount in fen, the currency and the connected account.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import stripe


@dataclass(frozen=True)
class TransferRequest:
    payout_id: int
    farmer_id: int
    amount_fen: int
    currency: str
    destination: str  #: the farmer's Stripe Connect account, ``acct_…``

    @property
    def idempotency_key(self) -> str:
        return f"payout-{self.payout_id}"


class TransferRefused(Exception):
    """The provider answered no (a Stripe error): the payout fails with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransferUnreachable(Exception):
    """The provider could not be reached: the outcome is unknown, retry with the same key."""


class PayoutProvider(Protocol):
    name: str

    def transfer(self, request: TransferRequest) -> str:
        """Send the money; return the provider's transfer id.

        Raises TransferRefused or TransferUnreachable.
        """
        ...


class StripeConnectPayouts:
    """A Stripe Connect Transfer to the farmer's connected account."""

    name = "stripe"

    def __init__(self, secret_key: str, api_base: str | None = None) -> None:
        options: dict[str, Any] = {"max_network_retries": 2}
        if api_base:
            options["base_addresses"] = {"api": api_base}
        self.client = stripe.StripeClient(secret_key, **options)

    def transfer(self, request: TransferRequest) -> str:
        try:
            transfer = self.client.v1.transfers.create(
                {
                    "amount": request.amount_fen,
                    "currency": request.currency,
                    "destination": request.destination,
                    "transfer_group": f"payout-{request.payout_id}",
                    "metadata": {
                        "farmer_id": str(request.farmer_id),
                        "payout_id": str(request.payout_id),
                    },
                },
                {"idempotency_key": request.idempotency_key},
            )
        except stripe.APIConnectionError as error:
            raise TransferUnreachable(str(error.user_message or error)) from error
        except stripe.StripeError as error:
            raise TransferRefused(str(error.user_message or error)) from error
        return str(transfer.id)


class SandboxPayouts:
    """No Stripe key: every payout is marked paid at once. For demos and local development;
    refused when ``SHANHUO_ENV=production``."""

    name = "sandbox"

    def transfer(self, request: TransferRequest) -> str:
        return f"sandbox_{request.idempotency_key}"


def payout_provider(config: Mapping[str, Any]) -> PayoutProvider:
    """The provider the configuration asks for. Raises RuntimeError for the sandbox in
    production (a payout must never be marked paid without money moving)."""
    key = config.get("STRIPE_SECRET_KEY")
    if key:
        return StripeConnectPayouts(key, config.get("STRIPE_API_BASE"))
    if config.get("SHANHUO_ENV") == "production":
        raise RuntimeError("STRIPE_SECRET_KEY must be set to send payouts in production")
    return SandboxPayouts()
