"""Serve an aiohttp app the way ``python app.py`` does, with idle connections bounded.

An address that cannot be listened on ends the process with one line naming the
setting to change, not a traceback. Under gunicorn (App Service) the worker serves
the app instead and none of this runs.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from typing import Callable, List, Optional

from aiohttp import web

#: An idle keep-alive connection is closed after this long (aiohttp's default is 75 s).
#: aiohttp starts the same timer when a connection opens, so a client that never
#: finishes sending its request headers is dropped after it too.
KEEPALIVE_TIMEOUT_SECONDS = 15.0
#: As asyncio decides: on POSIX a restarted bot may take its port at once; on Windows the
#: option would let a second bot take a port that is in use.
REUSE_ADDRESS = os.name == "posix" and sys.platform != "cygwin"
ADDRESS_IN_USE = {errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)}


def listen_error(
    error: OSError, host: str, port: int, port_setting: str = "PORT", host_setting: str = "HOST"
) -> str:
    """The one line saying why ``host:port`` cannot be listened on, and which setting to change."""
    where = f"Cannot listen on {host}:{port}"
    if isinstance(error, socket.gaierror):
        return f"{where} ({host_setting}): {host!r} is not an address or a known host name"
    if error.errno in ADDRESS_IN_USE:
        return f"{where} ({port_setting}): the address is already in use"
    if error.errno == errno.EACCES:
        return f"{where} ({port_setting}): permission denied (ports below 1024 need privileges)"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{where} ({host_setting}): the address is not one of this machine's"
    return f"{where}: {error.strerror or error}"


def bind(host: str, port: int) -> List[socket.socket]:
    """A bound socket for each address ``host`` resolves to, as asyncio would bind them,
    so a refused address is known before serving starts."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    # A name listed twice in /etc/hosts resolves twice: bind each address once.
    addresses = dict.fromkeys((family, kind, proto, addr) for family, kind, proto, _, addr in infos)
    sockets: List[socket.socket] = []
    try:
        for family, kind, proto, address in addresses:
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if REUSE_ADDRESS:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def banner(host: str, port: int, backend: str, app_id: str) -> str:
    """What the bot prints once it listens: where to point the Emulator, which store."""
    identity = "with MicrosoftAppId and MicrosoftAppPassword" if app_id else "no app id"
    lines = [
        f"Bot listening on {host}:{port}, state in STORAGE={backend}",
        f"Emulator: open http://localhost:{port}/api/messages ({identity})",
    ]
    if host == "127.0.0.1":
        lines.append("In WSL or a container, set HOST=0.0.0.0 to reach the bot from the host")
        lines.append("  (warning: it then listens on every interface, open to your network).")
    elif host in ("0.0.0.0", "::"):
        lines.append(f"Warning: HOST={host} listens on every interface of this machine.")
    lines.append("Press Ctrl+C to stop.")
    return "\n".join(lines)


def run(
    app: web.Application,
    host: str,
    port: int,
    *,
    port_setting: str = "PORT",
    host_setting: str = "HOST",
    on_listening: Optional[Callable[[], None]] = None,
    keepalive_timeout: float = KEEPALIVE_TIMEOUT_SECONDS,
) -> None:
    """Serve ``app`` on ``host:port`` until SIGINT or SIGTERM; ``on_listening`` runs once
    the socket is listening (in place of aiohttp's "Running on" line)."""
    try:
        sockets = bind(host, port)
    except OSError as error:
        raise SystemExit(listen_error(error, host, port, port_setting, host_setting)) from None
    announce = (lambda _text: on_listening()) if on_listening is not None else print
    # An access log line per request is CPU under load; gunicorn (App Service) logs none either.
    access_log = logging.getLogger("aiohttp.access") if logging.getLogger().isEnabledFor(logging.DEBUG) else None
    web.run_app(app, sock=sockets, keepalive_timeout=keepalive_timeout, print=announce, access_log=access_log)
