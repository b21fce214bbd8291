"""Bearer tokens without a database round trip on every request (Redis only).

Each process keeps the callers of the tokens it has seen (token hash → id, roles,
the token's expiry). A token that is revoked — logout, sign out everywhere, a
password change — is announced on ``shanhuo:auth:revoked`` once its transaction
commits, and every process drops it as the message arrives: a revoked token stops
working everywhere within a second. An expired one stops at its expiry (checked on
every use).

The cache serves only while the process's Redis subscription is healthy
(``shop.core.redis_listener``): while it is down, and after it comes back (messages
were missed), every request asks the database, as without Redis. An entry filled by a
read that raced a revocation is not kept (the read is taken only if no revocation
arrived since it began), and none is kept longer than ``TOKEN_CACHE_S`` — the bound
if a revocation message itself was lost (Redis failing at that moment).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Flask, current_app, has_app_context

from shop.accounts.models import Caller
from shop.core.after_commit import after_commit
from shop.core.redis_listener import ProcessSubscription
from shop.db import DbSession, utcnow

log = logging.getLogger(__name__)

CHANNEL = "shanhuo:auth:revoked"
MAX_ENTRIES = 100_000  #: past this the cache starts over (a flood of fresh tokens)

Lookup = Callable[[DbSession, str], "tuple[Caller, datetime] | None"]


class TokenCache:
    def __init__(self, listener: ProcessSubscription, client: Any, max_age_s: float) -> None:
        self.listener = listener
        self.client = client
        self.max_age_s = max_age_s
        self.lock = threading.Lock()
        #: token hash → (caller, token's expiry, when cached)
        self.entries: dict[str, tuple[Caller, datetime, float]] = {}
        self.revocations = 0  #: revocation messages applied (and reconnects)
        listener.on_channel(CHANNEL, self._revoked)
        listener.on_connect(self._start_over)

    def caller(self, session: DbSession, token: str, lookup: Lookup) -> Caller | None:
        """The caller of a live token, from memory when it can be trusted, else from
        ``lookup`` (the database)."""
        key = hashlib.sha256(token.encode()).hexdigest()
        healthy = self.listener.healthy()
        before = -1
        if healthy:
            with self.lock:
                entry = self.entries.get(key)
                before = self.revocations
            if entry is not None:
                caller, expires_at, cached_at = entry
                if expires_at > utcnow() and time.monotonic() - cached_at < self.max_age_s:
                    return caller
        found = lookup(session, token)
        if found is None:
            return None
        if healthy:
            with self.lock:
                if self.revocations == before and self.listener.healthy():
                    if len(self.entries) >= MAX_ENTRIES:
                        self.entries.clear()
                    self.entries[key] = (found[0], found[1], time.monotonic())
        return found[0]

    def forget(self, *, token_hash: str | None = None, user_id: int | None = None) -> None:
        with self.lock:
            self.revocations += 1
            if token_hash is not None:
                self.entries.pop(token_hash, None)
            if user_id is not None:
                for key in [k for k, (c, _, _) in self.entries.items() if c.id == user_id]:
                    del self.entries[key]

    def announce(self, *, token_hash: str | None = None, user_id: int | None = None) -> None:
        """Tell every process (this one at once) to drop a token or all of a user's."""
        self.forget(token_hash=token_hash, user_id=user_id)
        message = json.dumps({"token_hash": token_hash, "user_id": user_id})
        try:
            self.client.publish(CHANNEL, message)
        except Exception as error:  # other processes keep it at most TOKEN_CACHE_S
            log.error("token revocation not announced: %s", error)

    def _revoked(self, channel: str, raw: bytes) -> None:
        message = json.loads(raw)
        self.forget(token_hash=message.get("token_hash"), user_id=message.get("user_id"))

    def _start_over(self, epoch: int) -> None:
        with self.lock:
            self.revocations += 1
            self.entries.clear()


def forget_after_commit(
    session: DbSession, *, token_hash: str | None = None, user_id: int | None = None
) -> None:
    """Once ``session`` commits, every process's cache drops the token (or the user's)."""

    def announce() -> None:
        cache = token_cache(current_app) if has_app_context() else None
        if cache is not None:
            cache.announce(token_hash=token_hash, user_id=user_id)

    after_commit(session, announce)


def token_cache(app: Flask) -> TokenCache | None:
    """The app's token cache; None without Redis (every request asks the database)."""
    return app.extensions.get("shanhuo.token_cache")  # type: ignore[no-any-return]


def install_token_cache(app: Flask, listener: ProcessSubscription, client: Any) -> None:
    app.extensions["shanhuo.token_cache"] = TokenCache(
        listener, client, float(app.config["TOKEN_CACHE_S"])
    )
