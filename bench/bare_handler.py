"""The limit on this machine: an aiohttp handler that parses the activity and
posts N replies to the channel (``BENCH_REPLIES``, default 4), one after the
other, over one pooled keep-alive session. No SDK, no state.

    PORT=8200 BENCH_REPLIES=4 python -m bench.bare_handler
"""

from __future__ import annotations

import json
import os
import uuid
from urllib.parse import quote

import aiohttp
from aiohttp import web

from bench import instrument


def create_app(replies: int) -> web.Application:
    app = web.Application()

    async def open_session(_: web.Application) -> None:
        app["session"] = aiohttp.ClientSession()

    async def close_session(_: web.Application) -> None:
        await app["session"].close()

    async def messages(request: web.Request) -> web.Response:
        activity = json.loads(await request.read())
        conversation = activity["conversation"]
        url = (
            f"{activity['serviceUrl'].rstrip('/')}/v3/conversations/"
            f"{quote(conversation['id'], safe='')}/activities/{quote(activity['id'], safe='')}"
        )
        session: aiohttp.ClientSession = app["session"]
        for number in range(replies):
            reply = {
                "type": "message",
                "id": uuid.uuid4().hex,
                "channelId": activity["channelId"],
                "serviceUrl": activity["serviceUrl"],
                "conversation": conversation,
                "from": activity["recipient"],
                "recipient": activity["from"],
                "replyToId": activity["id"],
                "text": f"reply {number}: {activity.get('text', '')}",
            }
            async with session.post(url, json=reply) as response:
                response.raise_for_status()
                await response.read()
        return web.Response(status=201)

    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", lambda _: web.json_response({"status": "ok"}))
    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    instrument.attach(app)
    return app


if __name__ == "__main__":
    web.run_app(
        create_app(int(os.environ.get("BENCH_REPLIES", "4"))),
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
    )
