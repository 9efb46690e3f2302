"""GET /healthz: 200 when a turn could be saved now, 503 with a reason a person can act on.

App Service's health check calls it. The reason names the setting to look at (a full
disk, a missing container, a refused key) and never carries a secret or a trace.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..errors import StorageError
from ..stores.state_storage import StateStorage

logger = logging.getLogger(__name__)


def make_health_handler(storage: StateStorage, backend: str, timeout_seconds: float = 5.0):
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
            return web.json_response({"status": "ok", "storage": backend})
        logger.warning("health check: %s", reason)
        return web.json_response({"status": "unavailable", "storage": backend, "reason": reason}, status=503)

    return healthz
