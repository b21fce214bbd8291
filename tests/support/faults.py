"""Real services to break on purpose: a throwaway PostgreSQL cluster, a throwaway Redis
server, and a TCP proxy in front of PostgreSQL that cuts, refuses, freezes, or loses
the reply to a COMMIT.

Fault tests stop, freeze and restart these, never the machine's shared PostgreSQL or
Redis (other people's tests run on those). Without the PostgreSQL binaries or
``redis-server`` the tests that need them are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


# ------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian's layout), or None."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """A PostgreSQL cluster of its own in a temporary directory, on a free port, trust
    auth. PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="shanhuo-faults-pg-"))
        self.data = self.base / "data"
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_postgres, str(self.bin_dir / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.base}"
            " -c fsync=off -c max_connections=60"
        )
        log = str(self.base / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, port: int | None = None) -> str:
        return (
            f"postgresql+psycopg://postgres@127.0.0.1:{port or self.port}/postgres?sslmode=disable"
        )

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = postgres_bin()
    if bin_dir is None or (shutil.which("runuser") is None and os.geteuid() == 0):
        pytest.skip("needs the PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


# ------------------------------------------------------------------------------ Redis


class RedisServer:
    """``redis-server`` on a free port, keeping nothing on disk: a restart is empty."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server")
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------------------ proxy

#: Startup-phase requests that come before the StartupMessage (answered by one byte).
_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104


class _Pair:
    """One client connection and its connection to the server."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server
        self.commit_sent = False  #: the COMMIT whose reply is to be lost has gone out
        self.closed = threading.Event()

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class PgProxy:
    """A TCP proxy between the app and PostgreSQL, with faults on demand.

    ``cut()`` closes every open connection (a server or network that dropped them),
    ``refuse()`` stops listening (connection refused) until ``accept()``, ``freeze()``
    holds everything in both directions until ``thaw()`` (a server stopped with
    SIGSTOP: the kernel still accepts and ACKs, nothing answers), and
    ``lose_next_commit_reply()`` lets the next ``COMMIT`` reach the server, then
    throws its reply away and cuts that connection (the server committed; the app
    never hears so).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.pairs: list[_Pair] = []
        self.lock = threading.Lock()
        self.flowing = threading.Event()
        self.flowing.set()
        self.held = threading.Event()  #: set when frozen data arrived from the app
        self.commit_lost = threading.Event()
        self._lose_commit_reply = False
        self._listener: socket.socket | None = None

    # -- faults

    def cut(self) -> None:
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for pair in pairs:
            pair.close()

    def refuse(self) -> None:
        if self._listener is not None:
            # shutdown() first: close() alone leaves a socket blocked in accept() listening
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None

    def accept(self) -> None:
        if self._listener is None:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(64)
            self._listener = listener
            threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()

    def freeze(self) -> None:
        self.held.clear()
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def lose_next_commit_reply(self) -> None:
        self.commit_lost.clear()
        self._lose_commit_reply = True

    def heal(self) -> None:
        """Back to a plain proxy: listening, flowing, nothing armed."""
        self._lose_commit_reply = False
        self.thaw()
        self.accept()

    def close(self) -> None:
        self.refuse()
        self.thaw()
        self.cut()

    # -- plumbing

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # refuse() closed the listener
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port), 5)
                server.settimeout(None)
            except OSError:
                client.close()  # the server is down: the app sees its connection closed
                continue
            pair = _Pair(client, server)
            with self.lock:
                self.pairs.append(pair)
            threading.Thread(target=self._from_app, args=(pair,), daemon=True).start()
            threading.Thread(target=self._from_server, args=(pair,), daemon=True).start()

    def _wait_until_flowing(self, pair: _Pair) -> bool:
        while not self.flowing.wait(0.05):
            if pair.closed.is_set():
                return False
        return not pair.closed.is_set()

    def _from_app(self, pair: _Pair) -> None:
        buffer = b""
        started = False  # past the StartupMessage: every message is type byte + length
        try:
            while chunk := pair.client.recv(65536):
                if not self.flowing.is_set():
                    self.held.set()
                if not self._wait_until_flowing(pair):
                    return
                buffer += chunk
                while True:
                    header = 5 if started else 4
                    if len(buffer) < header:
                        break
                    length = struct.unpack("!I", buffer[header - 4 : header])[0]
                    size = length + (1 if started else 0)
                    if len(buffer) < size:
                        break
                    message, buffer = buffer[:size], buffer[size:]
                    if not started:
                        code = struct.unpack("!I", message[4:8])[0]
                        started = code not in (_SSL_REQUEST, _GSSENC_REQUEST)
                    elif self._lose_commit_reply and _is_commit(message):
                        self._lose_commit_reply = False
                        pair.commit_sent = True
                    pair.server.sendall(message)
        except OSError:
            pass
        finally:
            pair.close()

    def _from_server(self, pair: _Pair) -> None:
        try:
            while chunk := pair.server.recv(65536):
                if not self._wait_until_flowing(pair):
                    return
                if pair.commit_sent:
                    # The server has committed and answered; the answer is lost.
                    self.commit_lost.set()
                    return
                pair.client.sendall(chunk)
        except OSError:
            pass
        finally:
            pair.close()


def _is_commit(message: bytes) -> bool:
    """A simple-protocol Query ('Q') for COMMIT: how psycopg commits."""
    return message[:1] == b"Q" and message[5:].strip(b"\0").strip().upper() == b"COMMIT"


@pytest.fixture(scope="module")
def pg_proxy(postgres_server: PostgresServer) -> Iterator[PgProxy]:
    proxy = PgProxy(postgres_server.port)
    proxy.accept()
    try:
        yield proxy
    finally:
        proxy.close()
