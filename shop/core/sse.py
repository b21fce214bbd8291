"""Server-Sent Events for one live session, read from the live-event bus."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterable, Iterator

import redis

from shop.core.live_bus import LiveBus, LiveEvent, Subscription
from shop.core.stream_slots import StreamSlots
from shop.errors import Unavailable
from shop.i18n import _l

log = logging.getLogger(__name__)


def sse_stream(
    bus: LiveBus,
    live_session_id: int,
    *,
    after_id: int | None,
    max_s: float,
    heartbeat_s: float,
    slots: StreamSlots,
    client: str,
    final_event: str = "session.ended",
) -> Iterable[bytes]:
    """Server-Sent Events for one live session; holds no database connection.

    Takes one of ``slots`` for ``client`` and subscribes at once — so a server with no
    room for another stream (or a client holding too many) answers 503 (Unavailable)
    before the response starts — then the returned iterator replays
    the kept events after ``after_id`` and streams until ``final_event``, the client
    leaves, or ``max_s`` passes (the browser's EventSource reconnects with
    ``Last-Event-ID``).
    """
    slots.take(client)
    try:
        backlog, subscription = bus.subscribe(live_session_id, after_id)
    except redis.exceptions.RedisError as error:  # Redis is down
        slots.give_back(client)
        log.warning("live events: no stream for session %s: %s", live_session_id, error)
        raise Unavailable(_l("No room for another live event stream right now; retry.")) from error
    chunks = _stream(backlog, subscription, after_id, max_s, heartbeat_s, final_event)
    return _SseStream(chunks, subscription, lambda: slots.give_back(client))


class _SseStream:
    """A stream's chunks. The server closes it when the response ends or the client
    leaves; that also ends the subscription and gives back the slot when the stream
    never started, which closing a generator alone would not."""

    def __init__(
        self,
        chunks: Generator[bytes, None, None],
        subscription: Subscription,
        give_back: Callable[[], None],
    ) -> None:
        self.chunks = chunks
        self.subscription = subscription
        self.give_back: Callable[[], None] | None = give_back

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        self.chunks.close()
        self.subscription.close()
        if self.give_back is not None:  # once, however often the server closes it
            self.give_back()
            self.give_back = None


def _stream(
    backlog: list[LiveEvent],
    subscription: Subscription,
    after_id: int | None,
    max_s: float,
    heartbeat_s: float,
    final_event: str,
) -> Generator[bytes, None, None]:
    last = after_id or 0
    try:
        yield b"retry: 3000\n: connected\n\n"
        for record in backlog:
            last = record.id
            yield record.sse
            if record.event == final_event:
                return
        start = time.monotonic()
        next_beat = start + heartbeat_s
        while True:
            now = time.monotonic()
            if now - start >= max_s:
                return
            if now >= next_beat:
                yield b": heartbeat\n\n"
                next_beat = now + heartbeat_s
            # Until the heartbeat or the end, unless an event comes: a quiet stream does
            # not wake in between (2,000 viewers woken each second took 3-5 % of a worker).
            wait = min(next_beat - now, start + max_s - now)
            # What came together goes out in one write: at a sell-out every viewer
            # gets the last ``listing.stock`` and ``listing.sold_out`` at once.
            chunk, ended = [], False
            for record in subscription.get(timeout=wait):
                if record.id > last:
                    last = record.id
                    chunk.append(record.sse)
                    ended = record.event == final_event
                    if ended:
                        break
            if chunk:
                yield b"".join(chunk)
            if ended:
                return
    finally:
        subscription.close()
