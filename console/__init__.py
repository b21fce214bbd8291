"""The operator's console (``/admin``): today at a glance, workshops, users, contracts, the
weighing station, market prices and payouts — pages over the packages' services.

The console is a composition point like ``shop.app``: it uses ``shop``, ``fulfillment``
and ``contracts`` and nothing uses it. Every rule stays in those packages' services; a
page parses a form (through the API's own input schemas), calls the service, commits and
redirects.
"""

from __future__ import annotations

from console import contracts, overview, payouts, prices, users, workshops  # noqa: F401  (routes)
from console.base import bp

__all__ = ["bp"]
