"""Production web server: ``gunicorn -c gunicorn.conf.py wsgi:app`` serves the API, the
pages and every open live-event stream (README, Production). Command-line flags
override these (``-b``, ``-w``).

The worker class is gevent: a viewer's event stream stays open for the whole live
session, and under a thread per request a few dozen viewers would take every thread
(the next buyer's order would wait behind them). A gevent worker holds a greenlet per
connection instead, so one process streams to thousands and still takes orders. The
worker monkey-patches the standard library before it loads the app (no
``preload_app``: the app must be imported after the patch), so Redis, Celery's
publishing, SQLAlchemy's pool and psycopg all wait cooperatively; ``post_worker_init``
refuses to serve if psycopg would block the whole process.
"""

from __future__ import annotations

import os
from typing import Any

from gevent.server import StreamServer
from gevent.socket import wait_read
from gunicorn.http import wsgi
from gunicorn.workers import ggevent
from gunicorn.workers.ggevent import GeventWorker


class _AcceptsBursts(StreamServer):
    """gevent's server, taking up to ``ACCEPT_AT_ONCE`` waiting connections per turn of
    the event loop.

    With several workers gunicorn makes each server take one connection per turn (so
    that one worker does not take all of a burst from a shared socket). Here every
    worker listens on a socket of its own (``reuse_port``: the kernel spreads the
    connections), and one per turn only delays them: under load a turn takes 30-60 ms,
    and the last of 256 phones that opened a connection at the same moment waited 6 s
    for its first answer (`bench/flash_sale.py`). Every waiting connection at once
    (gevent's 100) went too far the other way while a stream's opening read of its
    session yielded with a pooled connection in hand: when 2,000 viewers opened their
    streams within a second, the last ones waited for the pool past
    ``DB_POOL_TIMEOUT_S`` (503). That read no longer yields (``shop.live.api``), and
    ``ACCEPT_AT_ONCE`` lets a burst of 256 in within a few turns.
    """

    @property  # type: ignore[override]
    def max_accept(self) -> int:
        return ACCEPT_AT_ONCE

    @max_accept.setter
    def max_accept(self, value: int) -> None:
        """gunicorn's 1 is ignored (see above)."""


class _OneWrite(wsgi.Response):
    """gunicorn's response, sending an answer whose body comes whole (a JSON answer:
    one item of exactly its Content-Length) in one write with its head. gunicorn
    writes the head, then the body: two sends — a tenth of a worker's time in a flash
    sale — and two segments for the phone to read. Anything else (streams, files, a
    body in pieces) is written as gunicorn writes it."""

    def write(self, arg: bytes) -> None:
        if self.headers_sent or self.chunked or self.response_length != len(arg):
            super().write(arg)
            return
        gathered = _Gathered()
        sock: Any = self.sock  # type: ignore[has-type]
        self.sock = gathered
        try:
            super().write(arg)  # gunicorn's own head and bookkeeping, into the buffer
        finally:
            self.sock = sock
        sock.sendall(b"".join(gathered.parts))


class _Gathered:
    """Stands in for the socket while ``_OneWrite`` gathers a head and its body."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.parts.append(data)


class TakingTurns(GeventWorker):
    """gunicorn's gevent worker, with keep-alive connections that take turns.

    A greenlet runs until it waits for something. After answering, the gevent worker
    reads the connection's next request at once, and when the client has already sent
    it (a client on another CPU usually has), it serves that connection again without
    letting the others in: under load a worker served each connection several times
    in a row while the rest waited — p99 0.3 s at a p50 of 30 ms, and a timer due in
    5 ms ran 300 ms late. Here a connection whose next request is not already read
    waits for it through the event loop, behind every connection that was ready
    before it: each ready connection gets one request per round (p99 0.3 s → 85 ms on
    the same load, `bench/flash_sale.py`). A request already read with the previous
    one (pipelining) is served at once, as before; an idle connection is closed after
    ``keepalive`` seconds, as before.

    And a worker takes a few new connections per turn, not one (``_AcceptsBursts``),
    and sends an answer's head and whole body in one write (``_OneWrite``).
    """

    def run(self) -> None:
        if self.cfg.reuse_port:  # a socket per worker (else gunicorn's one at a time)
            ggevent.StreamServer = _AcceptsBursts  # type: ignore[misc]
        wsgi.Response = _OneWrite  # type: ignore[misc]
        super().run()

    def handle_request(self, listener_name: str, req: Any, sock: Any, addr: Any) -> None:
        super().handle_request(listener_name, req, sock, addr)
        unreader = getattr(req, "unreader", None)
        if not self.cfg.keepalive or unreader is None or unreader.buf.getbuffer().nbytes:
            return
        fileno = sock.fileno()
        if fileno < 0:  # closed after an error
            raise StopIteration
        try:
            wait_read(fileno, timeout=self.cfg.keepalive)
        except OSError:  # nothing came within keepalive: close, as gunicorn would
            raise StopIteration from None


bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
#: one worker per CPU: a gevent worker is one thread, busy only with Python work
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
worker_class = TakingTurns
#: connections per worker: open streams (LIVE_EVENTS_MAX_STREAMS, default 4,000) plus
#: room for the API and pages beside them
worker_connections = int(os.environ.get("WORKER_CONNECTIONS", "5000"))
backlog = 2048
#: each worker listens on a socket of its own and the kernel spreads new connections
#: evenly over them (with one shared socket, the least busy worker takes most
#: connections at a burst, and keeps them: keep-alive)
reuse_port = True
keepalive = 30  #: seconds: phones re-use their connection between taps
timeout = 30  #: a worker that stops answering gunicorn's heartbeat is replaced
graceful_timeout = 10  #: open streams are cut at a restart; EventSource reconnects
preload_app = False  # the app (and psycopg) must load after gevent's patching
#: An order runs from its stock gate to its COMMIT without letting the worker's other
#: greenlets run (shop/core/hot_rows.py); should the row it waits for be locked by a
#: greenlet of the same worker, that wait could never end. PostgreSQL ends it instead
#: (DB_LOCK_TIMEOUT_MS, shop/config.py): the request answers 503, the worker goes on.
os.environ.setdefault("DB_LOCK_TIMEOUT_MS", "5000")
#: PostgreSQL connections per worker, all kept open: thousands of greenlets share them
#: (a request waits for one at most DB_POOL_TIMEOUT_S). No overflow: under a steady
#: load, overflow connections would be opened and closed for every request.
os.environ.setdefault("DB_POOL_SIZE", "16")
os.environ.setdefault("DB_MAX_OVERFLOW", "0")
#: new connections a worker takes per turn of its event loop (``_AcceptsBursts``)
ACCEPT_AT_ONCE = 32
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


#: how long gevent's loop runs woken greenlets before it polls its sockets again (see
#: post_worker_init); Python's default is 5 ms
LOOP_CALLBACKS_S = float(os.environ.get("GEVENT_CALLBACKS_S", "0.05"))
#: Python's cyclic garbage collector, once the app is loaded (see post_worker_init)
GC_YOUNG = int(os.environ.get("GC_YOUNG_THRESHOLD", "700"))
GC_FULL_AFTER = int(os.environ.get("GC_FULL_AFTER", "1000"))


def post_worker_init(worker: Any) -> None:
    """Collect garbage in a way that does not stop the worker for long; give woken
    greenlets their share of the loop; refuse to serve when psycopg would wait for
    PostgreSQL with a blocking call (under gevent that would stop every stream and
    request of the worker).

    Each turn of gevent's loop runs every connection whose socket is ready, then the
    greenlets woken meanwhile (a batch of accepted orders, the viewers an event is for,
    a placer just started) — but those only for Python's switch interval, 5 ms, before
    it polls the sockets again. Under load a turn of the sockets takes 60-140 ms, so a
    ``listing.sold_out`` to 1,000 viewers took ten turns, and a batch's answers queued
    behind it waited that long. ``LOOP_CALLBACKS_S`` (50 ms) lets the woken run about
    as long as the ready: at 256 connections the sell-out's accepts answer in one
    turn (`bench/flash_sale.py`). The worker has no other thread to switch to (the
    interval is also the GIL's: gevent's DNS thread pool waits longer for it).

    A full collection stops every greenlet of the worker while it walks every object:
    with a thousand open streams it took 200 ms, every 5 s under load — each request
    in flight then waited that long (phase A's p99). So the objects of the loaded app
    (200,000 of them, never garbage) are frozen out of the collector's walks, and a
    full collection comes after ``GC_FULL_AFTER`` middle ones instead of 10: minutes
    apart under load (at 100, two fell in one sell-out), about 70 ms each — cyclic
    garbage is still reclaimed.
    The young generation stays at Python's 700 allocations (``GC_YOUNG_THRESHOLD``):
    larger, it promotes more at once and a middle collection took up to 125 ms.
    """
    import gc
    import sys

    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 10, GC_FULL_AFTER)

    if "gevent.monkey" not in sys.modules:
        return
    sys.setswitchinterval(LOOP_CALLBACKS_S)
    from gevent import monkey

    if not monkey.is_module_patched("select") or not monkey.is_module_patched("socket"):
        raise RuntimeError("gevent did not patch select/socket: refusing to serve")
    waiting = sys.modules.get("psycopg.waiting")
    if waiting is not None and waiting.wait is getattr(waiting, "wait_c", None):
        raise RuntimeError("psycopg was imported before gevent's patching: refusing to serve")
