"""Configuration: defaults (the embedded setup), then the environment, then overrides.

Read once, in the app factory. Every default runs on a fresh checkout with nothing
but Python: a SQLite file under ``instance/``, tasks run eagerly in-process, the
sandbox payment provider, in-process pub/sub and rate limits.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

INSTANCE_DIR = Path(os.environ.get("SHANHUO_INSTANCE", Path.cwd() / "instance"))


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return default if raw in (None, "") else int(raw)


def load(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the app's configuration as a plain dict."""
    env = os.environ.get
    instance = Path(env("SHANHUO_INSTANCE") or INSTANCE_DIR)
    config: dict[str, Any] = {
        "SHANHUO_ENV": env("SHANHUO_ENV", "development"),
        "SECRET_KEY": env("SECRET_KEY") or None,
        "INSTANCE_DIR": str(instance),
        "DATABASE_URL": env("DATABASE_URL") or f"sqlite:///{instance / 'shanhuo.sqlite3'}",
        "REDIS_URL": env("REDIS_URL") or None,
        "CELERY_BROKER_URL": env("CELERY_BROKER_URL") or None,
        "STRIPE_SECRET_KEY": env("STRIPE_SECRET_KEY") or None,
        "STRIPE_WEBHOOK_SECRET": env("STRIPE_WEBHOOK_SECRET") or None,
        "STRIPE_API_BASE": env("STRIPE_API_BASE") or None,
        #: the pages' Payment Element (with the secret key; without either, the sandbox)
        "STRIPE_PUBLISHABLE_KEY": env("STRIPE_PUBLISHABLE_KEY") or None,
        #: Stripe.js (localstripe serves a stand-in at {STRIPE_API_BASE}/js.stripe.com/v3/)
        "STRIPE_JS_URL": env("STRIPE_JS_URL", "https://js.stripe.com/v3/"),
        #: seconds per Stripe request (payments); two retries with the same idempotency key
        "STRIPE_TIMEOUT_S": _int("STRIPE_TIMEOUT_S", 20),
        "CURRENCY": env("CURRENCY", "cny"),
        "MEDIA_ROOT": env("MEDIA_ROOT") or str(instance / "media"),
        "MAX_CONTENT_LENGTH": _int("MAX_CONTENT_LENGTH", 15 * 1024 * 1024),
        #: media: uploads with more pixels are refused before decoding (decompression bombs)
        "MEDIA_MAX_PIXELS": _int("MEDIA_MAX_PIXELS", 40_000_000),
        #: media: where stored images are served from (a CDN in front, or this app's /media)
        "MEDIA_URL_BASE": env("MEDIA_URL_BASE") or "/media",
        #: packing slips: a CJK font file; unset → the first installed system CJK font
        "SLIP_FONT_PATH": env("SLIP_FONT_PATH") or None,
        "ORDER_PAYMENT_TIMEOUT_S": _int("ORDER_PAYMENT_TIMEOUT_S", 900),
        "CLAIM_LEASE_S": _int("CLAIM_LEASE_S", 1800),
        #: packing tasks one villager may hold at once
        "MAX_CLAIMS_PER_VILLAGER": _int("MAX_CLAIMS_PER_VILLAGER", 1),
        #: a packed weight further than this from the expected one is flagged for review,
        #: in basis points of the expected weight (500 = 5 %)
        "PACK_WEIGHT_TOLERANCE_BP": _int("PACK_WEIGHT_TOLERANCE_BP", 500),
        #: a parcel is due this long after payment; once due it goes before every batch
        "PARCEL_DUE_S": _int("PARCEL_DUE_S", 7200),
        #: where people open the site: the packing slip's QR code points at {this}/t/{code}
        "PUBLIC_BASE_URL": (env("PUBLIC_BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
        #: the piece rate (fen per unit packed) of a product created without one; only an
        #: admin sets a product's rate (README, "Configuration")
        "DEFAULT_PACKING_RATE_FEN": _int("DEFAULT_PACKING_RATE_FEN", 50),
        "TOKEN_TTL_S": _int("TOKEN_TTL_S", 30 * 24 * 3600),
        #: proxies in front that append to X-Forwarded-For/-Proto; 0 trusts no header
        "TRUSTED_PROXY_COUNT": _int("TRUSTED_PROXY_COUNT", 0),
        #: sign-in (shop.accounts.throttle): failures an account takes before it slows
        #: down; a client address may fail 10× that per window
        "LOGIN_RATE_LIMIT": _int("LOGIN_RATE_LIMIT", 5),
        "LOGIN_RATE_WINDOW_S": _int("LOGIN_RATE_WINDOW_S", 60),
        #: the longest wait a slowed-down account asks for (the delay doubles up to it)
        "LOGIN_DELAY_MAX_S": _int("LOGIN_DELAY_MAX_S", 60),
        #: registrations per client address and window (each costs a 32 MiB scrypt)
        "REGISTER_RATE_LIMIT": _int("REGISTER_RATE_LIMIT", 20),
        "REGISTER_RATE_WINDOW_S": _int("REGISTER_RATE_WINDOW_S", 600),
        #: scrypt cost; lowered only by the test suite to keep it fast
        "PASSWORD_SCRYPT_N": _int("PASSWORD_SCRYPT_N", 2**15),
        "SHOP_TIMEZONE": env("SHOP_TIMEZONE", "Asia/Shanghai"),
        #: live events: SSE heartbeat comment interval; a stream closes after this many
        #: seconds (EventSource reconnects with Last-Event-ID)
        "LIVE_EVENTS_HEARTBEAT_S": _int("LIVE_EVENTS_HEARTBEAT_S", 15),
        "LIVE_EVENTS_STREAM_S": _int("LIVE_EVENTS_STREAM_S", 600),
        #: open streams per process (each costs a queue and a greenlet, no connection),
        #: and per client address (viewers behind one carrier NAT share an address)
        "LIVE_EVENTS_MAX_STREAMS": _int("LIVE_EVENTS_MAX_STREAMS", 4000),
        "LIVE_EVENTS_MAX_STREAMS_PER_CLIENT": _int("LIVE_EVENTS_MAX_STREAMS_PER_CLIENT", 50),
        #: the stock view (shop/live/stock_view.py) trusts what it learned for this long
        "STOCK_VIEW_TTL_S": _int("STOCK_VIEW_TTL_S", 1),
        #: the token cache (shop/accounts/token_cache.py, with Redis only) keeps the caller
        #: the database gave for a token this long at most; revocations reach it within a
        #: second (announced through Redis, and polled from the database)
        "TOKEN_CACHE_S": _int("TOKEN_CACHE_S", 60),
        #: Celery on Redis: an unacknowledged task (its worker died) is redelivered after
        #: this (see shop/celery_app.py)
        "CELERY_VISIBILITY_TIMEOUT_S": _int("CELERY_VISIBILITY_TIMEOUT_S", 600),
        #: run every periodic task at this interval instead of its own (tests, demos)
        "BEAT_INTERVAL_S": _int("BEAT_INTERVAL_S", 0) or None,
        #: domain events' outbox (shop/core/events.py): an event sent but not done after
        #: OUTBOX_LEASE_S is sent again; a failing handler is retried after
        #: OUTBOX_RETRY_BASE_S, doubling up to OUTBOX_RETRY_MAX_S, and parked as dead
        #: after OUTBOX_MAX_ATTEMPTS failures
        "OUTBOX_LEASE_S": _int("OUTBOX_LEASE_S", 300),
        "OUTBOX_MAX_ATTEMPTS": _int("OUTBOX_MAX_ATTEMPTS", 10),
        "OUTBOX_RETRY_BASE_S": _int("OUTBOX_RETRY_BASE_S", 10),
        "OUTBOX_RETRY_MAX_S": _int("OUTBOX_RETRY_MAX_S", 3600),
        #: PostgreSQL: every wait is bounded, so a frozen or unreachable database costs a
        #: request seconds (then 503), never forever. Seconds to open a connection:
        "DB_CONNECT_TIMEOUT_S": _int("DB_CONNECT_TIMEOUT_S", 3),
        #: the server cancels a statement (or a lock wait) after this. The slowest
        #: legitimate statements of requests and tasks (a payout run, the expiry sweep)
        #: take well under a second; migrations run without this limit.
        "DB_STATEMENT_TIMEOUT_MS": _int("DB_STATEMENT_TIMEOUT_MS", 10_000),
        #: the server ends a wait for a row lock after this (0: only the statement
        #: timeout); gunicorn.conf.py sets 5000 for its gevent workers
        "DB_LOCK_TIMEOUT_MS": _int("DB_LOCK_TIMEOUT_MS", 0),
        #: seconds a request waits for a pooled connection when all are busy
        "DB_POOL_TIMEOUT_S": _int("DB_POOL_TIMEOUT_S", 5),
        #: connections each process keeps open, and how many more it may open for a
        #: burst (each closed again when it is returned to a full pool: under a steady
        #: load above the pool size that is a new connection per request, so the
        #: production config keeps a larger pool and no overflow; gunicorn.conf.py)
        "DB_POOL_SIZE": _int("DB_POOL_SIZE", 5),
        "DB_MAX_OVERFLOW": _int("DB_MAX_OVERFLOW", 10),
        #: contracts: a payout claimed for sending this long ago (sender died) is retried
        "PAYOUT_SENDING_LEASE_S": _int("PAYOUT_SENDING_LEASE_S", 900),
    }
    config.update(overrides or {})

    if not config["SECRET_KEY"]:
        if config["SHANHUO_ENV"] == "production":
            raise RuntimeError("SECRET_KEY must be set when SHANHUO_ENV=production")
        config["SECRET_KEY"] = secrets.token_hex(32)
    if config["DEFAULT_PACKING_RATE_FEN"] < 0:
        raise RuntimeError("DEFAULT_PACKING_RATE_FEN is a wage: 0 fen or more")
    if config["DATABASE_URL"].startswith("postgres://"):
        config["DATABASE_URL"] = "postgresql+psycopg://" + config["DATABASE_URL"][11:]
    if config["DATABASE_URL"].startswith("postgresql://"):
        config["DATABASE_URL"] = "postgresql+psycopg://" + config["DATABASE_URL"][13:]
    config["SQLALCHEMY_DATABASE_URI"] = config["DATABASE_URL"]
    return config
