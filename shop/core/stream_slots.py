"""How many live-event streams this process holds open, in all and per client.

An open stream is cheap (a queue and a greenlet), but not free, and one client must
not take every slot: past ``per_client`` streams from one address (``client_address()``,
behind the proxies we trust) or ``total`` in the process, the next viewer gets
``503 unavailable`` with ``Retry-After`` before its response starts.
"""

from __future__ import annotations

import threading
from collections import Counter

from flask import Flask

from shop.errors import Unavailable
from shop.i18n import _l


class StreamSlots:
    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.lock = threading.Lock()
        self.by_client: Counter[str] = Counter()
        self.open = 0

    def take(self, client: str) -> None:
        """Count one more stream for ``client``; raises Unavailable when there is no room."""
        with self.lock:
            if self.open >= self.total:
                raise Unavailable(
                    _l("This server holds as many live event streams as it can; retry.")
                )
            if self.by_client[client] >= self.per_client:
                raise Unavailable(
                    _l(
                        "At most %(per_client)s live event streams per client; close one.",
                        per_client=self.per_client,
                    )
                )
            self.open += 1
            self.by_client[client] += 1

    def give_back(self, client: str) -> None:
        with self.lock:
            self.open -= 1
            self.by_client[client] -= 1
            if self.by_client[client] <= 0:
                del self.by_client[client]


def stream_slots(app: Flask) -> StreamSlots:
    """The app's stream counter (``LIVE_EVENTS_MAX_STREAMS``, ``…_PER_CLIENT``)."""
    slots = app.extensions.get("shanhuo.stream_slots")
    if slots is None:
        slots = StreamSlots(
            app.config["LIVE_EVENTS_MAX_STREAMS"], app.config["LIVE_EVENTS_MAX_STREAMS_PER_CLIENT"]
        )
        app.extensions["shanhuo.stream_slots"] = slots
    return slots  # type: ignore[no-any-return]
