from __future__ import annotations

from shop.errors import DomainError
from shop.i18n import N_


class LimitExceeded(DomainError):
    type = "limit"
    status = 409
    title = N_("Over the per-buyer limit")
