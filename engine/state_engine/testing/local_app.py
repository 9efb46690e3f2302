"""An aiohttp handler served on a free 127.0.0.1 port, in the test's own event loop
(``serving``) or on a thread with a loop of its own (``ThreadedServer``).

For stand-ins a test talks to over real HTTP (a channel that records replies, a proxy that
injects faults in front of an emulator): every request reaches ``handle``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import AsyncIterator, Awaitable, Callable, Optional, Union

import aiohttp
from aiohttp import web
from yarl import URL

Handle = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Headers that belong to one hop of a connection: a proxy never passes them on.
HOP_HEADERS = frozenset(
    {"host", "connection", "keep-alive", "content-length", "transfer-encoding", "proxy-connection",
     "proxy-authorization"}
)


@contextlib.asynccontextmanager
async def serving(handle: Handle) -> AsyncIterator[str]:
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


async def forward(
    session: aiohttp.ClientSession, request: web.Request, url: Union[str, URL], body: bytes
) -> web.Response:
    """``request`` (its ``body`` read already) sent on to ``url``, and the answer to send
    back: the headers of one hop left out both ways, and none added that a signature of
    the request would not cover."""
    headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
    async with session.request(
        request.method, url, headers=headers, data=body, skip_auto_headers=("Content-Type",)
    ) as answer:
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS}
        return web.Response(status=answer.status, body=await answer.read(), headers=kept)


class ThreadedServer:
    """``handle`` served on a thread with its own event loop, so a test that blocks (or a
    bot process) can talk to it. ``session`` is an aiohttp client on that loop, for a
    handler that forwards requests."""

    def __init__(self, handle: Handle, client_max_size: int = 64 * 1024 * 1024) -> None:
        self._handle = handle
        self._client_max_size = client_max_size
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.session: Optional[aiohttp.ClientSession] = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="threaded-server")
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the stand-in server did not start")

    def _serve(self) -> None:
        runner = self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        if self.session is not None:
            self._loop.run_until_complete(self.session.close())
        self._loop.run_until_complete(runner.cleanup())
        self._loop.close()

    async def _start(self) -> web.AppRunner:
        app = web.Application(client_max_size=self._client_max_size)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, self._socket).start()
        self.session = aiohttp.ClientSession(auto_decompress=False)
        return runner

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
