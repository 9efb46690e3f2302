"""Wiring only: settings -> storage -> state scopes -> bot -> turn runner -> adapter -> routes.

Run it with ``python app.py`` (what ``make run`` does) or, as App Service does,
``gunicorn --worker-class aiohttp.worker.GunicornWebWorker app:APP``.
"""

from __future__ import annotations

import logging

from aiohttp import web
from botbuilder.integration.aiohttp import CloudAdapter, ConfigurationBotFrameworkAuthentication

from bots import BotSettings, StateBot
from config import DefaultConfig
from dialogs import ProfileDialog
from state_engine.errors import StorageConfigurationError
from state_engine.hosting import routes
from state_engine.hosting.authentication import use_openid_metadata
from state_engine.hosting.connectors import PooledBotFrameworkAuthentication
from state_engine.hosting.serve import banner, run
from state_engine.settings import SettingError
from state_engine.state import ConversationState, PrivateConversationState, UserState
from state_engine.stores import create_storage
from state_engine.turns import RetryPolicy, TurnRunner, TurnScopedStorage, make_on_turn_error


def create_app(config: DefaultConfig) -> web.Application:
    # Storage is the layer under all state; STORAGE picks the backend (SQLite by default).
    storage = create_storage(
        config.STORAGE, config.STORAGE_SETTINGS, deadline_seconds=config.TURN_DEADLINE_SECONDS
    )
    # During a turn, what the scopes and the bot read comes from one read of everything
    # the turn touches, and what they write waits for the turn runner to save it all at once.
    turn_storage = TurnScopedStorage(storage)

    # The three state scopes of "Managing state", all on the same storage: the SDK's
    # classes, read once per turn and compared on the JSON they store (drop-ins).
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
    # The docs' save_changes at the end of the turn, made safe for several instances:
    # saves every change in one conditional write, then sends the replies (drop-in Bot).
    runner = TurnRunner(
        bot,
        bot.states,
        turn_storage,
        RetryPolicy(config.TURN_MAX_RETRIES, config.TURN_RETRY_BASE_DELAY),
        deadline_seconds=config.TURN_DEADLINE_SECONDS,
    )

    # The SDK's CloudAdapter and authentication, as the docs wire them; channel tokens'
    # signing keys are fetched without blocking (BotOpenIdMetadata), and replies go out on
    # one pooled connection per service URL (drop-in BotFrameworkAuthentication).
    use_openid_metadata(config.BOT_OPENID_METADATA)
    authentication = PooledBotFrameworkAuthentication(ConfigurationBotFrameworkAuthentication(config))
    adapter = CloudAdapter(authentication)
    adapter.on_turn_error = make_on_turn_error(private_conversation_state, storage)

    # /api/messages (validated, authenticated, bounded), /healthz (the store, and how the
    # replies go), and /dev/state for the local chat page only (never with an app id).
    return routes.create_web_app(
        adapter,
        runner,
        storage,
        routes.RouteSettings(
            backend=config.STORAGE,
            max_request_bytes=config.MAX_REQUEST_BYTES,
            max_turns=config.MAX_CONCURRENT_TURNS,
            dev_state=config.DEV_STATE_ENDPOINT,
            app_id=config.APP_ID,
        ),
        closing=[authentication.close],
        replies=authentication.reply_health,
    )


try:
    CONFIG = DefaultConfig.from_env()
    logging.basicConfig(level=CONFIG.LOG_LEVEL, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    APP = create_app(CONFIG)
except (SettingError, StorageConfigurationError, ValueError) as error:
    # A wrong setting: say which one, without a stack trace (SettingError and the
    # stores name the variable; the SDK raises ValueError for settings it refuses).
    raise SystemExit(f"Configuration error: {error}") from None

if __name__ == "__main__":
    listening = banner(CONFIG.HOST, CONFIG.PORT, CONFIG.STORAGE, CONFIG.APP_ID)
    run(APP, CONFIG.HOST, CONFIG.PORT, on_listening=lambda: print(listening, flush=True))
