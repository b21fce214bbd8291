"""Many viewers at once: live events served by gunicorn's gevent worker (README, Production).

A viewer's event stream is open for the whole live session. Under the gthread worker
each stream holds a thread, so 16 viewers would fill a 2 × 8 server and the next
buyer's order would wait. The gevent worker holds a greenlet instead: one worker
streams to hundreds of viewers and still takes orders. This runs the real server,
with a real HTTP client per viewer.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from shop.db import db
from tests.shop.conftest import SHIPPING

REPO = Path(__file__).resolve().parents[2]
VIEWERS = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_gevent_server(app, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "SECRET_KEY": "test-secret",
        "SHANHUO_INSTANCE": app.instance_path,
        "MEDIA_ROOT": app.config["MEDIA_ROOT"],
    }
    env.pop("CELERY_BROKER_URL", None)
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    command = [gunicorn, "-k", "gevent", "-w", "1", "--worker-connections", "1000"]
    command += ["--graceful-timeout", "2", "-b", f"127.0.0.1:{port}"]
    command += ["--log-level", "warning", "wsgi:app"]
    server = subprocess.Popen(command, cwd=REPO, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise AssertionError("gunicorn (gevent) did not come up")


async def watch(port: int, session_id: int, connected: asyncio.Event, ready: list[int]) -> str:
    """One viewer: open the stream, then read until the first ``listing.stock``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/v1/live-sessions/{session_id}/events HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    received = ""
    try:
        while ": connected" not in received:
            chunk = await reader.read(4096)
            assert chunk, f"the stream closed before it started: {received!r}"
            received += chunk.decode()
        ready.append(1)
        if len(ready) == VIEWERS:
            connected.set()
        while "event: listing.stock" not in received:
            chunk = await reader.read(4096)
            if not chunk:
                break
            received += chunk.decode()
        return received
    finally:
        writer.close()


async def request(port: int, head: str, body: bytes = b"") -> tuple[int, float]:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + body)
    status = int((await reader.readline()).split()[1])
    writer.close()
    return status, time.monotonic() - started


async def sale(port: int, session_id: int, listing_id: int, token: str) -> dict[str, object]:
    connected, ready = asyncio.Event(), []
    viewers = [
        asyncio.create_task(watch(port, session_id, connected, ready)) for _ in range(VIEWERS)
    ]
    await asyncio.wait_for(connected.wait(), timeout=60)
    healthz = await request(port, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = json.dumps({"lines": [{"listing_id": listing_id, "qty": 1}], "shipping": SHIPPING})
    order = await request(
        port,
        "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: viewers-1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body.encode())}\r\n\r\n",
        body.encode(),
    )
    streams = await asyncio.wait_for(asyncio.gather(*viewers), timeout=60)
    return {"healthz": healthz, "order": order, "streams": streams}


def test_one_gevent_worker_streams_to_200_viewers_and_still_takes_orders(
    app, committing, auth, make_product, make_live_session
):
    with app.app_context():
        product = make_product(stock=10)
        live = make_live_session([(product, 990, 5, None)])
        session_id, listing_id = live.id, live.listings[0].id
        _, headers = auth("buyer")
        token = headers["Authorization"].removeprefix("Bearer ")
        db.session.remove()
    port = free_port()
    server = start_gevent_server(app, port)
    try:
        result = asyncio.run(sale(port, session_id, listing_id, token))
    finally:
        server.terminate()
        server.wait(timeout=30)

    healthz_status, healthz_s = result["healthz"]
    assert healthz_status == 200 and healthz_s < 2.0  # 200 open streams do not block it
    assert result["order"][0] == 201
    streams = result["streams"]
    assert len(streams) == VIEWERS
    assert all(f'"listing_id": {listing_id}, "remaining": 4' in s for s in streams)
