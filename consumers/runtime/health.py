"""HTTP endpoint of a daemon: ``/healthz``, ``/readyz`` and Prometheus ``/metrics``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shopstream.errors import UsageError


class HealthServer:
    """Serves health and metrics on 127.0.0.1:<port> (0 picks a free port) in a thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        healthy: Callable[[], tuple[bool, str]],
        ready: Callable[[], tuple[bool, str]],
        port: int,
        host: str = "127.0.0.1",
    ) -> None:
        self._registry = registry
        self._healthy = healthy
        self._ready = ready
        self._address = (host, port)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else 0

    def start(self) -> None:
        handler = self._handler_class()
        try:
            self._server = ThreadingHTTPServer(self._address, handler)
        except OSError as exc:
            raise UsageError(
                f"cannot serve health/metrics on {self._address[0]}:{self._address[1]}: "
                f"{exc.strerror} (choose another --http-port, or 0 for a free one)"
            ) from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-http", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, generate_latest(server._registry), CONTENT_TYPE_LATEST)
                elif self.path in ("/healthz", "/readyz"):
                    check = server._healthy if self.path == "/healthz" else server._ready
                    ok, text = check()
                    self._send(200 if ok else 503, (text + "\n").encode(), "text/plain")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Silence the default per-request stderr line."""

        return Handler
