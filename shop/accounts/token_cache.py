"""Bearer tokens without a database round trip on every request (Redis only).

Two layers, both trusted only while the process's Redis subscription is healthy
(``shop.core.redis_listener``) and, on PostgreSQL, while the revocation poll of
``shop.accounts.revocations`` is fresh (it started less than a second ago):

1. **Signed tokens** (``shop.accounts.signed_tokens``) carry their caller. One whose
   signature verifies, that has not expired, is not revoked and was issued well after
   its user's last change of roles, password or status is let in from what it says:
   no database statement, not even the first time a process sees it — what a flash
   sale needs, when a thousand buyers reach every worker at once.
2. **The callers of other tokens** — opaque ones issued before, ones signed under
   another SECRET_KEY, doubted ones — are kept per process once the database has
   answered for them (token hash → id, roles, the token's expiry).

A revocation — logout, sign out everywhere, a password change, a deactivation, new
roles — is announced on ``shanhuo:auth:revoked`` once its transaction commits; every
process applies it as the message arrives: it drops the cached callers and adds the
token (or the user's change) to what the revocation watch knows. The watch also reads
every revocation from the database a few times a second, so a lost announcement
delays nobody by more than a second either: a revoked token stops working everywhere
within a second. An expired one stops at its expiry (checked on every use).

While the subscription is down, and after it comes back (messages were missed), or
while the poll is late, every request asks the database, as without Redis. An entry
filled by a read that raced a revocation is not kept (the read is taken only if no
revocation arrived since it began), and none is kept longer than ``TOKEN_CACHE_S``.
On SQLite there is no poll and no signed path: only the cache of callers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from flask import Flask, current_app, has_app_context

from shop.accounts import signed_tokens
from shop.accounts.models import Caller
from shop.accounts.revocations import OVERLAP_S, RevocationWatch
from shop.core.after_commit import after_commit
from shop.core.redis_listener import ProcessSubscription
from shop.db import DbSession, utcnow

log = logging.getLogger(__name__)

CHANNEL = "shanhuo:auth:revoked"
MAX_ENTRIES = 100_000  #: past this the cache starts over (a flood of fresh tokens)
_UNSEEN: Any = object()

Lookup = Callable[[DbSession, str], "tuple[Caller, datetime] | None"]


class TokenCache:
    def __init__(
        self,
        listener: ProcessSubscription,
        client: Any,
        max_age_s: float,
        *,
        signing_key: bytes | None = None,
        watch_config: dict[str, Any] | None = None,
    ) -> None:
        self.listener = listener
        self.client = client
        self.max_age_s = max_age_s
        self.signing_key = signing_key
        #: what is revoked, polled from the database; None: no signed path (SQLite)
        self.watch = None if watch_config is None else RevocationWatch(watch_config, self._news)
        self.lock = threading.Lock()
        #: token hash → (caller, token's expiry, when cached)
        self.entries: dict[str, tuple[Caller, datetime, float]] = {}
        #: signed token → its claims as verified (None: not one of ours)
        self.verified: dict[str, signed_tokens.Claims | None] = {}
        self.revocations = 0  #: revocation messages applied (and reconnects)
        listener.on_channel(CHANNEL, self._revoked)
        listener.on_connect(self._start_over)

    def trusted(self) -> bool:
        """Whether memory may answer now: the subscription hears, the poll is fresh."""
        return self.listener.healthy() and (self.watch is None or self.watch.fresh())

    def caller(self, session: DbSession, token: str, lookup: Lookup) -> Caller | None:
        """The caller of a live token, from memory when it can be trusted, else from
        ``lookup`` (the database)."""
        key = hashlib.sha256(token.encode()).hexdigest()
        trusted = self.trusted()
        before = -1
        if trusted:
            signed = self._signed_caller(token, key)
            if signed is not None:
                return signed
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
        if trusted:
            with self.lock:
                if self.revocations == before and self.listener.healthy():
                    if len(self.entries) >= MAX_ENTRIES:
                        self.entries.clear()
                    self.entries[key] = (found[0], found[1], time.monotonic())
        return found[0]

    def _signed_caller(self, token: str, key: str) -> Caller | None:
        """The caller a signed token names, if the revocation watch vouches for it."""
        if self.watch is None or self.signing_key is None:
            return None
        # A token's claims never change, so its signature is checked once (12 µs of
        # every request); whether they are good now — fresh, unexpired, not revoked —
        # the watch decides each time.
        claims = self.verified.get(token, _UNSEEN)
        if claims is _UNSEEN:
            claims = signed_tokens.verify(self.signing_key, token)
            with self.lock:
                if len(self.verified) >= MAX_ENTRIES:
                    self.verified.clear()
                self.verified[token] = claims
        if claims is None or not self.watch.vouches_for(claims, key):
            return None
        return Caller(id=claims.user_id, roles=claims.roles)

    def forget(self, *, token_hashes: Iterable[str] = (), user_ids: Iterable[int] = ()) -> None:
        users = set(user_ids)
        with self.lock:
            self.revocations += 1
            for token_hash in token_hashes:
                self.entries.pop(token_hash, None)
            if users:
                for key in [k for k, (c, _, _) in self.entries.items() if c.id in users]:
                    del self.entries[key]

    def learn(self, message: dict[str, Any]) -> None:
        """Apply a revocation (the announcement's message): drop what it names from the
        cache, and tell the watch before its next poll does."""
        token_hash, user_id = message.get("token_hash"), message.get("user_id")
        if self.watch is not None:
            # Without an expiry the token's hash is kept at least as long as a poll
            # could still miss it; the poll then keeps it until the token's expiry.
            expires = message.get("expires_at") or time.time() + 2 * OVERLAP_S
            self.watch.learn(
                revoked=[(token_hash, expires)] if token_hash else [],
                changed=[(user_id, message.get("changed_at") or time.time())] if user_id else [],
            )
        self.forget(
            token_hashes=[token_hash] if token_hash else [],
            user_ids=[user_id] if user_id else [],
        )

    def announce(self, message: dict[str, Any]) -> None:
        """Tell every process (this one at once) that a token or a user's tokens were
        revoked: ``token_hash`` and ``expires_at``, or ``user_id`` and ``changed_at``
        (unix seconds)."""
        self.learn(message)
        try:
            self.client.publish(CHANNEL, json.dumps(message))
        except Exception as error:  # other processes learn it from their next poll
            log.error("token revocation not announced: %s", error)

    def _news(self, token_hashes: list[str], user_ids: list[int]) -> None:
        self.forget(token_hashes=token_hashes, user_ids=user_ids)

    def _revoked(self, channel: str, raw: bytes) -> None:
        self.learn(json.loads(raw))

    def _start_over(self, epoch: int) -> None:
        with self.lock:
            self.revocations += 1
            self.entries.clear()
        if self.watch is not None:
            # Poll from the moment the process hears Redis (its first viewer or
            # request), not from the first token: the first buyers meet a fresh watch.
            self.watch.ensure_started()


def forget_after_commit(
    session: DbSession,
    *,
    token_hash: str | None = None,
    expires_at: datetime | None = None,
    user_id: int | None = None,
    changed_at: datetime | None = None,
) -> None:
    """Once ``session`` commits, every process stops trusting memory for the token
    (until ``expires_at``) or for the user's tokens issued before ``changed_at``."""
    message = {
        "token_hash": token_hash,
        "expires_at": expires_at and expires_at.timestamp(),
        "user_id": user_id,
        "changed_at": changed_at and changed_at.timestamp(),
    }

    def announce() -> None:
        cache = token_cache(current_app) if has_app_context() else None
        if cache is not None:
            cache.announce(message)

    after_commit(session, announce)


def token_cache(app: Flask) -> TokenCache | None:
    """The app's token cache; None without Redis (every request asks the database)."""
    return app.extensions.get("shanhuo.token_cache")  # type: ignore[no-any-return]


def install_token_cache(app: Flask, listener: ProcessSubscription, client: Any) -> None:
    on_postgres = app.config["DATABASE_URL"].startswith("postgresql")
    app.extensions["shanhuo.token_cache"] = TokenCache(
        listener,
        client,
        float(app.config["TOKEN_CACHE_S"]),
        signing_key=signed_tokens.signing_key(app.config["SECRET_KEY"]),
        watch_config=dict(app.config) if on_postgres else None,
    )
