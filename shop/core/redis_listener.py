"""The process's one Redis subscription, fanned out in memory.

Each web process holds exactly one pub/sub connection, whatever the number of
viewers: a background thread (a greenlet under gunicorn's gevent worker) reads it
and hands each message to the handlers registered for its channel. Viewers' streams,
the stock view (``shop.live.stock_view``) and the token cache
(``shop.accounts.token_cache``) all listen through it.

What a cache may conclude depends on hearing everything, so the listener says how
well it hears:

- ``epoch`` grows each time the subscription is (re)made. Messages sent while it was
  down are lost, so whoever keeps state from them starts over (``on_connect``);
- ``healthy()`` is true only while connected and while a ping answered lately (a
  connection that died without a word answers no ping): a cache refuses or serves
  from memory only while it is healthy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from shop.core.process_thread import ProcessThread
from shop.i18n import _l

log = logging.getLogger(__name__)

Handler = Callable[[str, bytes], None]

PING_S = 0.5  #: the listener pings this often when nothing else arrives
STALE_S = 2.0  #: no message nor pong for this long: not healthy (stop trusting memory)
DEAD_S = 5.0  #: … and for this long: drop the connection and make a new one


class ProcessSubscription:
    """One pub/sub connection for the whole process; see the module docstring."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.Lock()
        self.channels: dict[str, list[Handler]] = {}
        self.patterns: dict[str, list[Handler]] = {}
        self.connect_hooks: list[Callable[[int], None]] = []
        self.epoch = 0
        self.connected = threading.Event()
        self.last_heard = 0.0
        self._thread = ProcessThread(self._run, "redis-listener")
        self._stop = threading.Event()
        self._resubscribe = False  #: a channel was added while subscribed: subscribe again

    # ------------------------------------------------------------ registration

    def on_channel(self, channel: str, handler: Handler) -> None:
        with self.lock:
            self._resubscribe |= channel not in self.channels
            self.channels.setdefault(channel, []).append(handler)

    def on_pattern(self, pattern: str, handler: Handler) -> None:
        with self.lock:
            self._resubscribe |= pattern not in self.patterns
            self.patterns.setdefault(pattern, []).append(handler)

    def on_connect(self, hook: Callable[[int], None]) -> None:
        """``hook(epoch)`` after each (re)subscription, before its first message."""
        with self.lock:
            self.connect_hooks.append(hook)

    # ------------------------------------------------------------------ state

    def healthy(self) -> bool:
        self.ensure_started()
        return self.connected.is_set() and time.monotonic() - self.last_heard < STALE_S

    def ensure_started(self) -> None:
        """Start the listener in this process (once; again in a forked child)."""
        self._thread.ensure_started(reset=self.connected.clear)

    def wait_connected(self, timeout: float) -> bool:
        self.ensure_started()
        return self.connected.wait(timeout)

    def stop(self) -> None:
        self._stop.set()

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._listen()
                backoff = 0.1
            except (redis.exceptions.RedisError, OSError) as error:
                log.warning("redis subscription lost (%s); retrying in %.1f s", error, backoff)
            finally:
                self.connected.clear()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 2.0)

    def _listen(self) -> None:
        client = redis.Redis.from_url(self.url, socket_timeout=DEAD_S, socket_connect_timeout=2)
        pubsub = client.pubsub()
        try:
            with self.lock:
                channels, patterns = list(self.channels), list(self.patterns)
                self._resubscribe = False
            if channels:
                pubsub.subscribe(*channels)
            if patterns:
                pubsub.psubscribe(*patterns)
            for _ in range(len(channels) + len(patterns)):  # every confirmation
                while pubsub.get_message(timeout=DEAD_S) is None:
                    pass
            self.epoch += 1
            with self.lock:
                hooks = list(self.connect_hooks)
            for hook in hooks:
                hook(self.epoch)
            self.last_heard = time.monotonic()
            self.connected.set()
            last_ping = time.monotonic()
            while not self._stop.is_set() and not self._resubscribe:
                message = pubsub.get_message(timeout=PING_S)
                now = time.monotonic()
                if message is not None:
                    self.last_heard = now
                    self._dispatch(message)
                elif now - self.last_heard > DEAD_S:
                    raise redis.exceptions.ConnectionError(_l("no answer to pings"))
                if now - last_ping >= PING_S:
                    pubsub.ping()
                    last_ping = now
        finally:
            pubsub.close()
            client.close()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "message":
            handlers = self.channels.get(_text(message["channel"]), [])
        elif kind == "pmessage":
            handlers = self.patterns.get(_text(message["pattern"]), [])
        else:
            return  # a pong or a confirmation: heard, nothing to hand on
        channel = _text(message["channel"])
        for handler in handlers:
            try:
                handler(channel, message["data"])
            except Exception:  # one bad message must not end the subscription
                log.exception("redis message on %s: handler failed", channel)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
