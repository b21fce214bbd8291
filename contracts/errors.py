"""The contracts package's own domain errors (problem+json ``type`` words)."""

from __future__ import annotations

from shop.errors import DomainError
from shop.i18n import N_


class NoMarketPrice(DomainError):
    type = "no-market-price"
    status = 422
    title = N_("No market price to price this delivery")


class CommitmentExceeded(DomainError):
    type = "commitment"
    status = 409
    title = N_("Past the contract's committed weight")


class InvalidCsv(DomainError):
    """A market-price import with bad lines; ``errors`` is ``[{line, message}]``."""

    type = "invalid-csv"
    status = 422
    title = N_("The CSV file has errors; nothing was imported")


class UnsupportedCsv(DomainError):
    type = "unsupported-media-type"
    status = 415
    title = N_("Unsupported media type")


class PayoutProviderUnavailable(DomainError):
    type = "payout-provider"
    status = 503
    title = N_("Payouts cannot be sent")
