"""Sign-in throttling that cannot be turned against the account's owner
(``shop.accounts.throttle``), on the real counters with the clock passed in."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
import redis

from shop.accounts.throttle import SignInRules, begin_sign_in
from shop.errors import RateLimited
from shop.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter

_numbers = itertools.count(1)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def limiter(request: pytest.FixtureRequest) -> Iterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    yield RedisRateLimiter(client)
    client.close()


def an_email() -> str:
    return f"throttled{next(_numbers)}-{os.getpid()}@test.shanhuo"


def an_address() -> str:
    n = next(_numbers)
    return f"198.18.{n // 250}.{n % 250 + 1}"


RULES = SignInRules(free_failures=5, address_failures=50, window_s=60, max_delay_s=8)


def attempt_fails(limiter: RateLimiter, rules: SignInRules, email: str, address: str, now: float):
    """One wrong password: True if it was let through (and failed), False if refused."""
    try:
        attempt = begin_sign_in(limiter, rules, email=email, address=address, now=now)
    except RateLimited:
        return False
    attempt.failed()
    return True


def test_right_passwords_are_never_counted_as_failures(limiter):
    email, address = an_email(), an_address()
    for _ in range(100):  # far past every limit, all at the same instant
        begin_sign_in(limiter, RULES, email=email, address=address, now=1000.0).succeeded()


def test_after_five_failures_an_account_takes_one_attempt_per_doubling_delay_up_to_a_cap(
    limiter,
):
    email, address = an_email(), an_address()
    now = 1000.0
    assert [attempt_fails(limiter, RULES, email, address, now) for _ in range(5)] == [True] * 5
    waits = []
    for _ in range(6):
        with pytest.raises(RateLimited) as refused:
            begin_sign_in(limiter, RULES, email=email, address=address, now=now)
        waits.append(refused.value.retry_after_s)
        assert refused.value.headers == {"Retry-After": str(refused.value.retry_after_s)}
        now += refused.value.retry_after_s
        assert attempt_fails(limiter, RULES, email, address, now)
    assert waits == [1, 2, 4, 8, 8, 8]


def test_the_owner_from_a_fresh_address_is_not_refused_after_another_address_failed_many_times(
    limiter,
):
    email, noisy, owner = an_email(), an_address(), an_address()
    now = 1000.0
    let_through = 0
    for _ in range(300):  # five minutes of one guess a second
        let_through += attempt_fails(limiter, RULES, email, noisy, now)
        now += 1
    assert let_through < 5 + 300 // RULES.max_delay_s + 5  # the noisy address was slowed down
    attempt = begin_sign_in(limiter, RULES, email=email, address=owner, now=now)
    attempt.succeeded()


def test_guessing_from_many_fresh_addresses_delays_the_owner_at_most_the_cap(limiter):
    email, owner = an_email(), an_address()
    now = 1000.0
    let_through = 0
    for _ in range(200):  # a botnet: every guess from a new address
        let_through += attempt_fails(limiter, RULES, email, an_address(), now)
        now += 0.5
    # one guess per max_delay_s once the account is slowed down
    assert let_through <= 5 + 100 // RULES.max_delay_s + 4
    try:
        begin_sign_in(limiter, RULES, email=email, address=owner, now=now).succeeded()
    except RateLimited as refused:
        assert refused.retry_after_s <= RULES.max_delay_s
        later = now + refused.retry_after_s
        begin_sign_in(limiter, RULES, email=email, address=owner, now=later).succeeded()


def test_an_address_over_its_failures_is_refused_for_every_email_until_the_window_ends(limiter):
    rules = SignInRules(free_failures=100, address_failures=10, window_s=60, max_delay_s=8)
    noisy, other = an_address(), an_address()
    now = 6000.0  # the start of a window
    assert all(attempt_fails(limiter, rules, an_email(), noisy, now + n) for n in range(10))
    with pytest.raises(RateLimited) as refused:
        begin_sign_in(limiter, rules, email=an_email(), address=noisy, now=now + 10)
    assert refused.value.retry_after_s == 50  # the rest of the window
    assert attempt_fails(limiter, rules, an_email(), other, now + 10)
    assert attempt_fails(limiter, rules, an_email(), noisy, now + 60)


def test_a_right_password_gives_its_attempt_back_to_the_address(limiter):
    rules = SignInRules(free_failures=100, address_failures=3, window_s=60, max_delay_s=8)
    address, now = an_address(), 6000.0
    assert attempt_fails(limiter, rules, an_email(), address, now)
    assert attempt_fails(limiter, rules, an_email(), address, now)
    for _ in range(10):
        begin_sign_in(limiter, rules, email=an_email(), address=address, now=now).succeeded()
    assert attempt_fails(limiter, rules, an_email(), address, now)
    assert not attempt_fails(limiter, rules, an_email(), address, now)
