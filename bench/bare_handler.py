"""The limit on this machine: an aiohttp handler that parses the activity and
posts N replies to the channel (``BENCH_REPLIES``, default 4), one after the
other, over one pooled keep-alive session. No SDK, no state.

With ``BENCH_STORE`` (cosmos, blob or table) it first makes the raw client's turn
(``bench/raw_client.py``: the same SDK calls, one read round and one write round):
the most any bot could reach on that store here, with the bench's driver and channel.

    PORT=8200 BENCH_REPLIES=4 [BENCH_STORE=blob] python -m bench.bare_handler
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Awaitable, Callable, Dict, Optional
from urllib.parse import quote

import aiohttp
from aiohttp import web

from bench import instrument, raw_client

#: Conversations the storage turn has items for; each new conversation takes the next.
STORAGE_SLOTS = 64


def create_app(replies: int, store: Optional[str] = None) -> web.Application:
    app = web.Application()
    slots: Dict[str, int] = {}
    storage_turn: Optional[Callable[[int], Awaitable[None]]] = None

    async def open_session(_: web.Application) -> None:
        nonlocal storage_turn
        app["session"] = aiohttp.ClientSession()
        if store:
            storage_turn, app["close_store"] = await raw_client.STORES[store](
                STORAGE_SLOTS, raw_client.parse_sizes(raw_client.DEFAULT_SIZES), os.urandom(4).hex())

    async def close_session(_: web.Application) -> None:
        await app["session"].close()
        if "close_store" in app:
            await app["close_store"]()

    async def messages(request: web.Request) -> web.Response:
        activity = json.loads(await request.read())
        conversation = activity["conversation"]
        if storage_turn is not None:
            slot = slots.setdefault(conversation["id"], len(slots) % STORAGE_SLOTS)
            await storage_turn(slot)
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
    from state_engine.stores.azure_logging import quiet_azure_logging

    quiet_azure_logging()
    web.run_app(
        create_app(int(os.environ.get("BENCH_REPLIES", "4")), os.environ.get("BENCH_STORE") or None),
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
    )
