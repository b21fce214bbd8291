"""Fault tests: real PostgreSQL and Redis servers of the tests' own, stopped, frozen and
restarted on purpose (``tests/support/faults.py``)."""

from tests.support.faults import pg_proxy, postgres_server, redis_server  # noqa: F401
