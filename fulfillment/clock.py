"""The time the fulfillment rules read. Tests replace ``now`` to move past a lease;
nothing else in the package calls ``datetime.now``."""

from __future__ import annotations

from datetime import datetime

from shop.db import utcnow


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return utcnow()
