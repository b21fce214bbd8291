"""The application factory and the composition root: the one place that knows every package."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import redis
from flask import Flask
from flask_migrate import Migrate

from shop import config as config_module
from shop import errors
from shop.api import OPENAPI_CONFIG, Api, install_converters, refuse_nul_characters
from shop.celery_app import init_celery
from shop.db import bound_replies, db, engine_options, ping_idle_connections, reply_timeout_s
from shop.ratelimit import MemoryRateLimiter, RedisRateLimiter

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")

migrate = Migrate()


def _blueprints() -> list[Any]:
    """Every package's blueprint. Imported here, so no package imports another's API."""
    from contracts.api import blp as contracts
    from contracts.prices_api import blp as market_prices
    from fulfillment.api import blp as fulfillment
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
    ]


def _page_blueprints() -> list[Any]:
    """The server-rendered pages (plain Flask blueprints, outside the OpenAPI document)."""
    from contracts.pages import bp as farmer_pages
    from fulfillment.pages import bp as workshop_pages
    from shop.live.pages import bp as live_pages
    from shop.web.views import bp as web

    return [web, workshop_pages, farmer_pages, live_pages]


def demo_seeders() -> list[Any]:
    """Each package's ``seed_demo(session)``, in dependency order, for ``shanhuo seed-demo``."""
    from contracts.demo import seed_demo as contracts
    from fulfillment.demo import seed_demo as fulfillment
    from shop.accounts.demo import seed_demo as accounts
    from shop.catalog.images import seed_demo as product_images
    from shop.live.demo import seed_demo as shop_live

    return [accounts, shop_live, contracts, fulfillment, product_images]


def _subscribe_domain_events() -> None:
    """Who reacts to the shop's domain events; handlers send Celery tasks by name."""
    from fulfillment.tasks import on_order_gone, on_order_paid
    from shop import events

    events.subscribe("order.paid", on_order_paid)
    events.subscribe("order.cancelled", on_order_gone)
    events.subscribe("order.refunded", on_order_gone)


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    config = config_module.load(overrides)
    app = Flask("shop", instance_path=config["INSTANCE_DIR"])
    app.config.update(config)
    app.config.update(OPENAPI_CONFIG)
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(config)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    os.makedirs(app.instance_path, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    db.init_app(app)
    if not config["DATABASE_URL"].startswith("sqlite"):
        with app.app_context():
            ping_idle_connections(db.engine)
            bound_replies(db.engine, reply_timeout_s(config))
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, compare_type=True)
    init_celery(app)

    if app.config["REDIS_URL"]:
        client = redis.Redis.from_url(
            app.config["REDIS_URL"], socket_timeout=5, socket_connect_timeout=5
        )
        app.extensions["shanhuo.redis"] = client
        app.extensions["shanhuo.ratelimiter"] = RedisRateLimiter(client)
    else:
        app.extensions["shanhuo.ratelimiter"] = MemoryRateLimiter()

    api = Api(app)
    install_converters(app, api)
    app.before_request(refuse_nul_characters)
    app.extensions["shanhuo.api"] = api
    for blueprint in _blueprints():
        api.register_blueprint(blueprint)
    _subscribe_domain_events()
    _register_docs(app)
    errors.register(app)
    from shop.web import init_pages

    init_pages(app, _page_blueprints())

    from media.cli import register_commands as register_media_commands
    from shop.cli import register_commands

    register_commands(app)
    register_media_commands(app)
    return app


def _register_docs(app: Flask) -> None:
    from shop.auth import public

    @app.get("/api/docs")
    @public
    def api_docs() -> tuple[str, int, dict[str, str]]:
        return DOCS_PAGE, 200, {"Content-Type": "text/html; charset=utf-8"}


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shanhuo API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head><body><div id="ui"><p>The OpenAPI document is at
<a href="/api/openapi.json">/api/openapi.json</a>.</p></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>
if (window.SwaggerUIBundle) SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#ui"});
</script>
</body></html>
"""
