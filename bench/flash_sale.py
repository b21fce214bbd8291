"""Benchmark: a live night at scale — thousands watching, hundreds buying — over HTTP,
under the production server (`gunicorn -c gunicorn.conf.py`), on PostgreSQL and Redis.

    createdb -h 127.0.0.1 -U postgres shanhuo_orders_bench
    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/shanhuo_orders_bench \\
    REDIS_URL=redis://127.0.0.1:6379/1 \\
        .venv/bin/python bench/flash_sale.py

Resets the database (its name must contain "bench" or "scratch"), migrates, creates a
live session with three listings — A and C of 500 units, B too large to sell out —
and --buyers buyers with tokens, starts the production server (serving the app plus
the floor endpoints of `bench/floor.py`), then from two client processes (asyncio,
HTTP/1.1 keep-alive) — one for the viewers, one for the buyers, as on a live night
(a phone reading its stream does not hold up another phone's tap on "buy"):

0. --viewers viewers open the session's event stream (each its own address, through
   `X-Forwarded-For` behind `TRUSTED_PROXY_COUNT=1`) and hold it for the whole run;
1. GET /healthz: the ceiling while they watch, and its p99;
2. phase A: one-unit attempts on A over 64 connections for --seconds;
3. phase A at 256 connections, on C (p99 from 64 to 256 connections);
4. phase B: one-unit orders on B for --seconds: accepted orders/s;
5. the floor: one bare write transaction per request (`/floor/write`) for --seconds;
6. the share of viewers that received A's `listing.sold_out`, and how long after the
   first viewer did.

Prints each figure beside the issue's target; fails on an oversold unit or a 5xx.
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
LARGE = 5_000_000  #: listing B: more than any run can sell
SECRET_KEY = "bench-secret"


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--buyers", type=int, default=1000)
    parser.add_argument("--viewers", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0, help="each timed phase")
    parser.add_argument("--healthz-requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--port", type=int, default=5091)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--viewers-client", action="store_true", help=argparse.SUPPRESS)
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
            stock=2 * ALLOTMENT + LARGE,
            packing_rate_fen=60,
        )
        show = live.schedule_session(
            session, streamer_id=streamer.id, title="flash sale", scheduled_at=utcnow()
        )
        listings = {}
        for name, allotted in (("A", ALLOTMENT), ("B", LARGE), ("C", ALLOTMENT)):
            if name != "A":  # one product per listing in a session
                product = catalog.create_product(
                    session,
                    sku=f"QG-SHIITAKE-{name}",
                    name=f"庆元香菇 {name}",
                    category="mushroom",
                    unit_label="500 g bag",
                    unit_weight_g=500,
                    price_fen=6800,
                    stock=allotted,
                    packing_rate_fen=60,
                )
            listings[name] = live.add_listing(
                session,
                show.id,
                streamer_id=streamer.id,
                product_id=product.id,
                flash_price_fen=4990,
                allotted_qty=allotted,
                per_buyer_limit=None,
            ).id
        live.start_session(session, show.id, streamer_id=streamer.id)
        tokens = []
        for n in range(buyers):
            buyer = user(f"buyer{n}@bench.shanhuo", "buyer")
            tokens.append(accounts.issue_token(session, buyer, ttl_s=3600)[0])
        session.commit()
        result = {"listings": listings, "session_id": show.id, "tokens": tokens}
        db.engine.dispose()
    return result


def outcome(app: Any, listing_id: int) -> dict[str, int]:
    """Units sold and left of one listing, orders in all, as committed."""
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
    from floor import start_server

    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "SECRET_KEY": SECRET_KEY,
        "SHANHUO_ENV": "development",
        "TRUSTED_PROXY_COUNT": "1",
        "LIVE_EVENTS_STREAM_S": "3600",
    }
    env.pop("CELERY_BROKER_URL", None)
    return start_server(env, args.port, args.workers)


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


async def phase(
    port: int, connections: int, total: int, make: Any, seconds: float | None = None
) -> dict[str, Any]:
    """``total`` requests (or as many as fit in ``seconds``) over ``connections``
    keep-alive connections; statuses, latencies."""
    issued = 0
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    by_second: dict[int, list[float]] = {}
    begun = time.perf_counter()
    deadline = begun + seconds if seconds else None

    async def worker() -> None:
        nonlocal issued
        connection = Connection(port)
        while issued < total and (deadline is None or time.perf_counter() < deadline):
            n = issued
            issued += 1
            raw = make(n)
            started = time.perf_counter()
            statuses[await connection.request(raw)] += 1
            latency = time.perf_counter() - started
            latencies.append(latency)
            by_second.setdefault(int(started - begun), []).append(latency)
        if connection.writer is not None:
            connection.writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    def p99(values: list[float]) -> float:
        values.sort()
        return values[min(len(values) - 1, int(0.99 * len(values)))] * 1000

    return {
        "timeline": [(len(v), p99(v)) for _, v in sorted(by_second.items())],
        "requests": len(latencies),
        "seconds": elapsed,
        "per_s": len(latencies) / elapsed,
        "statuses": dict(statuses),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


async def viewer(port: int, session_id: int, n: int, sold_out: str, seen: dict[str, Any]) -> None:
    """Hold the stream open; note when ``sold_out`` (the event's data) arrives."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/v1/live-sessions/{session_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-Forwarded-For: 10.{n // 62500}.{n // 250 % 250}.{n % 250 + 1}\r\n\r\n".encode()
    )
    tail = ""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                seen["closed"] += 1
                return
            text = tail + chunk.decode()
            if ": connected" in text and n not in seen["connected"]:
                seen["connected"].add(n)
            if sold_out in text and n not in seen["sold_out"]:
                seen["sold_out"][n] = time.perf_counter()
            tail = text[-200:]
    except asyncio.CancelledError:
        writer.close()
        raise


async def viewers_main(plan: dict[str, Any]) -> None:
    """The viewers' process: open every stream, say how many are watching (a line of
    JSON), hold them until told to stop (a line on stdin), then say who received A's
    ``listing.sold_out`` and when."""
    port, listings = plan["port"], plan["listings"]
    seen: dict[str, Any] = {"connected": set(), "sold_out": {}, "closed": 0}
    sold_out = f"event: listing.sold_out\ndata: {json.dumps({'listing_id': listings['A']})}\n"
    watchers = []
    for n in range(plan["viewers"]):
        watchers.append(asyncio.create_task(viewer(port, plan["session_id"], n, sold_out, seen)))
        if n % 100 == 99:
            await asyncio.sleep(0.05)  # open them as phones would: not all in one instant
    deadline = time.monotonic() + 120
    while len(seen["connected"]) < plan["viewers"] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    print(json.dumps({"watching": len(seen["connected"])}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    print(
        json.dumps({"closed": seen["closed"], "sold_out_at": list(seen["sold_out"].values())}),
        flush=True,
    )


async def client_main(plan: dict[str, Any]) -> dict[str, Any]:
    """The buyers' process: every timed phase, one after another."""
    port, connections, seconds = plan["port"], plan["connections"], plan["seconds"]
    tokens, listings = plan["tokens"], plan["listings"]
    healthz = http("GET", "/healthz", {})
    warm = http("GET", f"/api/v1/live-sessions/{plan['session_id']}", {})
    await phase(port, connections, 2 * connections, lambda n: warm)  # open connections, warm pools
    ceiling = await phase(port, connections, plan["healthz_requests"], lambda n: healthz)
    run = uuid.uuid4().hex[:8]

    def orders_of(listing_id: int, tag: str) -> Any:
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

        def order(n: int) -> bytes:
            headers = {
                "Authorization": f"Bearer {tokens[n % len(tokens)]}",
                "Content-Type": "application/json",
                "Idempotency-Key": f"{run}-{tag}-{n}",
            }
            return http("POST", "/api/v1/orders", headers, body)

        return order

    many = 10**9
    phase_a = await phase(port, connections, many, orders_of(listings["A"], "a"), seconds)
    phase_c = await phase(port, 4 * connections, many, orders_of(listings["C"], "c"), seconds)
    phase_b = await phase(port, connections, many, orders_of(listings["B"], "b"), seconds)
    write = http("POST", "/floor/write", {"Content-Type": "application/json"}, b"{}")
    floor = await phase(port, connections, many, lambda n: write, seconds)
    return {
        "viewers": plan["viewers"],
        "healthz": ceiling,
        "A": phase_a,
        "C": phase_c,
        "B": phase_b,
        "floor": floor,
    }


# ----------------------------------------------------------------------------- main


def main() -> None:
    args = parse()
    if args.client:
        print(json.dumps(asyncio.run(client_main(json.load(sys.stdin)))))
        return
    if args.viewers_client:
        asyncio.run(viewers_main(json.loads(sys.stdin.readline())))
        return
    if not args.database_url or not args.database_url.startswith("postgresql"):
        sys.exit("Set DATABASE_URL (or --database-url) to a PostgreSQL database.")
    if not args.redis_url:
        sys.exit("Set REDIS_URL (or --redis-url): the production setup has Redis.")
    name = args.database_url.rsplit("/", 1)[-1]
    if "bench" not in name and "scratch" not in name:
        sys.exit(f"Refusing to reset {name!r}: its name must contain 'bench' or 'scratch'.")

    print(f"seeding {args.buyers} buyers and the listings …", flush=True)
    from shop.app import create_app

    # The server's SECRET_KEY: the buyers' tokens are signed with it.
    app = create_app(
        {"DATABASE_URL": args.database_url, "REDIS_URL": None, "SECRET_KEY": SECRET_KEY}
    )
    plan = seed(app, args.buyers)
    load_before = os.getloadavg()
    server = start_gunicorn(args)
    viewers: subprocess.Popen[str] | None = None
    try:
        wait_until_up(args.port)
        plan.update(
            port=args.port,
            connections=args.connections,
            seconds=args.seconds,
            viewers=args.viewers,
            healthz_requests=args.healthz_requests,
        )
        viewers = subprocess.Popen(
            [sys.executable, __file__, "--viewers-client"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert viewers.stdin is not None and viewers.stdout is not None
        viewers.stdin.write(json.dumps(plan) + "\n")
        viewers.stdin.flush()
        watching = json.loads(viewers.stdout.readline())["watching"]
        client = subprocess.run(
            [sys.executable, __file__, "--client"],
            input=json.dumps(plan),
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(client.stdout)
        viewers.stdin.write("stop\n")
        viewers.stdin.flush()
        result.update(json.loads(viewers.stdout.readline()), watching=watching)
        viewers.wait(timeout=30)
    finally:
        if viewers is not None and viewers.poll() is None:
            viewers.kill()
        server.terminate()
        server.wait(timeout=30)
    report(args, app, plan, result, load_before)


def report(
    args: argparse.Namespace, app: Any, plan: dict[str, Any], result: dict[str, Any], load: Any
) -> None:
    listings = plan["listings"]
    sold = {name: outcome(app, listing_id) for name, listing_id in listings.items()}
    ceiling, a, b, c, floor = (result[k] for k in ("healthz", "A", "B", "C", "floor"))
    oversold = sum(
        max(0, sold[k]["sold"] - ALLOTMENT) + max(0, -sold[k]["remaining"]) for k in ("A", "C")
    )
    errors = sum(
        n
        for row in (ceiling, a, b, c, floor)
        for code, n in row["statuses"].items()
        if int(code) >= 500
    )
    accepted_b = b["statuses"].get("201", 0) / b["seconds"]
    arrivals = sorted(result["sold_out_at"])
    on_time = [t for t in arrivals if t - arrivals[0] <= 1.0] if arrivals else []

    def pct(x: float) -> str:
        return f"{100 * x:.0f} %"

    print(
        f"gunicorn -c gunicorn.conf.py: {args.workers} workers (gevent); "
        "clients: 2 processes (viewers, buyers); "
        f"{os.cpu_count()} CPUs; load average before the run "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(
        f"viewers holding the stream   {result['watching']} of {result['viewers']} "
        f"(closed early: {result['closed']})"
    )
    print(
        f"healthz ceiling (watched)    {ceiling['per_s']:8.0f} req/s   p99 "
        f"{ceiling['p99_ms']:.1f} ms   (target p99 < 100 ms)"
    )
    print(
        f"phase A (64 connections)     {a['per_s']:8.0f} attempts/s = "
        f"{pct(a['per_s'] / ceiling['per_s'])} of healthz (target ≥ 50 %)   p50 "
        f"{a['p50_ms']:.1f} ms  p99 {a['p99_ms']:.1f} ms (target < 150 ms)   {a['statuses']}"
    )
    print(
        f"phase A (256 connections)    {c['per_s']:8.0f} attempts/s   p99 {c['p99_ms']:.1f} ms "
        f"= {c['p99_ms'] / a['p99_ms']:.1f} × the 64-connection p99 (target ≤ 4 ×)   "
        f"{c['statuses']}"
    )
    print(
        f"phase B (accepted orders)    {accepted_b:8.0f} orders/s  p99 {b['p99_ms']:.1f} ms   "
        f"{b['statuses']}"
    )
    print(
        f"floor: one write transaction {floor['per_s']:8.0f} req/s   p99 {floor['p99_ms']:.1f} ms"
        f"   → phase B = {pct(accepted_b / floor['per_s'])} of the floor (target ≥ 70 %)"
    )
    delay = (arrivals[-1] - arrivals[0]) * 1000 if arrivals else float("nan")
    print(
        f"listing.sold_out received    {len(arrivals)} of {result['watching']} viewers; "
        f"{pct(len(on_time) / max(1, result['watching']))} within 1 s of the first "
        f"(target ≥ 99 %); last {delay:.0f} ms after the first"
    )
    for k in ("A", "C"):
        print(
            f"listing {k}                    sold {sold[k]['sold']}, remaining "
            f"{sold[k]['remaining']}"
        )
    print(
        f"listing B                    sold {sold['B']['sold']} "
        f"(201s: {b['statuses'].get('201', 0)})"
    )
    for name, row in (("A", a), ("A at 256", c)):
        print(
            f"phase {name}, second by second (requests, p99 ms): "
            + "  ".join(f"{n} {ms:.0f}" for n, ms in row["timeline"])
        )
    print(f"oversold units, 5xx          {oversold}, {errors}")
    if oversold or errors:
        sys.exit("FAILED: oversold or 5xx")


if __name__ == "__main__":
    main()
