"""Benchmark: the packing queue under load, over HTTP, under gunicorn, on PostgreSQL.

    createdb -h 127.0.0.1 -U postgres shanhuo_bench
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/shanhuo_bench \\
        .venv/bin/python bench/claims.py

Resets the database (its name must contain "bench"), migrates, queues 10,000 paid
orders' packing tasks at one workshop, starts gunicorn, then from one client process:

1. 32 threads GET /healthz for a few seconds: the ceiling of this client and server;
2. 32 threads POST /floor/write (`bench/floor.py`) for as long: the floor of one bare
   write transaction on this machine;
3. 32 villagers, one thread each, loop claim → complete until the queue is empty.

The server is the production config (`gunicorn -c gunicorn.conf.py`), with Redis when
REDIS_URL is set (the token cache). Prints claims/s, p50/p99 claim latency, double
claims (must be 0: every task is claimed by exactly one villager and paid exactly
once), claims/s as a share of the ceiling, and claim+complete pairs against two write
transactions (half the write floor; target ≥ 70 %).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import flask_migrate
import requests
from flask import Flask
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fulfillment import service  # noqa: E402
from fulfillment.models import EarningEntry, PackingTask, PackingTaskLine, TaskState  # noqa: E402
from shop.accounts import service as accounts  # noqa: E402
from shop.app import create_app  # noqa: E402
from shop.catalog import service as catalog  # noqa: E402
from shop.db import db, utcnow  # noqa: E402
from shop.orders.models import Order, OrderLine  # noqa: E402


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--villagers", type=int, default=32)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--port", type=int, default=5077)
    parser.add_argument("--healthz-seconds", type=float, default=8.0)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    return parser.parse_args()


def seed(app: Flask, tasks: int, villagers: int) -> tuple[int, list[str]]:
    """Fresh schema, one workshop, ``villagers`` members with tokens, ``tasks`` queued
    tasks of paid orders (inserted in bulk: the benchmark is about claiming them)."""
    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        flask_migrate.upgrade(revision="heads")
        session = db.session
        workshop = service.create_workshop(session, name="香信谷 Xiangxingu", village="竹口镇")
        product = catalog.create_product(
            session,
            sku="BENCH-SHIITAKE",
            name="香菇 Shiitake",
            category="mushroom",
            unit_label="500 g bag",
            unit_weight_g=500,
            price_fen=3990,
            stock=0,
            packing_rate_fen=40,
        )
        buyer = accounts.create_user(
            session,
            email="bench-buyer@bench.shanhuo",
            password="bench-password",
            display_name="buyer",
            roles=["buyer"],
            scrypt_n=2**10,
        )
        tokens = []
        for n in range(villagers):
            user = accounts.create_user(
                session,
                email=f"bench-villager-{n}@bench.shanhuo",
                password="bench-password",
                display_name=f"villager {n}",
                roles=["villager"],
                scrypt_n=2**10,
            )
            service.add_member(session, workshop.id, user_id=user.id, lead=False)
            token, _ = accounts.issue_token(session, user, ttl_s=3600)
            tokens.append(token)
        session.commit()

        now = utcnow()
        order_ids = list(
            session.scalars(
                insert(Order).returning(Order.id, sort_by_parameter_order=True),
                [
                    {
                        "buyer_id": buyer.id,
                        "state": "paid",
                        "total_fen": 2 * 3990,
                        "idempotency_key": f"bench-{i}",
                        "request_hash": "0" * 64,
                        "ship_name": "王女士",
                        "ship_phone": "+86 138 0000 0000",
                        "ship_address": "庆元县 松源街道 1 号",
                        "ship_region": "Zhejiang",
                        "created_at": now,
                        "expires_at": now + timedelta(minutes=15),
                        "paid_at": now,
                    }
                    for i in range(tasks)
                ],
            )
        )
        session.execute(
            insert(OrderLine),
            [
                {"order_id": o, "product_id": product.id, "qty": 2, "unit_price_fen": 3990}
                for o in order_ids
            ],
        )
        task_ids = list(
            session.scalars(
                insert(PackingTask).returning(PackingTask.id, sort_by_parameter_order=True),
                [
                    {
                        "order_id": o,
                        "workshop_id": workshop.id,
                        "state": TaskState.QUEUED.value,
                        "piece_rate_fen": 80,
                        "expected_weight_g": 1000,
                        "paid_at": now,
                        "created_at": now,
                        "due_at": now,  # a parcel is due PARCEL_DUE_S after payment
                        "needs_review": False,
                    }
                    for o in order_ids
                ],
            )
        )
        session.execute(
            insert(PackingTaskLine),
            [
                {
                    "task_id": t,
                    "product_id": product.id,
                    "name": product.name,
                    "unit_label": product.unit_label,
                    "qty": 2,
                    "unit_weight_g": 500,
                    "packing_rate_fen": 40,
                }
                for t in task_ids
            ],
        )
        session.commit()
        session.execute(text("ANALYZE"))
        session.commit()
        workshop_id = workshop.id
        db.engine.dispose()
    return workshop_id, tokens


def start_gunicorn(url: str, args: argparse.Namespace, instance: str) -> subprocess.Popen[bytes]:
    sys.path.insert(0, str(REPO / "bench"))
    from floor import start_server

    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": "bench",
        "SHANHUO_INSTANCE": instance,
    }
    env.pop("CELERY_BROKER_URL", None)
    server = start_server(env, args.port, args.workers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{args.port}/healthz", timeout=5).ok:
                time.sleep(2)  # let every worker finish booting
                return server
        except requests.RequestException:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not start")


def healthz_ceiling(base: str, clients: int, seconds: float, path: str = "/healthz") -> float:
    """Requests/s of ``clients`` threads on ``path`` (GET /healthz, or POST /floor/…)."""
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        with requests.Session() as http:
            while time.monotonic() < stop:
                if path == "/healthz":
                    http.get(f"{base}{path}").raise_for_status()
                else:
                    http.post(f"{base}{path}", json={}).raise_for_status()
                counts[i] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def claim_loop(
    base: str, workshop_id: int, tokens: list[str], max_seconds: float
) -> dict[str, Any]:
    latencies: list[float] = []
    claimed: list[int] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(len(tokens))
    stop = time.monotonic() + max_seconds

    def run(token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        mine: list[tuple[float, int]] = []
        with requests.Session() as http:
            barrier.wait()
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                response = http.post(
                    f"{base}/api/v1/workshops/{workshop_id}/tasks/claim", headers=headers
                )
                elapsed = time.perf_counter() - t0
                if response.status_code == 204:
                    break
                if response.status_code != 200:
                    with lock:
                        errors[f"claim {response.status_code}"] += 1
                        if errors.total() > 100:
                            raise RuntimeError(f"too many errors: {response.text[:300]}")
                    continue
                task_id = response.json()["id"]
                mine.append((elapsed, task_id))
                done = http.post(
                    f"{base}/api/v1/packing-tasks/{task_id}/complete",
                    json={"packed_weight_g": 1000},
                    headers=headers,
                )
                if done.status_code != 200:
                    with lock:
                        errors[f"complete {done.status_code}"] += 1
        with lock:
            latencies.extend(e for e, _ in mine)
            claimed.extend(t for _, t in mine)

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(t,)) for t in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "seconds": time.monotonic() - started,
        "latencies": latencies,
        "claimed": claimed,
        "errors": errors,
    }


def check_database(app: Flask) -> dict[str, int]:
    with app.app_context():
        session = db.session
        packed = session.scalar(select(func.count()).where(PackingTask.state == TaskState.PACKED))
        entries = session.scalar(select(func.count()).select_from(EarningEntry))
        paid_twice = session.scalar(
            select(func.count()).select_from(
                select(EarningEntry.task_id)
                .where(EarningEntry.task_id.is_not(None))
                .group_by(EarningEntry.task_id)
                .having(func.count() > 1)
                .subquery()
            )
        )
        left = session.scalar(select(func.count()).where(PackingTask.state != TaskState.PACKED))
        wages = session.scalar(select(func.coalesce(func.sum(EarningEntry.amount_fen), 0)))
        db.engine.dispose()
    return {
        "packed": packed or 0,
        "entries": entries or 0,
        "paid_twice": paid_twice or 0,
        "left": left or 0,
        "wages_fen": wages or 0,
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # still stop gunicorn
    args = parse()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgresql") or "bench" not in (make_url(url).database or ""):
        raise SystemExit("Set DATABASE_URL to a PostgreSQL database whose name contains 'bench'.")
    print(f"seeding {args.tasks} queued tasks, {args.villagers} villagers …", flush=True)
    app = create_app(
        {
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": None,
            "REDIS_URL": None,
            "PASSWORD_SCRYPT_N": 2**10,
            "SECRET_KEY": "bench",  # the server's: the villagers' tokens are signed with it
        }
    )
    workshop_id, tokens = seed(app, args.tasks, args.villagers)
    base = f"http://127.0.0.1:{args.port}"
    with tempfile.TemporaryDirectory() as instance:
        server = start_gunicorn(url, args, instance)
        try:
            ceiling = healthz_ceiling(base, args.villagers, args.healthz_seconds)
            floor = healthz_ceiling(base, args.villagers, args.healthz_seconds, "/floor/write")
            run = claim_loop(base, workshop_id, tokens, args.max_seconds)
        finally:
            server.terminate()
            server.wait(timeout=30)
    db_check = check_database(app)

    claims = len(run["claimed"])
    doubles = claims - len(set(run["claimed"])) + db_check["paid_twice"]
    rate = claims / run["seconds"]
    print(
        f"gunicorn -c gunicorn.conf.py: {args.workers} workers (gevent); "
        f"client: {args.villagers} threads, one process; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.2f}; "
        f"Redis: {'yes' if os.environ.get('REDIS_URL') else 'no'}"
    )
    print(f"healthz ceiling     {ceiling:8.0f} requests/s")
    print(f"write floor         {floor:8.0f} write transactions/s")
    print(
        f"claims              {claims:8d} in {run['seconds']:.1f} s (each followed by a complete)"
    )
    print(f"claims/s            {rate:8.0f}   ({100 * rate / ceiling:.0f} % of the ceiling)")
    print(
        f"pairs vs the floor  {100 * rate / (floor / 2):8.0f} %   (claim+complete pairs/s against "
        "two write transactions; target ≥ 70 %)"
    )
    print(f"claim latency p50   {1000 * statistics.median(run['latencies']):8.1f} ms")
    print(f"claim latency p99   {1000 * percentile(run['latencies'], 99):8.1f} ms")
    print(f"double claims       {doubles:8d}")
    print(f"errors              {dict(run['errors']) or 0}")
    print(
        f"database            {db_check['packed']} packed, {db_check['left']} not packed, "
        f"{db_check['entries']} ledger entries, wages {db_check['wages_fen']} fen"
    )
    if doubles or db_check["entries"] != db_check["packed"]:
        raise SystemExit("FAILED: a task was claimed or paid twice")


if __name__ == "__main__":
    main()
