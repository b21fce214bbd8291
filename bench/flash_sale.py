"""Benchmark: a flash sale — many buyers at once against one live listing — over HTTP,
under gunicorn, on PostgreSQL (and Redis).

    createdb -h 127.0.0.1 -U postgres shanhuo_orders_bench
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/shanhuo_orders_bench \\
    REDIS_URL=redis://127.0.0.1:6379/1 \\
        .venv/bin/python bench/flash_sale.py --connections 64

Resets the database (its name must contain "bench" or "scratch"), migrates, creates a
live session with one listing of 500 units and --buyers buyers with tokens, starts
gunicorn, then from a separate client process (asyncio, HTTP/1.1 keep-alive, one
coroutine per connection):

1. GET /healthz --healthz-requests times: the ceiling of this client and server;
2. POST /api/v1/orders --attempts times (one unit each, a fresh Idempotency-Key each,
   buyers round-robin) until all attempts are made; 500 are accepted, the rest are
   409 out-of-stock.

Prints attempts/s, accepted orders, p50/p95/p99 latency, oversold units (must be 0),
the healthz ceiling and the ratio between the two.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ALLOTMENT = 500


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--buyers", type=int, default=1000)
    parser.add_argument("--attempts", type=int, default=5000)
    parser.add_argument("--healthz-requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--threads", type=int, default=4, help="gunicorn gthread threads")
    parser.add_argument("--port", type=int, default=5091)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


# ------------------------------------------------------------------------ server side


def seed(app: Any, buyers: int) -> dict[str, Any]:
    """Fresh schema; a streamer's live session with one listing; buyers with tokens."""
    import flask_migrate
    from sqlalchemy import text

    from shop.accounts import service as accounts
    from shop.catalog import service as catalog
    from shop.db import db, utcnow
    from shop.live import service as live

    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        flask_migrate.upgrade(revision="heads")
        session = db.session

        def user(email: str, role: str) -> Any:
            return accounts.create_user(
                session,
                email=email,
                password="bench-password",
                display_name=email,
                roles=[role],
                scrypt_n=2**10,
            )

        streamer = user("streamer@bench.shanhuo", "streamer")
        product = catalog.create_product(
            session,
            sku="QG-SHIITAKE-500",
            name="庆元香菇 Qingyuan shiitake",
            category="mushroom",
            unit_label="500 g bag",
            unit_weight_g=500,
            price_fen=6800,
            stock=ALLOTMENT + 100,
            packing_rate_fen=60,
        )
        show = live.schedule_session(
            session, streamer_id=streamer.id, title="flash sale", scheduled_at=utcnow()
        )
        listing = live.add_listing(
            session,
            show.id,
            streamer_id=streamer.id,
            product_id=product.id,
            flash_price_fen=4990,
            allotted_qty=ALLOTMENT,
            per_buyer_limit=None,
        )
        live.start_session(session, show.id, streamer_id=streamer.id)
        tokens = []
        for n in range(buyers):
            buyer = user(f"buyer{n}@bench.shanhuo", "buyer")
            tokens.append(accounts.issue_token(session, buyer, ttl_s=3600)[0])
        session.commit()
        result = {"listing_id": listing.id, "session_id": show.id, "tokens": tokens}
        db.engine.dispose()
    return result


def outcome(app: Any, listing_id: int) -> dict[str, int]:
    from sqlalchemy import func, select

    from shop.db import db
    from shop.live.models import LiveListing
    from shop.orders.models import Order, OrderLine

    with app.app_context():
        remaining = db.session.scalar(
            select(LiveListing.remaining).where(LiveListing.id == listing_id)
        )
        sold = db.session.scalar(
            select(func.coalesce(func.sum(OrderLine.qty), 0)).where(
                OrderLine.listing_id == listing_id
            )
        )
        orders = db.session.scalar(select(func.count(Order.id)))
        db.engine.dispose()
    return {"remaining": int(remaining), "sold": int(sold), "orders": int(orders)}


def start_gunicorn(args: argparse.Namespace) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "SECRET_KEY": "bench-secret",
        "SHANHUO_ENV": "development",
    }
    env.pop("CELERY_BROKER_URL", None)
    env.pop("REDIS_URL", None)
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    command = [
        str(Path(sys.executable).parent / "gunicorn"),
        "--workers",
        str(args.workers),
        "--worker-class",
        "gthread",
        "--threads",
        str(args.threads),
        "--bind",
        f"127.0.0.1:{args.port}",
        "--backlog",
        "2048",
        "--keep-alive",
        "30",
        "--log-level",
        "warning",
        "wsgi:app",
    ]
    return subprocess.Popen(command, cwd=REPO, env=env)


def wait_until_up(port: int, timeout: float = 30) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not come up")


# ------------------------------------------------------------------------ client side


class Connection:
    """One HTTP/1.1 keep-alive connection (enough HTTP for our JSON answers)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if length:
            await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status


def http(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def phase(port: int, connections: int, total: int, make: Any) -> dict[str, Any]:
    """``total`` requests over ``connections`` keep-alive connections; statuses, latencies."""
    issued = 0
    latencies: list[float] = []
    statuses: Counter[int] = Counter()

    async def worker() -> None:
        nonlocal issued
        connection = Connection(port)
        while issued < total:
            n = issued
            issued += 1
            raw = make(n)
            started = time.perf_counter()
            statuses[await connection.request(raw)] += 1
            latencies.append(time.perf_counter() - started)
        if connection.writer is not None:
            connection.writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "per_s": len(latencies) / elapsed,
        "statuses": dict(statuses),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


async def client_main(plan: dict[str, Any]) -> dict[str, Any]:
    port, connections = plan["port"], plan["connections"]
    tokens, listing_id = plan["tokens"], plan["listing_id"]
    healthz = http("GET", "/healthz", {})
    warm = http("GET", f"/api/v1/live-sessions/{plan['session_id']}", {})
    await phase(port, connections, 2 * connections, lambda n: warm)  # open connections, warm pools
    ceiling = await phase(port, connections, plan["healthz_requests"], lambda n: healthz)
    body = json.dumps(
        {
            "lines": [{"listing_id": listing_id, "qty": 1}],
            "shipping": {
                "name": "王女士",
                "phone": "13800000000",
                "address": "庆元县",
                "region": "ZJ",
            },
        }
    ).encode()
    run = uuid.uuid4().hex[:8]

    def order(n: int) -> bytes:
        headers = {
            "Authorization": f"Bearer {tokens[n % len(tokens)]}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"{run}-{n}",
        }
        return http("POST", "/api/v1/orders", headers, body)

    orders = await phase(port, connections, plan["attempts"], order)
    return {"healthz": ceiling, "orders": orders}


# ----------------------------------------------------------------------------- main


def main() -> None:
    args = parse()
    if args.client:
        print(json.dumps(asyncio.run(client_main(json.load(sys.stdin)))))
        return
    if not args.database_url or not args.database_url.startswith("postgresql"):
        sys.exit("Set DATABASE_URL (or --database-url) to a PostgreSQL database.")
    name = args.database_url.rsplit("/", 1)[-1]
    if "bench" not in name and "scratch" not in name:
        sys.exit(f"Refusing to reset {name!r}: its name must contain 'bench' or 'scratch'.")

    print(f"seeding {args.buyers} buyers and a {ALLOTMENT}-unit listing …", flush=True)
    from shop.app import create_app

    app = create_app({"DATABASE_URL": args.database_url, "REDIS_URL": None})
    plan = seed(app, args.buyers)
    server = start_gunicorn(args)
    try:
        wait_until_up(args.port)
        plan.update(
            port=args.port,
            connections=args.connections,
            attempts=args.attempts,
            healthz_requests=args.healthz_requests,
        )
        client = subprocess.run(
            [sys.executable, __file__, "--client"],
            input=json.dumps(plan),
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(client.stdout)
    finally:
        server.terminate()
        server.wait(timeout=30)

    db = outcome(app, plan["listing_id"])
    orders, ceiling = result["orders"], result["healthz"]
    accepted = orders["statuses"].get("201", 0)
    oversold = max(0, db["sold"] - ALLOTMENT) + max(0, -db["remaining"])
    print(
        f"gunicorn {args.workers} workers × {args.threads} threads (gthread); "
        f"client: 1 process, {args.connections} keep-alive connections; {os.cpu_count()} CPUs"
    )
    print(f"healthz ceiling   {ceiling['per_s']:8.0f} req/s  (p99 {ceiling['p99_ms']:.1f} ms)")
    print(
        f"order attempts    {orders['per_s']:8.0f} req/s  "
        f"({orders['requests']} attempts in {orders['seconds']:.2f} s)"
    )
    print(
        f"latency           p50 {orders['p50_ms']:.1f} ms  p95 {orders['p95_ms']:.1f} ms  "
        f"p99 {orders['p99_ms']:.1f} ms"
    )
    print(f"statuses          {dict(sorted(orders['statuses'].items()))}")
    print(
        f"accepted orders   {accepted}  (database: {db['orders']} orders, {db['sold']} units, "
        f"remaining {db['remaining']})"
    )
    print(f"oversold units    {oversold}")
    print(f"ratio             {orders['per_s'] / ceiling['per_s']:.0%} of the healthz ceiling")
    if oversold or accepted != db["orders"] or db["sold"] + db["remaining"] != ALLOTMENT:
        sys.exit("FAILED: the listing was oversold or the counts disagree")


if __name__ == "__main__":
    main()
