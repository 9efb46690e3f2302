"""A channel that accepts replies as fast as it can, in a process of its own.

The bot posts each reply to ``{serviceUrl}/v3/conversations/{id}/activities[/{replyToId}]``.
This server answers every POST with a resource id and counts what arrived, so
the benchmark can check that every turn produced all its replies. It uses
aiohttp's low-level server (no router, no middlewares) so that the channel is
never what limits a run.

    python -m bench.channel --port 8100     # GET /stats, POST /reset
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json

from aiohttp import web

_PREFIX = "/v3/conversations/"


class Channel:
    def __init__(self) -> None:
        self.replies = 0
        self.bad = 0
        self._ids = itertools.count(1)

    async def handle(self, request: web.BaseRequest) -> web.Response:
        if request.method == "POST" and request.path.startswith(_PREFIX):
            body = await request.read()
            if b'"type"' in body:
                self.replies += 1
            else:
                self.bad += 1
            return web.Response(
                body=b'{"id":"r%d"}' % next(self._ids), content_type="application/json"
            )
        if request.path == "/stats":
            return web.Response(
                text=json.dumps({"replies": self.replies, "bad": self.bad}),
                content_type="application/json",
            )
        if request.path == "/reset":
            self.replies = self.bad = 0
            return web.Response(text="{}", content_type="application/json")
        return web.Response(status=404)


async def serve(port: int) -> None:
    channel = Channel()
    server = web.Server(channel.handle, access_log=None)
    runner = web.ServerRunner(server)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
