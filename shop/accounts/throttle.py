"""Sign-in throttling that cannot be turned against the account's owner.

After OWASP's Authentication Cheat Sheet ("Account Lockout"): failures are counted,
per account and per client address; past a few failures an account slows down with
a doubling delay instead of locking for a whole window. The rules:

- **Failures, not attempts.** Each attempt is counted when it is let through (so a
  burst of parallel guesses cannot all slip past the count) and given back when the
  password was right. An attempt refused here is not counted.
- **Per address:** more than ``address_failures`` failures within ``window_s`` and
  the address is refused until the window ends, whatever email it tries.
- **Per account:** its failures are counted together, from every address; past
  ``free_failures`` the account takes one attempt per 1 s, 2 s, 4 s … up to
  ``max_delay_s`` — through two gates that wait separately: one for addresses that
  have already failed on this account, one for addresses that have not (the owner
  on their phone, most of the time). A noisy address therefore slows only the
  failing gate, never the owner's sign-in from elsewhere; guessing from many fresh
  addresses slows the fresh gate too, so the owner waits at most ``max_delay_s``.
  Each gate lets at most one guess per ``max_delay_s`` through once slowed.
- Failures on an account are forgotten ``memory_s`` after the last one; a right
  password forgets that address's failures on the account.

The clock is passed in (``now``, seconds; the endpoints read ``now()``, which tests
replace); the counters live in a ``RateLimiter``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from shop.accounts.service import normalize_email
from shop.errors import RateLimited
from shop.i18n import _l
from shop.ratelimit import RateLimiter

log = logging.getLogger(__name__)


def now() -> float:
    """The time the sign-in rules read, in seconds."""
    return time.time()


@dataclass(frozen=True, slots=True)
class SignInRules:
    free_failures: int  #: per account, before it slows down
    address_failures: int  #: per client address and window
    window_s: int
    max_delay_s: int
    memory_s: int = 900

    @classmethod
    def from_config(cls, config: Any) -> SignInRules:
        per_account = config["LOGIN_RATE_LIMIT"]
        return cls(
            free_failures=per_account,
            address_failures=10 * per_account,
            window_s=config["LOGIN_RATE_WINDOW_S"],
            max_delay_s=config["LOGIN_DELAY_MAX_S"],
        )


@dataclass(frozen=True, slots=True)
class SignInAttempt:
    """An attempt let through: counted as a failure until ``succeeded`` says otherwise."""

    limiter: RateLimiter
    rules: SignInRules
    now: float
    address_key: str
    account_key: str
    gate: str
    pair_key: str

    def failed(self) -> None:
        # from now on this address queues with the failing ones for this account
        self.limiter.add(self.pair_key, 1, self.rules.memory_s)

    def succeeded(self) -> None:
        self.limiter.add(self.address_key, -1, self.rules.window_s)
        self.limiter.refund(self.account_key, self.gate, now=self.now)
        self.limiter.delete(self.pair_key)


def _account(email: str) -> str:
    """A short digest: the counters' keys carry no email address."""
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()[:32]


def begin_sign_in(
    limiter: RateLimiter, rules: SignInRules, *, email: str, address: str, now: float
) -> SignInAttempt:
    """Let one sign-in attempt through, or raise RateLimited (with the seconds to wait)."""
    account = _account(email)
    address_key = f"signin:addr:{address}:{int(now // rules.window_s)}"
    failures = limiter.add(address_key, 1, rules.window_s)
    if failures > rules.address_failures:
        limiter.add(address_key, -1, rules.window_s)
        wait = rules.window_s - now % rules.window_s
        raise RateLimited(
            _l("Too many failed sign-ins from this address; try again later."),
            retry_after_s=math.ceil(wait),
        )
    if failures == rules.address_failures:
        log.warning("sign-in: address %s reached %d failures", address, failures)

    pair_key = f"signin:pair:{account}:{address}"
    gate = "failing" if limiter.get(pair_key) > 0 else "fresh"
    account_key = f"signin:account:{account}"
    wait = limiter.take_turn(
        account_key,
        gate,
        now=now,
        free=rules.free_failures,
        max_delay_s=rules.max_delay_s,
        ttl_s=rules.memory_s,
    )
    if wait > 0:
        limiter.add(address_key, -1, rules.window_s)  # refused here: not a failure
        raise RateLimited(
            _l("Too many failed sign-ins for this account; wait a moment and try again."),
            retry_after_s=math.ceil(wait),
        )
    return SignInAttempt(limiter, rules, now, address_key, account_key, gate, pair_key)
