"""PostgreSQL faults degrade to 503, never 500 and never a hang.

On a PostgreSQL cluster of the tests' own, behind a proxy that cuts, refuses, freezes
and loses replies (``tests/support/faults.py``); the app's timeouts are set short.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import flask_migrate
import psycopg
import pytest
from flask import Flask
from sqlalchemy import func, select

from fulfillment import service as workshops
from fulfillment.models import PackingTask
from shop.accounts import service as accounts
from shop.app import create_app
from shop.catalog import service as catalog
from shop.core import events
from shop.db import db, reply_timeout_s, utcnow
from shop.orders import service as orders
from shop.orders.models import Order
from shop.web.auth import SESSION_USER
from tests.shop.conftest import SHIPPING
from tests.support.faults import PgProxy, PostgresServer

pytestmark = pytest.mark.postgres

CONNECT_TIMEOUT_S = 2  # libpq's smallest
STATEMENT_TIMEOUT_MS = 1000


@pytest.fixture(scope="module")
def faulty_app(
    postgres_server: PostgresServer, pg_proxy: PgProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    instance = tmp_path_factory.mktemp("faults-instance")
    app = create_app(
        {
            "DATABASE_URL": postgres_server.url(pg_proxy.port),
            "SHANHUO_INSTANCE": str(instance),
            "INSTANCE_DIR": str(instance),
            "MEDIA_ROOT": str(instance / "media"),
            "SECRET_KEY": "test-secret",
            "PASSWORD_SCRYPT_N": 2**10,
            "REDIS_URL": None,
            "CELERY_BROKER_URL": None,
            "STRIPE_SECRET_KEY": None,
            "STRIPE_WEBHOOK_SECRET": None,
            "DB_CONNECT_TIMEOUT_S": CONNECT_TIMEOUT_S,
            "DB_STATEMENT_TIMEOUT_MS": STATEMENT_TIMEOUT_MS,
            "DB_POOL_TIMEOUT_S": 1,
        }
    )
    app.config["TESTING"] = True
    with app.app_context():
        flask_migrate.upgrade(revision="heads")
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def proxy(faulty_app: Flask, pg_proxy: PgProxy) -> Iterator[PgProxy]:
    """The proxy, healed before and after the test; the pool starts empty."""
    pg_proxy.heal()
    with faulty_app.app_context():
        db.engine.dispose()
    yield pg_proxy
    pg_proxy.heal()
    with faulty_app.app_context():
        db.engine.dispose()


def products(app: Flask) -> Any:
    return app.test_client().get("/api/v1/products")


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["type"] == "unavailable"
    assert int(response.headers["Retry-After"]) > 0


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def eventually_ok(app: Flask, tries: int = 5) -> bool:
    for _ in range(tries):
        if products(app).status_code == 200:
            return True
        time.sleep(0.2)
    return False


def test_a_connection_cut_mid_request_answers_503_with_retry_after_and_logs_no_error(
    faulty_app: Flask, proxy: PgProxy, caplog: pytest.LogCaptureFixture
) -> None:
    assert products(faulty_app).status_code == 200  # one connection in the pool
    proxy.freeze()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(products, faulty_app)
        assert proxy.held.wait(5)  # the request's first statement is on its way
        proxy.cut()
        proxy.thaw()
        response = pending.result(10)

    assert_unavailable(response)
    assert "nothing was changed" in response.json["detail"]
    assert errors_logged(caplog) == []
    assert products(faulty_app).status_code == 200


def test_a_stopped_database_answers_503_and_the_app_recovers_when_it_is_back(
    faulty_app: Flask,
    proxy: PgProxy,
    postgres_server: PostgresServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert products(faulty_app).status_code == 200
    postgres_server.stop()
    try:
        on_a_pooled_connection = products(faulty_app)
        on_a_new_connection = products(faulty_app)
    finally:
        postgres_server.start()

    assert_unavailable(on_a_pooled_connection)
    assert_unavailable(on_a_new_connection)
    assert errors_logged(caplog) == []
    assert eventually_ok(faulty_app)


def test_a_refused_connection_answers_503_at_once_and_readyz_takes_the_node_out(
    faulty_app: Flask, proxy: PgProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.refuse()

    response, elapsed = timed(lambda: products(faulty_app))
    ready = faulty_app.test_client().get("/readyz")

    assert_unavailable(response)
    assert elapsed < 1.5  # not a connect timeout: refused at once
    assert ready.status_code == 503
    assert ready.json["checks"]["database"].startswith("error")
    assert errors_logged(caplog) == []
    proxy.accept()
    assert products(faulty_app).status_code == 200


def test_a_page_answers_an_html_503_with_retry_after_when_the_database_refuses(
    faulty_app: Flask, proxy: PgProxy, caplog: pytest.LogCaptureFixture
) -> None:
    client = faulty_app.test_client()
    with client.session_transaction() as cookie:
        cookie[SESSION_USER] = 1  # signed in: the page looks the user up
    proxy.refuse()

    response = client.get("/")

    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert "暂时无法服务" in response.get_data(as_text=True)  # Chinese, the default
    assert int(response.headers["Retry-After"]) > 0
    assert errors_logged(caplog) == []


def test_a_frozen_database_costs_a_request_seconds_then_503_while_healthz_answers_at_once(
    faulty_app: Flask, proxy: PgProxy, caplog: pytest.LogCaptureFixture
) -> None:
    bound_s = reply_timeout_s(faulty_app.config)  # the longest single wait: 3 s here
    assert products(faulty_app).status_code == 200  # one connection in the pool
    proxy.freeze()
    with ThreadPoolExecutor(3) as pool:
        try:
            # One takes the pooled connection and waits for a reply; the next opens a
            # connection that never completes its startup; /readyz asks the database.
            on_the_pooled = pool.submit(timed, lambda: products(faulty_app))
            assert proxy.held.wait(5)
            on_a_new = pool.submit(timed, lambda: products(faulty_app))
            ready = pool.submit(timed, lambda: faulty_app.test_client().get("/readyz"))
            health, health_s = timed(lambda: faulty_app.test_client().get("/healthz"))
            results = [f.result(5 * bound_s) for f in (on_the_pooled, on_a_new, ready)]
        finally:
            proxy.thaw()  # (before the pool waits for its threads: a hang fails, not blocks)

    assert health.status_code == 200 and health_s < 1
    for response, elapsed in results[:2]:
        assert_unavailable(response)
        assert elapsed < 3 * bound_s
    ready_response, ready_s = results[2]
    assert ready_response.status_code == 503 and ready_s < 3 * bound_s
    assert errors_logged(caplog) == []
    assert eventually_ok(faulty_app)


def test_a_statement_stuck_behind_a_lock_is_cancelled_by_the_statement_timeout_with_503(
    faulty_app: Flask, proxy: PgProxy, postgres_server: PostgresServer
) -> None:
    locker = psycopg.connect(postgres_server.url().replace("+psycopg", ""))
    try:
        locker.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
        response, elapsed = timed(lambda: products(faulty_app))
    finally:
        locker.rollback()
        locker.close()

    assert_unavailable(response)
    assert STATEMENT_TIMEOUT_MS / 1000 <= elapsed < 3 * STATEMENT_TIMEOUT_MS / 1000
    assert products(faulty_app).status_code == 200


def test_a_pool_with_every_connection_busy_answers_503_after_the_pool_timeout(
    faulty_app: Flask, proxy: PgProxy
) -> None:
    with faulty_app.app_context():
        engine = db.engine
        capacity = engine.pool.size() + engine.pool._max_overflow  # type: ignore[attr-defined]
        held = [engine.connect() for _ in range(capacity)]
    try:
        response, elapsed = timed(lambda: products(faulty_app))
    finally:
        for connection in held:
            connection.close()

    assert_unavailable(response)
    assert elapsed < 3 * faulty_app.config["DB_POOL_TIMEOUT_S"]
    assert products(faulty_app).status_code == 200


def test_a_payment_whose_commit_reply_was_lost_answers_unknown_retry_and_is_in_fact_paid(
    faulty_app: Flask, proxy: PgProxy, caplog: pytest.LogCaptureFixture
) -> None:
    with faulty_app.app_context():
        buyer = accounts.create_user(
            db.session,
            email="buyer-lost-commit@test.shanhuo",
            password="correct horse battery",
            display_name="王女士",
            roles=("buyer",),
            scrypt_n=2**10,
        )
        token, _ = accounts.issue_token(db.session, buyer, ttl_s=3600)
        product = catalog.create_product(
            db.session,
            sku="SKU-LOST-COMMIT",
            name="香菇 Shiitake",
            category="mushroom",
            unit_label="500 g bag",
            unit_weight_g=500,
            price_fen=3990,
            stock=10,
            packing_rate_fen=50,
        )
        db.session.flush()  # the product's id, for the order line
        workshops.create_workshop(db.session, name="香信谷共富工坊", village="Xiangxingu")
        order, _ = orders.place_order(
            db.session,
            buyer_id=buyer.id,
            lines=[{"product_id": product.id, "qty": 2}],
            shipping=SHIPPING,
            idempotency_key="lost-commit",
            payment_timeout_s=900,
        )
        db.session.commit()
        order_id = order.id
    client = faulty_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    payment = client.post(f"/api/v1/orders/{order_id}/payment", headers=headers).json
    succeed = f"/api/v1/payments/sandbox/{payment['payment_id']}/succeed"

    proxy.lose_next_commit_reply()
    response = client.post(succeed)

    assert proxy.commit_lost.is_set()
    assert_unavailable(response)
    assert "unknown whether the change was saved" in response.json["detail"]
    assert errors_logged(caplog) == []
    with faulty_app.app_context():
        assert db.session.scalar(select(Order.state).where(Order.id == order_id)) == "paid"
    # The event was committed with the payment; no relay ran (the commit "failed"), so
    # the outbox's sweep hands it on once its lease has passed.
    after_lease = utcnow() + timedelta(seconds=faulty_app.config["OUTBOX_LEASE_S"] + 1)
    with faulty_app.app_context():
        events.sweep(now=after_lease)
        assert packing_tasks_of(order_id) == 1

    retried = client.post(succeed)
    assert retried.status_code == 200, retried.json
    assert retried.json["order_state"] == "paid"
    with faulty_app.app_context():
        events.sweep(now=after_lease)
        assert packing_tasks_of(order_id) == 1


def packing_tasks_of(order_id: int) -> int:
    tasks = select(func.count()).select_from(PackingTask).where(PackingTask.order_id == order_id)
    return int(db.session.scalar(tasks) or 0)
