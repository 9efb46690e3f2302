"""GET /healthz: 200 when a turn could be saved now, 503 with a reason a person can act on.

App Service's health check calls it. The reason names the setting to look at (a full
disk, a missing container, a refused key) and never carries a secret or a trace. Replies
that a channel or the sign-in service failed are named too, under ``replies``, without
changing the status: another instance would reach that channel no better.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Dict, Optional

from aiohttp import web
from aiohttp.typedefs import Handler

from ..errors import StorageError
from ..stores.state_storage import StateStorage
from .connectors.replies import ReplyHealth

logger = logging.getLogger(__name__)


def make_health_handler(
    storage: StateStorage, backend: str, replies: Optional[ReplyHealth] = None, timeout_seconds: float = 5.0
) -> Handler:
    """GET /healthz for ``storage`` (named by ``backend`` in its answer): a ping within
    ``timeout_seconds``, and how the replies go when ``replies`` is given."""
    def answer(body: Dict[str, Any], status: int) -> web.Response:
        if replies is not None:
            body["replies"] = "ok" if replies.problem is None else (
                f"failing for {time.monotonic() - replies.since:.0f} s: {replies.problem}"
            )
        return web.json_response(body, status=status)

    async def healthz(request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(storage.ping(), timeout_seconds)
        except asyncio.TimeoutError:
            reason = f"the store did not answer within {timeout_seconds:g} s"
        except StorageError as error:
            reason = str(error)
        except Exception as error:  # a bug, not an outage: still an answer, never a 500
            logger.exception("health check failed unexpectedly")
            reason = f"the health check itself failed ({type(error).__name__})"
        else:
            return answer({"status": "ok", "storage": backend}, 200)
        logger.warning("health check: %s", reason)
        return answer({"status": "unavailable", "storage": backend, "reason": reason}, 503)

    return healthz
