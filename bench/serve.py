"""Bench-only entry: run a bot as it ships, plus the probes of ``bench.instrument``.

With ``MicrosoftAppId`` set, the bot's credentials answer the one call that needs Azure
AD (its outgoing token) locally; everything else, token checks included, is the SDK's.

    python -m bench.serve bot    # app.py's APP (STORAGE, SQLITE_PATH... from the environment)
    python -m bench.serve floor  # app.py's APP with the bot cut down to its replies
    python -m bench.serve docs   # bench/docs_wiring_app.py, the docs' default wiring
"""

from __future__ import annotations

import os
import sys

from aiohttp import web

from bench import instrument

#: The bot's token for its replies when an app id is set (the channel here ignores it).
LOCAL_TOKEN = "bench-local-token"


def _local_credentials() -> None:
    """Give ``ConfigurationBotFrameworkAuthentication`` a credentials factory whose
    credentials return a fixed token (MSAL's login call cannot work offline)."""
    import botbuilder.integration.aiohttp as integration
    from botframework.connector.auth import MicrosoftAppCredentials, PasswordServiceClientCredentialFactory

    class LocalTokenCredentials(MicrosoftAppCredentials):
        def get_access_token(self, force_refresh: bool = False) -> str:
            return LOCAL_TOKEN

    class LocalCredentialFactory(PasswordServiceClientCredentialFactory):
        async def create_credentials(self, app_id, oauth_scope, login_endpoint, validate_authority):
            if await self.is_authentication_disabled():
                return MicrosoftAppCredentials.empty()
            if not await self.is_valid_app_id(app_id):
                raise PermissionError("Invalid app_id")
            return LocalTokenCredentials(app_id, self.password, self.tenant_id, oauth_scope)

    sdk_class = integration.ConfigurationBotFrameworkAuthentication

    class LocalConfigurationAuthentication(sdk_class):
        def __init__(self, configuration, *args, **kwargs) -> None:
            kwargs.setdefault(
                "credentials_factory",
                LocalCredentialFactory(configuration.APP_ID, configuration.APP_PASSWORD),
            )
            super().__init__(configuration, *args, **kwargs)

    integration.ConfigurationBotFrameworkAuthentication = LocalConfigurationAuthentication


def serve_bot() -> None:
    import state_engine.stores as stores

    make_storage = stores.create_storage

    def counted_create_storage(*args, **kwargs):
        return instrument.count_items(make_storage(*args, **kwargs))

    # app.py imports both names when it is imported: replace them first.
    stores.create_storage = counted_create_storage
    if os.environ.get("MicrosoftAppId"):
        _local_credentials()
    import app
    from state_engine.hosting.serve import run

    instrument.attach(app.APP)
    run(app.APP, app.CONFIG.HOST, app.CONFIG.PORT)


def cut_to_replies() -> None:
    """Make the sample bot answer every message with the echo turn's replies and do
    nothing else: no state read or written (call before app.py is imported)."""
    from botbuilder.core import MessageFactory, TurnContext

    from bench.run import ECHO_REPLIES
    from bots import StateBot

    async def replies_only(self: StateBot, turn_context: TurnContext) -> None:
        text = turn_context.activity.text
        await turn_context.send_activities(
            [MessageFactory.text(f"reply {number}: {text}") for number in range(ECHO_REPLIES)]
        )

    StateBot.on_message_activity = replies_only


def serve_floor() -> None:
    """app.py's APP with the bot cut down to its replies: the engine's and the SDK's cost
    of a turn, beside which the bot's own rows show what the sample's state work adds."""
    cut_to_replies()
    serve_bot()


def serve_docs_wiring() -> None:
    from botbuilder.core import MemoryStorage

    from bench import docs_wiring_app
    from config import DefaultConfig

    docs_wiring_app.MemoryStorage = lambda: instrument.count_sdk_storage(MemoryStorage())
    docs_app = docs_wiring_app.create_app(DefaultConfig.from_env())
    instrument.attach(docs_app)
    web.run_app(docs_app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None)


if __name__ == "__main__":
    {"bot": serve_bot, "floor": serve_floor, "docs": serve_docs_wiring}[sys.argv[1]]()
