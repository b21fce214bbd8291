"""Benchmark: the floor under every request that touches PostgreSQL, on this machine.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/floor.py

The speed targets of the flash-sale and claim benchmarks are shares of the same
client's `GET /healthz` rate. This measures what the shares can be at best: the real
app under gunicorn (same settings as `bench/flash_sale.py`), with four extra
endpoints that do only the bare minimum a refusal could, each answering 409 with a
problem+json body like the order endpoint's:

- `parse`: read the JSON body; no database;
- `one-read`: one `SELECT 1` on a pooled connection in autocommit;
- `two-reads`: two such reads — what a refused order attempt does (token, offer);
- `transaction`: BEGIN, `SELECT 1`, ROLLBACK — one read inside a transaction;
- `write`: the floor of an accepted order — BEGIN, take a unit of one hot row
  (`UPDATE … SET n = n - 1 … RETURNING`), INSERT a row, COMMIT (tables `bench_floor_*`,
  created if missing).

No authentication, no validation, no ORM. Served by the production config
(`gunicorn -c gunicorn.conf.py`); `bench/flash_sale.py` and `bench/claims.py` serve
the same app to measure the write floor beside their own figures.
Prints requests/s, p99, and the share of the healthz rate, from one client process
(asyncio, 64 keep-alive connections) — the flash-sale benchmark's client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from flash_sale import http, phase, wait_until_up  # noqa: E402

PROBES = ("parse", "one-read", "two-reads", "transaction", "write")


def start_server(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[bytes]:
    """The production config serving the real app plus the floor endpoints."""
    env = {**env, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'bench'}"}
    command = [str(Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py"]
    command += ["--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
    command += ["--log-level", "warning", "floor:make_app()"]
    return subprocess.Popen(command, cwd=REPO, env=env)


def make_app() -> Any:
    """The real app plus the floor endpoints (gunicorn calls this in each worker)."""
    from flask import Response, json, request
    from sqlalchemy import text

    from shop.app import create_app
    from shop.db import db

    app = create_app()
    select_one = text("SELECT 1")
    take_unit = text("UPDATE bench_floor_hot SET n = n - 1 WHERE id = 1 RETURNING n")
    insert_row = text("INSERT INTO bench_floor_rows (n) VALUES (:n)")
    try:
        with app.app_context(), db.engine.begin() as c:
            c.execute(
                text("CREATE TABLE IF NOT EXISTS bench_floor_hot (id int PRIMARY KEY, n bigint)")
            )
            c.execute(text("CREATE TABLE IF NOT EXISTS bench_floor_rows (id bigserial, n bigint)"))
            c.execute(text("INSERT INTO bench_floor_hot VALUES (1, 0) ON CONFLICT DO NOTHING"))
    except Exception:  # another worker created them at the same moment
        pass

    def refuse() -> Response:
        body = {"type": "out-of-stock", "title": "Out of stock", "status": 409, "detail": "0"}
        return Response(json.dumps(body), 409, mimetype="application/problem+json")

    def parse() -> Response:
        request.get_json()
        return refuse()

    def reads(n: int) -> Response:
        request.get_json()
        for _ in range(n):
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(select_one)
        return refuse()

    def transaction() -> Response:
        request.get_json()
        db.session.execute(select_one)
        db.session.rollback()
        return refuse()

    def write() -> Response:
        request.get_json()
        with db.engine.begin() as c:
            n = c.execute(take_unit).scalar_one()
            c.execute(insert_row, {"n": n})
        return Response(b'{"id": 1}', 201, mimetype="application/json")

    views = {
        "write": write,
        "parse": parse,
        "one-read": lambda: reads(1),
        "two-reads": lambda: reads(2),
        "transaction": transaction,
    }
    for name, view in views.items():
        app.add_url_rule(f"/floor/{name}", f"floor_{name}", view, methods=["POST"])
    return app


async def client_main(port: int, connections: int, requests: int) -> dict[str, Any]:
    body = json.dumps({"lines": [{"listing_id": 1, "qty": 1}]}).encode()
    headers = {"Content-Type": "application/json"}
    healthz = http("GET", "/healthz", {})
    await phase(port, connections, 2 * connections, lambda n: healthz)  # connect, warm up
    results = {"healthz": await phase(port, connections, requests, lambda n: healthz)}
    for probe in PROBES:
        raw = http("POST", f"/floor/{probe}", headers, body)
        results[probe] = await phase(port, connections, requests, lambda n, raw=raw: raw)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=5093)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        results = asyncio.run(client_main(args.port, args.connections, args.requests))
        print(json.dumps(results))
        return
    if not args.database_url or not args.database_url.startswith("postgresql"):
        sys.exit("Set DATABASE_URL (or --database-url) to a PostgreSQL database.")

    env = {**os.environ, "DATABASE_URL": args.database_url, "SECRET_KEY": "bench-secret"}
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{REPO / 'bench'}"
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)
    server = start_server(env, args.port, args.workers)
    try:
        wait_until_up(args.port)
        client_args = ["--port", str(args.port), "--connections", str(args.connections)]
        client = subprocess.run(
            [sys.executable, __file__, "--client", *client_args, "--requests", str(args.requests)],
            capture_output=True,
            text=True,
            check=True,
        )
        results = json.loads(client.stdout)
    finally:
        server.terminate()
        server.wait(timeout=30)

    ceiling = results["healthz"]["per_s"]
    print(
        f"gunicorn -c gunicorn.conf.py, {args.workers} workers (gevent); client: 1 process, "
        f"{args.connections} keep-alive connections; {os.cpu_count()} CPUs; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for name in ("healthz", *PROBES):
        row = results[name]
        print(
            f"{name:12s} {row['per_s']:8.0f} req/s  p99 {row['p99_ms']:7.1f} ms  "
            f"{row['per_s'] / ceiling:5.0%} of healthz  {row['statuses']}"
        )


if __name__ == "__main__":
    main()
