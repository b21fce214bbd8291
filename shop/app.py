"""The application factory and the composition root: the one place that knows every package."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import redis
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask_migrate import Migrate
from itsdangerous import URLSafeTimedSerializer

from shop import config as config_module
from shop import errors, i18n
from shop.api import OPENAPI_CONFIG, Api, install_converters
from shop.celery_app import init_celery
from shop.db import bound_replies, db, engine_options, ping_idle_connections, reply_timeout_s
from shop.docs import register_docs
from shop.headers import protect_response
from shop.proxy import trust_proxies
from shop.ratelimit import FailOpenLimiter, MemoryRateLimiter, RedisRateLimiter
from shop.request_guard import refuse_unreadable_input

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")

migrate = Migrate()


def _blueprints() -> list[Any]:
    """Every package's blueprint. Imported here, so no package imports another's API."""
    from contracts.api import blp as contracts
    from contracts.prices_api import blp as market_prices
    from contracts.trace_api import blp as trace
    from fulfillment.api import blp as fulfillment
    from fulfillment.impact_api import blp as impact
    from fulfillment.skills_api import blp as skills
    from fulfillment.work_api import blp as work_orders
    from media.api import blp as media
    from shop.accounts.api import blp as accounts
    from shop.catalog.api import blp as catalog
    from shop.health import blp as health
    from shop.live.api import blp as live
    from shop.orders.api import blp as orders
    from shop.payments.api import blp as payments

    return [
        health,
        accounts,
        catalog,
        live,
        orders,
        payments,
        media,
        contracts,
        market_prices,
        fulfillment,
        skills,
        work_orders,
        impact,
        trace,
    ]


def _page_blueprints() -> list[Any]:
    """The server-rendered pages (plain Flask blueprints, outside the OpenAPI document)."""
    from console import bp as console
    from contracts.pages import bp as farmer_pages
    from fulfillment.lead_pages import bp as lead_pages
    from fulfillment.pages import bp as workshop_pages
    from shop.live.pages import bp as live_pages
    from shop.web.views import bp as web

    return [web, workshop_pages, lead_pages, farmer_pages, live_pages, console]


def demo_seeders() -> list[Any]:
    """Each package's ``seed_demo(session)``, in dependency order, for ``shanhuo seed-demo``."""
    from contracts.demo import seed_demo as contracts
    from contracts.trace_demo import seed_demo as trace
    from fulfillment.demo import seed_demo as fulfillment
    from shop.accounts.demo import seed_demo as accounts
    from shop.catalog.images import seed_demo as product_images
    from shop.live.demo import seed_demo as shop_live

    return [accounts, shop_live, contracts, fulfillment, trace, product_images]


def _subscribe_domain_events() -> None:
    """Who reacts to the shop's domain events, by stable names (outbox rows carry them)."""
    from fulfillment.tasks import (
        CREATE_PACKING_TASK,
        DROP_PACKING_TASK,
        on_order_gone,
        on_order_paid,
    )
    from shop.core import events

    events.subscribe("order.paid", on_order_paid, name=CREATE_PACKING_TASK)
    events.subscribe("order.cancelled", on_order_gone, name=DROP_PACKING_TASK)
    events.subscribe("order.refunded", on_order_gone, name=DROP_PACKING_TASK)


def _listen_to_redis(app: Flask, client: redis.Redis) -> None:
    """The process's one Redis subscription and what listens to it: viewers' streams,
    the stock view and the token cache (it starts on first use, in the worker)."""
    from shop.accounts.token_cache import install_token_cache
    from shop.core.live_bus import RedisBus, redis_listener
    from shop.live.stock_view import install_stock_view

    listener = redis_listener(app)
    app.extensions["shanhuo.live_bus"] = RedisBus(client, listener)
    install_stock_view(app, listener, client)
    install_token_cache(app, listener, client)


class _CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signer built once per key rather than
    on every request (every API call opens the session, cookie or not)."""

    _built: tuple[Any, URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        if self._built is None or self._built[0] != keys:
            self._built = (keys, super().get_signing_serializer(app))
        return self._built[1]


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    config = config_module.load(overrides)
    app = Flask("shop", instance_path=config["INSTANCE_DIR"])
    app.session_interface = _CookieSessions()
    app.config.update(config)
    app.config.update(OPENAPI_CONFIG)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(config)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    os.makedirs(app.instance_path, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    i18n.init_app(app)
    db.init_app(app)
    if not config["DATABASE_URL"].startswith("sqlite"):
        with app.app_context():
            ping_idle_connections(db.engine)
            bound_replies(db.engine, reply_timeout_s(config))
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, compare_type=True)
    init_celery(app)

    trust_proxies(app)
    if app.config["REDIS_URL"]:
        # A blocking pool: under gevent thousands of greenlets may want Redis at once
        # (viewers arriving, orders publishing); past 100 connections they wait their
        # turn (up to 5 s) instead of failing with "Too many connections".
        pool = redis.BlockingConnectionPool.from_url(
            app.config["REDIS_URL"],
            max_connections=100,
            timeout=5,
            socket_timeout=5,
            socket_connect_timeout=5,
        )
        client = redis.Redis(connection_pool=pool)
        app.extensions["shanhuo.redis"] = client
        app.extensions["shanhuo.ratelimiter"] = FailOpenLimiter(
            RedisRateLimiter(client), MemoryRateLimiter()
        )
        _listen_to_redis(app, client)
    else:
        app.extensions["shanhuo.ratelimiter"] = MemoryRateLimiter()

    api = Api(app)
    install_converters(app, api)
    app.before_request(refuse_unreadable_input)
    app.extensions["shanhuo.api"] = api
    for blueprint in _blueprints():
        api.register_blueprint(blueprint)
    _subscribe_domain_events()
    register_docs(app)
    app.after_request(protect_response)
    errors.register(app)
    from shop.web import init_pages

    init_pages(app, _page_blueprints())

    from media.cli import register_commands as register_media_commands
    from shop.cli import register_commands

    register_commands(app)
    register_media_commands(app)
    return app
