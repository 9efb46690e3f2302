"""The docs' state-management wiring, as a user would copy it: the baseline.

CloudAdapter + ConfigurationBotFrameworkAuthentication, the SDK's MemoryStorage,
user/conversation/private state, and ``save_changes`` called at the end of the
turn after the replies were already sent (the 45.state-management pattern). It
runs this project's StateBot logic so that both wirings answer the same
commands; only the wiring differs: no turn runner, no buffered replies, no
conditional saves of new records, the SDK's own HTTP handler.

Used by the scale-out race harness and the benchmark; not part of the sample.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web  # noqa: E402
from botbuilder.core import (  # noqa: E402
    Bot,
    BotState,
    ConversationState,
    MemoryStorage,
    PrivateConversationState,
    TurnContext,
    UserState,
)
from botbuilder.integration.aiohttp import (  # noqa: E402
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)

from bots import BotSettings, StateBot  # noqa: E402
from config import DefaultConfig  # noqa: E402
from dialogs import ProfileDialog  # noqa: E402


class SaveAtEndOfTurn(Bot):
    """The docs' ``on_turn``: run the bot, then ``save_changes`` on every scope."""

    def __init__(self, bot: Bot, states: list[BotState]) -> None:
        self._bot = bot
        self._states = states

    async def on_turn(self, context: TurnContext) -> None:
        await self._bot.on_turn(context)
        for state in self._states:
            await state.save_changes(context)


def create_app(config: DefaultConfig) -> web.Application:
    storage = MemoryStorage()
    conversation_state = ConversationState(storage)
    user_state = UserState(storage)
    private_state = PrivateConversationState(storage)
    bot = SaveAtEndOfTurn(
        StateBot(
            conversation_state,
            user_state,
            private_state,
            storage,
            ProfileDialog(user_state.create_property("UserProfile"), BotSettings.max_name_length),
        ),
        [conversation_state, user_state, private_state],
    )
    adapter = CloudAdapter(ConfigurationBotFrameworkAuthentication(config))

    async def messages(request: web.Request) -> web.Response:
        return await adapter.process(request, bot)

    app = web.Application()
    app.router.add_post("/api/messages", messages)
    app.router.add_get("/healthz", lambda _: web.json_response({"status": "ok"}))
    return app


if __name__ == "__main__":
    CONFIG = DefaultConfig.from_env()
    web.run_app(create_app(CONFIG), host="127.0.0.1", port=int(os.environ.get("PORT", "3979")))
