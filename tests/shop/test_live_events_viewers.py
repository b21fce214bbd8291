"""Many viewers at once, on the real servers (README, Production): the one production
command (``gunicorn -c gunicorn.conf.py``) and ``shanhuo run`` each hold 200 open event
streams and still answer ``/healthz``, a page and an order; the order's stock reaches
all 200; the per-client cap refuses the next stream from one address and still serves
another. A real HTTP client per viewer; ``X-Forwarded-For`` behind
``TRUSTED_PROXY_COUNT=1`` gives each viewer its own address.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from shop.db import db
from tests.shop.conftest import SHIPPING
from tests.support import servers

VIEWERS = 200
PER_CLIENT = 5


async def open_stream(
    port: int, session_id: int, address: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """Open a stream from ``address``; returns when the server answered its head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /api/v1/live-sessions/{session_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Accept: text/event-stream\r\nX-Forwarded-For: {address}\r\n\r\n".encode()
    )
    received = ""
    while "\r\n\r\n" not in received or (
        " 200 " in received.split("\r\n", 1)[0] and ": connected" not in received
    ):
        chunk = await reader.read(4096)
        if not chunk:
            break
        received += chunk.decode()
    return reader, writer, received


async def read_until(reader: asyncio.StreamReader, seen: str, wanted: str) -> str:
    while wanted not in seen:
        chunk = await reader.read(4096)
        if not chunk:
            break
        seen += chunk.decode()
    return seen


async def request(port: int, head: str, body: bytes = b"") -> tuple[int, float]:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head.encode() + body)
    status = int((await reader.readline()).split()[1])
    writer.close()
    return status, time.monotonic() - started


async def evening(port: int, session_id: int, listing_id: int, token: str) -> dict[str, object]:
    viewers = []
    for batch in range(0, VIEWERS, 50):  # viewers arrive in waves, not in one instant
        viewers += await asyncio.wait_for(
            asyncio.gather(
                *(
                    open_stream(port, session_id, f"10.7.{n // 200}.{n % 200 + 1}")
                    for n in range(batch, batch + 50)
                )
            ),
            timeout=90,
        )
    result: dict[str, object] = {"opened": [" 200 " in v[2].split("\r\n", 1)[0] for v in viewers]}
    get = "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    result["healthz"] = await request(port, get.format("/healthz"))
    result["page"] = await request(port, get.format(f"/live/{session_id}"))
    body = json.dumps({"lines": [{"listing_id": listing_id, "qty": 1}], "shipping": SHIPPING})
    result["order"] = await request(
        port,
        "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: viewers-1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body.encode())}\r\n\r\n",
        body.encode(),
    )
    seen = await asyncio.wait_for(
        asyncio.gather(*(read_until(r, s, "event: listing.stock") for r, _, s in viewers)),
        timeout=60,
    )
    result["streams"] = seen
    # The per-client cap: one address fills its share, the next is refused; another
    # address still gets a stream.
    same = [await open_stream(port, session_id, "192.0.2.1") for _ in range(PER_CLIENT)]
    refused = await open_stream(port, session_id, "192.0.2.1")
    other = await open_stream(port, session_id, "192.0.2.2")
    result["cap"] = {
        "same": [s[2].split("\r\n", 1)[0] for s in same],
        "refused": refused[2],
        "other": other[2].split("\r\n", 1)[0],
    }
    for _, writer, _ in [*viewers, *same, refused, other]:
        writer.close()
    return result


@pytest.mark.parametrize("kind", ["production", "run"])
def test_200_open_streams_and_the_server_still_answers_health_pages_and_orders(
    kind, app, committing, auth, make_product, make_live_session
):
    with app.app_context():
        product = make_product(stock=10)
        live = make_live_session([(product, 990, 5, None)])
        session_id, listing_id = live.id, live.listings[0].id
        _, headers = auth("buyer")
        token = headers["Authorization"].removeprefix("Bearer ")
        db.session.remove()
    port = servers.free_port()
    server = servers.start(
        kind,
        app,
        port,
        TRUSTED_PROXY_COUNT="1",
        LIVE_EVENTS_MAX_STREAMS_PER_CLIENT=str(PER_CLIENT),
    )
    try:
        result = asyncio.run(evening(port, session_id, listing_id, token))
    finally:
        servers.stop(server)

    assert all(result["opened"]), f"{result['opened'].count(False)} viewers got no stream"  # type: ignore[union-attr]
    for what in ("healthz", "page", "order"):
        status, seconds = result[what]  # type: ignore[misc]
        assert status == (201 if what == "order" else 200), what
        assert seconds < 5.0, f"{what} took {seconds:.1f} s with {VIEWERS} streams open"
    streams = result["streams"]
    assert all(f'"listing_id": {listing_id}, "remaining": 4' in s for s in streams)  # type: ignore[union-attr]
    cap = result["cap"]
    assert all(" 200 " in line for line in cap["same"])  # type: ignore[index]
    assert " 503 " in cap["refused"].split("\r\n", 1)[0]  # type: ignore[index]
    assert "application/problem+json" in cap["refused"] and "Retry-After:" in cap["refused"]  # type: ignore[index]
    assert " 200 " in cap["other"]  # type: ignore[index]
