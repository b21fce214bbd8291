"""The production server's keep-alive connections (``gunicorn.conf.py``, ``TakingTurns``):
after each answer a connection waits for its next request through the event loop, so
ready connections take turns — and still, a request sent together with the previous one
(pipelining) is answered at once, and an idle connection is closed after ``keepalive``
seconds. The turn-taking itself is measured by ``bench/flash_sale.py`` (p99)."""

from __future__ import annotations

import socket
import time

import pytest

from tests.support import servers

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def answers(connection: socket.socket, count: int, timeout: float) -> list[bytes]:
    """The status lines of the next ``count`` answers on the connection, each read
    whole (head and body)."""
    connection.settimeout(timeout)
    received, statuses = b"", []
    while len(statuses) < count:
        head_end = received.find(b"\r\n\r\n")
        if head_end >= 0:
            head = received[:head_end].decode("latin-1")
            length = next(
                int(line.split(":", 1)[1])
                for line in head.split("\r\n")
                if line.lower().startswith("content-length:")
            )
            end = head_end + 4 + length
            if len(received) >= end:
                statuses.append(head.split("\r\n", 1)[0].encode())
                received = received[end:]
                continue
        chunk = connection.recv(65536)
        assert chunk, "the server closed the connection"
        received += chunk
    assert received == b"", "more was sent than asked for"
    return statuses


@pytest.fixture
def production(app):
    """The production config with a keep-alive of 1 s; its port."""
    port = servers.free_port()
    server = servers.start("production", app, port, GUNICORN_CMD_ARGS="--keep-alive 1")
    try:
        yield port
    finally:
        servers.stop(server)


def test_requests_on_one_connection_are_answered_in_turn_and_pipelined_ones_at_once(production):
    with socket.create_connection(("127.0.0.1", production)) as connection:
        for _ in range(5):  # one after another, each after its answer
            connection.sendall(HEALTHZ)
            (head,) = answers(connection, 1, timeout=5)
            assert head.startswith(b"HTTP/1.1 200")
        # Three at once: the second and third are read with the first, so nothing more
        # will arrive on the socket — they must not wait for it.
        started = time.monotonic()
        connection.sendall(HEALTHZ * 3)
        heads = answers(connection, 3, timeout=5)
        assert [h[:12] for h in heads] == [b"HTTP/1.1 200"] * 3
        assert time.monotonic() - started < 0.9  # well before the keep-alive of 1 s


def test_an_idle_connection_is_closed_after_keepalive(production):
    with socket.create_connection(("127.0.0.1", production)) as connection:
        connection.sendall(HEALTHZ)
        assert answers(connection, 1, timeout=5)[0].startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        connection.settimeout(10)
        assert connection.recv(1) == b""  # the server closed it
        assert 0.5 < time.monotonic() - started < 5


def test_a_worker_takes_a_few_waiting_connections_per_turn_not_one(monkeypatch):
    """gunicorn makes a gevent worker accept one connection per turn of its event loop
    when there are several workers; with a socket per worker (``reuse_port``) that only
    made a burst of new connections wait (6 s for the last of 256 under load)."""
    import runpy
    from pathlib import Path

    import gunicorn.workers.ggevent as ggevent

    monkeypatch.setattr("os.environ", {})  # the config's defaults stay in the config
    config = runpy.run_path(str(Path(__file__).parents[2] / "gunicorn.conf.py"))
    assert config["reuse_port"]
    server = config["_AcceptsBursts"](("127.0.0.1", 0), handle=lambda *args: None)
    server.max_accept = 1  # what gunicorn sets with several workers
    assert server.max_accept == config["ACCEPT_AT_ONCE"] > 1
    assert ggevent.StreamServer is not config["_AcceptsBursts"]  # only in a worker's run


def test_an_answer_whose_body_comes_whole_goes_out_in_one_write_with_its_head():
    """gunicorn writes a head, then its body (two sends per answer); the production
    worker sends a JSON answer's head and body in one write, and leaves everything else
    — a body in pieces, an event stream (chunked), a HEAD — as gunicorn writes it."""
    import runpy
    from pathlib import Path
    from types import SimpleNamespace

    from gunicorn.config import Config

    config = runpy.run_path(str(Path(__file__).parents[2] / "gunicorn.conf.py"))

    class Client:  # the connection's socket: what the response sends, write by write
        def __init__(self) -> None:
            self.writes: list[bytes] = []

        def sendall(self, data: bytes) -> None:
            self.writes.append(bytes(data))

    def answer(items: list[bytes], headers: list[tuple[str, str]], method: str = "GET"):
        client = Client()
        request = SimpleNamespace(version=(1, 1), method=method, should_close=lambda: False)
        response = config["_OneWrite"](request, client, Config())
        response.start_response("200 OK", headers)
        for item in items:
            response.write(item)
        response.close()
        return client.writes

    (whole,) = answer([b'{"ok": true}'], [("Content-Length", "12")])
    assert whole.startswith(b"HTTP/1.1 200 OK\r\n")
    assert whole.endswith(b"\r\nContent-Length: 12\r\n\r\n" + b'{"ok": true}')

    head, *pieces = answer([b"a", b"b"], [("Content-Length", "2")])
    assert head.endswith(b"\r\n\r\n") and pieces == [b"a", b"b"]
    head, chunk, end = answer([b"data: 1\n\n"], [("Content-Type", "text/event-stream")])
    assert b"Transfer-Encoding: chunked" in head and chunk == b"9\r\ndata: 1\n\n\r\n"
    assert end == b"0\r\n\r\n"
    (head,) = answer([b""], [("Content-Length", "5")], method="HEAD")
    assert head.endswith(b"Content-Length: 5\r\n\r\n")


def test_a_worker_lets_woken_greenlets_run_longer_than_five_ms_per_turn():
    """gevent runs the greenlets woken since its last poll of the sockets (a batch of
    accepted orders, the viewers of an event) for the switch interval only, Python's
    5 ms, then polls again: under load the woken waited several turns. A production
    worker (gevent patched, the config's ``post_worker_init``) sets it to
    ``LOOP_CALLBACKS_S``."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import runpy, sys\n"
        f"config = runpy.run_path({str(Path(__file__).parents[2] / 'gunicorn.conf.py')!r})\n"
        "before = sys.getswitchinterval()\n"
        "config['post_worker_init'](None)\n"
        "print(before, sys.getswitchinterval(), config['LOOP_CALLBACKS_S'])\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    before, after, configured = map(float, out.stdout.split())
    assert before == pytest.approx(0.005) and after == pytest.approx(configured) == 0.05
