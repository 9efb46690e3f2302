"""An aiohttp handler served on a free 127.0.0.1 port inside the test's own event loop.

For stand-ins a test talks to over real HTTP (a channel that records replies, a proxy that
injects faults in front of an emulator): every request reaches ``handle``.
"""

from __future__ import annotations

import contextlib
from typing import AsyncIterator, Awaitable, Callable

from aiohttp import web


@contextlib.asynccontextmanager
async def serving(handle: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    """Serve ``handle`` for every path and method; yields its base URL."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # port 0: the OS picked one
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
