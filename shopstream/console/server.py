"""``shopstream console``: serve the console with uvicorn until SIGTERM/SIGINT.

Loopback only by default: any other address is refused unless a token is configured
(``SHOPSTREAM_CONSOLE_TOKEN``), which every page then asks for. The socket is bound
before uvicorn starts, so ``--port 0`` picks a free port and the address printed is
the one that answers. uvicorn stops on SIGTERM/SIGINT: open streams are closed, the
sampler stops, and the process exits 0, like the consumer daemons.
"""

from __future__ import annotations

import ipaddress
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn

from shopstream.config import Settings
from shopstream.console.app import ConsoleOptions, create_app
from shopstream.errors import UsageError
from shopstream.logs import get_logger
from shopstream.sockets import listening_socket

log = get_logger("shopstream.console")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
SHUTDOWN_GRACE_S = 3


class _Server(uvicorn.Server):
    """uvicorn re-raises the signal it stopped on once it is done, so the process ends
    by that signal; the console, like the consumer daemons, exits 0 after a clean stop."""

    stopped_by: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self.stopped_by = sig
        self._captured_signals.clear()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: Settings) -> None:
    """Refuse a non-loopback address when no token is configured."""
    if not is_loopback(host) and settings.shopstream_console_token is None:
        raise UsageError(
            f"refusing to listen on {host} without a token: set SHOPSTREAM_CONSOLE_TOKEN "
            f"(every page then asks for it) or keep the default {DEFAULT_HOST}"
        )


def bind(host: str, port: int) -> socket.socket:
    sock = listening_socket(host, port, backlog=128)
    sock.setblocking(False)
    return sock


def serve(
    settings: Settings,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    options: ConsoleOptions | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT; ``announce`` gets the URL once listening."""
    check_bind(host, settings)
    sock = bind(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{sock.getsockname()[1]}/"
    app = create_app(settings, options)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        lifespan="on",
    )
    server = _Server(config)
    log.info("console.listening", url=url, token=settings.shopstream_console_token is not None)
    (announce or _print)(url)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if server.stopped_by is not None:
        log.info("console.signal", signal=signal.Signals(server.stopped_by).name)


def _print(url: str) -> None:
    sys.stdout.write(f"console: {url}\n")
    sys.stdout.flush()
