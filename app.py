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

from state_engine.turns import RetryPolicy, TurnRunner, TurnScopedStorage, make_on_turn_error
from state_engine.hosting.authentication import use_openid_metadata
from state_engine.hosting.connectors import PooledBotFrameworkAuthentication
from bots import BotSettings, StateBot
from config import DefaultConfig
from dialogs import ProfileDialog
from state_engine.state import ConversationState, PrivateConversationState, UserState
from state_engine.stores import StorageConfigurationError, create_storage
from state_engine.hosting.errors import json_errors
from state_engine.hosting.health import make_health_handler
from state_engine.hosting.messages import make_messages_handler
from state_engine.hosting.serve import run
from state_engine.settings import SettingError


def create_app(config: DefaultConfig) -> web.Application:
    # Storage is the layer under all state; STORAGE picks the backend.
    storage = create_storage(config)

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
        ProfileDialog(user_state.create_property("UserProfile"), config.MAX_NAME_LENGTH),
        BotSettings(
            utterance_log_size=config.UTTERANCE_LOG_SIZE,
            max_text_length=config.MAX_TEXT_LENGTH,
            max_name_length=config.MAX_NAME_LENGTH,
            state_command_enabled=config.STATE_COMMAND_ENABLED,
        ),
    )
    # Saves every scope (and the direct writes) at the end of the turn, conditionally,
    # before the replies go out.
    runner = TurnRunner(
        bot,
        bot.states,
        storage,
        RetryPolicy(config.TURN_MAX_RETRIES, config.TURN_RETRY_BASE_DELAY),
    )

    # Channels sign each request's token with keys published as OpenID metadata
    # (BotOpenIdMetadata); the SDK fetches them, here bounded in time (hosting/authentication.py).
    use_openid_metadata(config.BOT_OPENID_METADATA)
    # The SDK's authentication, with one pooled connector per service URL
    # (adapter/connector_factory.py) instead of new clients on every turn.
    authentication = PooledBotFrameworkAuthentication(ConfigurationBotFrameworkAuthentication(config))
    adapter = CloudAdapter(authentication)
    adapter.on_turn_error = make_on_turn_error(conversation_state)

    # No route reads a body larger than MAX_REQUEST_BYTES; an unexpected error is
    # logged with its trace and answered without one.
    app = web.Application(client_max_size=config.MAX_REQUEST_BYTES, middlewares=[json_errors])
    app.router.add_post(
        "/api/messages", make_messages_handler(adapter, runner, config.MAX_REQUEST_BYTES)
    )
    app.router.add_get("/healthz", make_health_handler(storage))
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
except (SettingError, StorageConfigurationError, ValueError) as error:
    # A wrong setting: say which one, without a stack trace (SettingError and the
    # stores name the variable; the SDK raises ValueError for settings it refuses).
    raise SystemExit(f"Configuration error: {error}") from None


def print_banner(config: DefaultConfig) -> None:
    """What `make run` shows once the bot listens: where to point the Emulator, which store."""
    identity = "with MicrosoftAppId and MicrosoftAppPassword" if config.APP_ID else "no app id"
    lines = [
        f"Bot listening on {config.HOST}:{config.PORT}, state in STORAGE={config.STORAGE}",
        f"Emulator: open http://localhost:{config.PORT}/api/messages ({identity})",
    ]
    if config.HOST == "127.0.0.1":
        lines.append("In WSL or a container, set HOST=0.0.0.0 to reach the bot from the host")
        lines.append("  (warning: it then listens on every interface, open to your network).")
    elif config.HOST in ("0.0.0.0", "::"):
        lines.append(f"Warning: HOST={config.HOST} listens on every interface of this machine.")
    lines.append("Press Ctrl+C to stop.")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    run(APP, CONFIG.HOST, CONFIG.PORT, on_listening=lambda: print_banner(CONFIG))
