"""Serve a WSGI app on loopback from a daemon thread: the base of the local HTTP fakes.

werkzeug's development server runs the app; `LoopbackServer` adds what a fake needs around
it: port 0, a daemon thread, a `stop` that also cuts open connections, HTTP/1.1 keep-alive
(the connector's clients reuse connections, as they do with the real services), and a way
for the app to hang up without answering (`drop_connection`).
"""

from __future__ import annotations

import io
import socket
import threading
from typing import TYPE_CHECKING

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication, WSGIEnvironment

POLL_SECONDS = 0.05  # how soon the serving thread notices `stop`

_open: dict[BaseWSGIServer, set[socket.socket]] = {}  # connections being served, per server
_open_lock = threading.Lock()


class DropConnectionError(ConnectionError):
    """Raised by an app that hung up on purpose (see `drop_connection`)."""


def drop_connection(environ: WSGIEnvironment) -> DropConnectionError:
    """Shut the request's socket, so the client sees a dropped connection.

    Returns the error for the app to raise: werkzeug takes it for a client that went away,
    and neither answers nor logs.
    """
    try:
        environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    return DropConnectionError("connection dropped on purpose")


class _KeepAliveHandler(WSGIRequestHandler):
    """werkzeug's handler, keeping HTTP/1.1 connections open between requests.

    werkzeug answers every request with `Connection: close` and then drains the socket,
    which would swallow the client's next request. Here the connection stays open unless
    the client asks to close, or the app does (a `Connection: close` response header; the
    app must then not have read the body), and the drain reads from an empty buffer.
    """

    timeout = 60  # an idle keep-alive connection is closed after this
    disable_nagle_algorithm = True  # else a reply's body waits ~40 ms behind its headers
    _keep_alive = False
    _closes_asked = 0

    def setup(self) -> None:
        super().setup()
        with _open_lock:
            _open.get(self.server, set()).add(self.connection)

    def finish(self) -> None:
        with _open_lock:
            _open.get(self.server, set()).discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def handle_one_request(self) -> None:
        self._keep_alive = False  # until a request line and headers parsed cleanly
        self._socket_stream = self.rfile
        super().handle_one_request()

    def make_environ(self) -> WSGIEnvironment:
        environ = super().make_environ()  # the app reads the body from the real stream
        self._keep_alive = not self.close_connection  # what the client asked for
        self._closes_asked = 0
        self._socket_stream, self.rfile = self.rfile, io.BytesIO()  # seen by the drain
        return environ

    def run_wsgi(self) -> None:
        try:
            super().run_wsgi()
        finally:
            self.rfile = self._socket_stream

    def send_header(self, keyword: str, value: str) -> None:
        if self._keep_alive and keyword.lower() == "connection" and value.lower() == "close":
            self._closes_asked += 1  # decided in end_headers
            return
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        if self._closes_asked > 1:  # the app's, besides the one werkzeug always sends
            super().send_header("Connection", "close")
        self._closes_asked = 0
        super().end_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Keep the access log off stderr."""


class LoopbackServer:
    """One WSGI app served by werkzeug's threaded server until `stop`."""

    def __init__(self, app: WSGIApplication, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app, self.host, self.port = app, host, port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def open_connections(self) -> set[socket.socket]:
        """The connections being served now (kept-alive ones included)."""
        with _open_lock:
            return set(_open.get(self._server, ())) if self._server is not None else set()

    def start(self) -> int:
        """Bind (port 0: any free port), serve from a daemon thread; return the port."""
        server = make_server(
            self.host, self.port, self.app, threaded=True, request_handler=_KeepAliveHandler
        )
        with _open_lock:
            _open[server] = set()
        self._server, self.port = server, server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True
        )
        self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop serving and cut every connection still open."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with _open_lock:
            connections = _open.pop(server, set())
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
