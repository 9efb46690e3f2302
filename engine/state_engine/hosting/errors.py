"""The last line of defence of every route: an unexpected error is a bug, so it
stays a 500 and its stack trace goes to the log, but never into the response.

aiohttp's own 500 page includes the traceback whenever the event loop runs in
debug mode (``PYTHONASYNCIODEBUG=1``, ``python -X dev``); this answer never does.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from aiohttp import web

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise  # aiohttp's 404/405/413 answers: deliberate, and without a trace
    except Exception:
        logger.exception("unhandled error answering %s %s", request.method, request.path)
        return web.json_response({"error": "internal error; see the bot's log"}, status=500)
