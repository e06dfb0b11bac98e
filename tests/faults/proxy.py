"""A loopback TCP forwarder that a test can cut and restore: "the server is down".

The shared Redis and PostgreSQL servers are never stopped (other test runs use them). A test
points the connector at a `Proxy` in front of them instead, and `cut()` makes the server
look down from the connector's side: open connections are reset and new ones refused.
`restore()` listens again on the same port, so the connector's URL stays valid.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from urllib.parse import urlsplit, urlunsplit

Address = tuple[str, int] | str  # (host, port), or the path of a unix socket


class Proxy:
    """Forwards 127.0.0.1:`port` to `upstream`, one thread per connection."""

    def __init__(self, upstream: Address) -> None:
        self.upstream = upstream
        self.port = 0
        self.connections_made = 0
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._up = False
        self._hold_replies = False

    def start(self) -> Proxy:
        self._listen()
        return self

    @property
    def up(self) -> bool:
        return self._up

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until `restore()`."""
        with self._lock:
            self._up = False
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:  # shutdown wakes the thread blocked in accept()
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            _close(listener)
        for sock in sockets:
            _reset(sock)

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        if not self._up:
            self._listen()

    def hold_replies(self, hold: bool = True) -> None:
        """Stop (or resume) forwarding what the server answers; requests still go through.

        The server does the work (a committed INSERT) and its answer waits in the proxy.
        """
        self._hold_replies = hold

    def stop(self) -> None:
        self.cut()

    def __enter__(self) -> Proxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        with self._lock:
            self._listener, self._up = listener, True
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = _connect(self.upstream)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    _reset(client)
                    _reset(server)
                    return
                self._sockets.update((client, server))
                self.connections_made += 1
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        pair = {client: server, server: client}
        try:
            while True:
                watched = [client] if self._hold_replies else [client, server]
                readable, _, _ = select.select(watched, [], [], 0.1)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except (OSError, ValueError):
            return  # reset or closed by cut()
        finally:
            with self._lock:
                self._sockets.discard(client)
                self._sockets.discard(server)
            _close(client)
            _close(server)


def _connect(address: Address) -> socket.socket:
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(address)
        return sock
    sock = socket.create_connection(address, timeout=5)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _reset(sock: socket.socket) -> None:
    """Close with RST where possible (SO_LINGER 0): the peer sees the link drop."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


def upstream_of(url: str) -> Address:
    """Where a redis:// / postgresql:// / unix:// URL points (loopback defaults)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    default = 6379 if parts.scheme.startswith("redis") else 5432
    return (parts.hostname or "127.0.0.1", parts.port or default)


def through(url: str, proxy: Proxy) -> str:
    """`url` with its host and port replaced by the proxy's (a unix:// URL becomes redis://)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        return f"redis://127.0.0.1:{proxy.port}/{query.get('db', '0')}"
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@" if userinfo else ""
    return urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{proxy.port}"))
