"""The listening socket of each HTTP server this project runs (services, console)."""

from __future__ import annotations

import socket

from shopstream.errors import UsageError


def listening_socket(host: str, port: int, backlog: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening; a port in use or an address
    not on this machine is one :class:`UsageError` line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port, 0 for any)"
        ) from None
    sock.listen(backlog)
    return sock
