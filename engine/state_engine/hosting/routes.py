"""The bot's aiohttp application: /api/messages, /healthz and the development state route.

Bodies are bounded, an unexpected error is logged and answered without a trace, the store
and the connections close on shutdown, and what start-up built is moved out of the garbage
collector's way (``gc.freeze``), so a full collection never stalls a turn for long.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional, Sequence

from aiohttp import web
from botbuilder.core import Bot
from botbuilder.core.cloud_adapter_base import CloudAdapterBase

from ..stores.state_storage import StateStorage
from .connectors.replies import ReplyHealth
from .errors import json_errors
from .health import make_health_handler
from .messages import MAX_TURNS, make_messages_handler


@dataclass(frozen=True)
class RouteSettings:
    """What the routes need to know: the store's name for /healthz, the body limit, how
    many turns may run at once, and whether the development-only /dev/state route exists
    (refused with an app id: a bot that has one is reachable by others)."""

    backend: str
    max_request_bytes: int
    max_turns: int = MAX_TURNS
    dev_state: bool = False
    app_id: str = ""

    def __post_init__(self) -> None:
        if self.dev_state and self.app_id:
            raise ValueError(
                "the development state endpoint (DEV_STATE_ENDPOINT) is never served with an app id"
            )


def create_web_app(
    adapter: CloudAdapterBase,
    bot: Bot,
    storage: StateStorage,
    settings: RouteSettings,
    closing: Sequence[Callable[[], Awaitable[None]]] = (),
    replies: Optional[ReplyHealth] = None,
) -> web.Application:
    """The app; ``replies`` (``PooledBotFrameworkAuthentication.reply_health``) puts how
    the replies are going into /healthz."""
    app = web.Application(client_max_size=settings.max_request_bytes, middlewares=[json_errors])
    app.router.add_post(
        "/api/messages",
        make_messages_handler(adapter, bot, settings.max_request_bytes, settings.max_turns),
    )
    app.router.add_get("/healthz", make_health_handler(storage, settings.backend, replies))
    if settings.dev_state:
        from .dev_state import make_dev_state_handler

        app.router.add_get("/dev/state", make_dev_state_handler(storage))

    async def freeze_start_up_objects(_: web.Application) -> None:
        gc.collect()
        gc.freeze()

    async def close(_: web.Application) -> None:
        for close_one in (*closing, storage.close):
            await close_one()

    app.on_startup.append(freeze_start_up_objects)
    app.on_cleanup.append(close)
    return app
