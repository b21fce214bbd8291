"""What a process must know before it believes a signed token: revocations, polled
from the database (PostgreSQL and Redis only).

A signed token (``shop.accounts.signed_tokens``) names its caller, so a process can
let it in without asking the database — as long as it knows every revocation. Two
things end what a token says:

- the token itself is revoked (a logout): ``api_tokens.revoked_at`` is set;
- its user's sign-in changed (roles, deactivation, a new password, sign out
  everywhere): ``users.auth_changed_at`` is set, in the same transaction. A token
  issued before that is *doubted*: it takes the database path (which refuses it if
  it was revoked and reads the current roles if not — a role grant signs no one out).

**The database is the source of truth; Redis only makes it faster.** Each process
polls every ``POLL_S`` (0.4 s) on a connection of its own, outside any transaction:
``SELECT now()``, then the tokens revoked and the users changed since the previous
poll's ``now()`` minus ``OVERLAP_S`` (60 s) — two range scans on partial indexes,
usually empty. Each token hash is kept until the token's expiry, each doubt until
every token that could predate it has expired (``TOKEN_TTL_S``). The first poll of a
process (and one after polls failed for a while) reaches back over ``TOKEN_TTL_S``, so
a process started an hour after a logout knows it too. The revocation announced on
Redis (``shop.accounts.token_cache``) is applied as it arrives, usually well before
the next poll; a lost announcement costs at most the poll's delay, not the token's
lifetime.

**Why within 1 s.** Memory vouches for a token only while the last successful poll
*started* less than ``TRUST_S`` (1 s) ago, and while the Redis subscription is
healthy. A revocation committed before a poll started is in what that poll reads; so
once a revocation is 1 s old, no process that lets a signed token in from memory can
miss it. Otherwise — polls failing, the database slow, the thread starved — every
token takes the database path, as without Redis.

**Why the overlap.** The stamps are taken when the row is written, the commit comes
later; and they come from the app's clock while the window is measured by the
database's. A poll looks back ``OVERLAP_S`` before the previous poll's ``now()``, so a
revocation is seen as long as its transaction took less than that between its stamp
and its commit (requests take milliseconds; ``DB_STATEMENT_TIMEOUT_MS`` is 10 s) and
the clocks disagree by less. Rows seen twice cost nothing. The same margin keeps a
doubt: a token issued less than ``OVERLAP_S`` after its user's change is doubted too,
since its sign-in may have read the roles before the change committed.

Users are never deleted (an operator deactivates them), so every way a token stops
being good leaves one of the two stamps.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, create_engine, func, select

from shop.accounts.models import ApiToken, User
from shop.accounts.signed_tokens import Claims
from shop.core.hot_rows import without_yielding
from shop.core.process_thread import ProcessThread
from shop.db import bound_replies, engine_options, reply_timeout_s

log = logging.getLogger(__name__)

POLL_S = 0.4  #: how often each process reads what was revoked
TRUST_S = 1.0  #: memory vouches for a token only this soon after a poll started
OVERLAP_S = 60.0  #: see the module docstring, "Why the overlap"
PRUNE_S = 60.0  #: expired revocations and old doubts are dropped this often

#: (token hashes newly revoked, users newly doubted): what a cache must drop
News = Callable[[list[str], list[int]], None]

_REVOKED = select(ApiToken.token_hash, ApiToken.expires_at).where(
    ApiToken.revoked_at >= bindparam("since"), ApiToken.expires_at > bindparam("alive_after")
)
_CHANGED = select(User.id, User.auth_changed_at).where(User.auth_changed_at >= bindparam("since"))


class RevocationWatch:
    """The revoked tokens and doubted users of one process; see the module docstring."""

    def __init__(self, config: Mapping[str, Any], on_news: News) -> None:
        self.config = dict(config)
        self.token_ttl_s = float(config["TOKEN_TTL_S"])
        self.on_news = on_news
        self.lock = threading.Lock()  #: for writers; readers look up without it
        self.revoked: dict[str, float] = {}  #: token hash → the token's expiry (unix)
        self.doubted: dict[int, float] = {}  #: user id → their last change (unix)
        self.polled_at = -math.inf  #: monotonic start of the last successful poll
        self.polled_db_time: datetime | None = None  #: the database's now() then
        self.pruned_at = time.monotonic()
        self._thread = ProcessThread(self._run, "revocation-poll")
        self._stop = threading.Event()

    # ------------------------------------------------------------------ reading

    def fresh(self) -> bool:
        """Whether everything committed more than ``TRUST_S`` ago is known."""
        self.ensure_started()
        return time.monotonic() - self.polled_at < TRUST_S

    def vouches_for(self, claims: Claims, token_hash: str) -> bool:
        """Whether a signed token may be let in from memory: fresh, alive, no longer-lived
        than any token we issue, not revoked, and issued well after its user's last change."""
        if not self.fresh():
            return False
        if claims.expires <= time.time() or claims.expires - claims.issued > self.token_ttl_s:
            return False
        if token_hash in self.revoked:
            return False
        changed = self.doubted.get(claims.user_id)
        return changed is None or claims.issued >= changed + OVERLAP_S

    # ------------------------------------------------------------------ learning

    def learn(
        self,
        *,
        revoked: Iterable[tuple[str, float]] = (),
        changed: Iterable[tuple[int, float]] = (),
    ) -> tuple[list[str], list[int]]:
        """Add revoked tokens (hash, expiry) and changed users (id, when); returns what
        was not known before."""
        new_tokens: list[str] = []
        new_users: list[int] = []
        with self.lock:
            for token_hash, expires in revoked:
                if token_hash not in self.revoked:
                    new_tokens.append(token_hash)
                self.revoked[token_hash] = max(expires, self.revoked.get(token_hash, expires))
            for user_id, at in changed:
                if at > self.doubted.get(user_id, -math.inf):
                    new_users.append(user_id)
                    self.doubted[user_id] = at
        return new_tokens, new_users

    def poll(self, engine: Engine) -> None:
        """Read what was revoked since the previous poll (see the module docstring)."""
        started = time.monotonic()
        # Three short statements, waited for without letting the worker's other
        # greenlets in (shop/core/hot_rows.py): on a saturated gevent worker each
        # yield would cost a turn behind every ready request, and a poll that takes
        # longer than TRUST_S − POLL_S would send every token to the database.
        with (
            without_yielding(),
            engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection,
        ):
            db_time = connection.execute(select(func.now())).scalar_one()
            if self.polled_db_time is None:
                since = db_time - timedelta(seconds=self.token_ttl_s + OVERLAP_S)
            else:
                since = self.polled_db_time - timedelta(seconds=OVERLAP_S)
            alive_after = db_time - timedelta(seconds=OVERLAP_S)
            revoked = connection.execute(_REVOKED, {"since": since, "alive_after": alive_after})
            changed = connection.execute(_CHANGED, {"since": since})
            news = self.learn(
                revoked=[(row.token_hash, row.expires_at.timestamp()) for row in revoked],
                changed=[(row.id, row.auth_changed_at.timestamp()) for row in changed],
            )
        if news[0] or news[1]:
            self.on_news(*news)
        self.polled_db_time = db_time
        self.polled_at = started  # only now: what it read is in memory
        if started - self.pruned_at > PRUNE_S:
            self._prune()

    def _prune(self) -> None:
        now = time.time()
        with self.lock:
            self.revoked = {h: expires for h, expires in self.revoked.items() if expires > now}
            oldest = now - self.token_ttl_s - OVERLAP_S
            self.doubted = {u: at for u, at in self.doubted.items() if at > oldest}
            self.pruned_at = time.monotonic()

    # ------------------------------------------------------------------ the loop

    def ensure_started(self) -> None:
        """Start polling in this process (once; again in a forked child)."""
        self._thread.ensure_started(reset=self._forget_polls)

    def _forget_polls(self) -> None:
        self.polled_at = -math.inf
        self.polled_db_time = None

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        engine = self._engine()
        failing = False
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self.poll(engine)
                    if failing:
                        log.info("revocation poll works again")
                    failing = False
                except Exception as error:  # the loop must outlive any failure
                    if not failing:
                        log.warning("revocation poll failed (%s); tokens take the database", error)
                    failing = True
                self._stop.wait(max(0.0, POLL_S - (time.monotonic() - started)))
        finally:
            engine.dispose()

    def _engine(self) -> Engine:
        """One connection of its own: the poll neither waits for the request pool nor
        counts in the requests' statements."""
        options = {**engine_options(self.config), "pool_size": 1, "max_overflow": 0}
        engine = create_engine(self.config["DATABASE_URL"], **options)
        bound_replies(engine, reply_timeout_s(self.config))
        return engine
