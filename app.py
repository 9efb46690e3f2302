"""Wiring only: config -> storage -> state -> bot -> turn runner -> adapter -> routes.

Run it with ``python app.py`` (what ``make run`` does) or, as App Service does,
``gunicorn --worker-class aiohttp.worker.GunicornWebWorker app:APP``.
"""

from __future__ import annotations

import logging

from aiohttp import web
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)

import os

from state_engine.errors import StorageConfigurationError
from state_engine.hosting.connectors import PooledBotFrameworkAuthentication
from state_engine.stores import create_storage, read_backend_settings
from state_engine.turns import RetryPolicy, TurnRunner, TurnScopedStorage, make_on_turn_error
from bots import BotSettings, StateBot
from config import DefaultConfig
from dialogs import ProfileDialog
from state_engine.state import ConversationState, PrivateConversationState, UserState
from state_engine.hosting.errors import json_errors
from state_engine.hosting.health import make_health_handler
from state_engine.hosting.messages import make_messages_handler


TURN_DEADLINE_SECONDS = float(os.environ.get("TURN_DEADLINE_SECONDS", "10"))


def create_app(config: DefaultConfig) -> web.Application:
    # Storage is the layer under all state; STORAGE picks the backend.
    settings = read_backend_settings(config.STORAGE, os.environ)
    storage = create_storage(config.STORAGE, settings, deadline_seconds=TURN_DEADLINE_SECONDS)

    # During a turn, the turn runner notes what was read from it and holds what the
    # bot writes directly, to save it all in one conditional write (adapter/turn_runner.py).
    turn_storage = TurnScopedStorage(storage)

    # The three state scopes of "Managing state", all on the same storage (the SDK's
    # classes, deciding "changed?" on the JSON they store: state/scopes.py).
    conversation_state = ConversationState(turn_storage)
    user_state = UserState(turn_storage)
    private_conversation_state = PrivateConversationState(turn_storage)

    bot = StateBot(
        conversation_state,
        user_state,
        private_conversation_state,
        turn_storage,
        ProfileDialog(user_state.create_property("UserProfile"), BotSettings.max_name_length),
        BotSettings(
            utterance_log_size=config.UTTERANCE_LOG_SIZE,
            max_text_length=config.MAX_TEXT_LENGTH,
            state_command_enabled=config.STATE_COMMAND_ENABLED,
        ),
    )
    # Saves every scope (and the direct writes) at the end of the turn, conditionally,
    # before the replies go out.
    runner = TurnRunner(
        bot,
        bot.states,
        turn_storage,
        RetryPolicy(config.TURN_MAX_RETRIES, config.TURN_RETRY_BASE_DELAY),
        deadline_seconds=TURN_DEADLINE_SECONDS,
    )

    # The SDK's authentication, with one pooled connector per service URL
    # (adapter/connector_factory.py) instead of new clients on every turn.
    authentication = PooledBotFrameworkAuthentication(ConfigurationBotFrameworkAuthentication(config))
    adapter = CloudAdapter(authentication)
    adapter.on_turn_error = make_on_turn_error(private_conversation_state, storage)

    # No route reads a body larger than MAX_REQUEST_BYTES; an unexpected error is
    # logged with its trace and answered without one.
    app = web.Application(client_max_size=config.MAX_REQUEST_BYTES, middlewares=[json_errors])
    app.router.add_post(
        "/api/messages", make_messages_handler(adapter, runner, config.MAX_REQUEST_BYTES)
    )
    app.router.add_get("/healthz", make_health_handler(storage, config.STORAGE))
    if config.DEV_STATE_ENDPOINT:
        # Development only (never with an app id): the records `make chat` shows
        # beside Web Chat, as stored. It answers only on 127.0.0.1.
        from state_engine.hosting.dev_state import make_dev_state_handler

        app.router.add_get("/dev/state", make_dev_state_handler(storage))

    async def close_storage(_: web.Application) -> None:
        await storage.close()

    app.on_cleanup.append(close_storage)

    async def close_connections(_: web.Application) -> None:
        await authentication.close()

    app.on_cleanup.append(close_connections)
    return app


try:
    CONFIG = DefaultConfig.from_env()
    logging.basicConfig(
        level=CONFIG.LOG_LEVEL, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    APP = create_app(CONFIG)
except (ValueError, StorageConfigurationError) as error:
    # A wrong setting: say which one, without a stack trace.
    raise SystemExit(f"Configuration error: {error}") from None

if __name__ == "__main__":
    web.run_app(APP, host=CONFIG.HOST, port=CONFIG.PORT)
