from __future__ import annotations

from shop.errors import DomainError


class LimitExceeded(DomainError):
    type = "limit"
    status = 409
    title = "Over the per-buyer limit"
