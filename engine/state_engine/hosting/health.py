"""GET /healthz: 200 when the store answers, 503 (with the reason) when it does not.

App Service's health check calls it; the body never includes settings or secrets."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from ..errors import StorageError
from ..stores.state_storage import StateStorage

logger = logging.getLogger(__name__)


def make_health_handler(storage: StateStorage, timeout_seconds: float = 5.0):
    async def healthz(request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(storage.ping(), timeout_seconds)
        except (StorageError, asyncio.TimeoutError) as error:
            logger.warning("health check failed: %s", type(error).__name__)
            return web.json_response(
                {"status": "unavailable", "storage": type(storage).__name__,
                 "reason": type(error).__name__},
                status=503,
            )
        return web.json_response({"status": "ok", "storage": type(storage).__name__})

    return healthz
