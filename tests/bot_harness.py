"""Builds the bot exactly as app.py does, on a given store, for TestAdapter tests."""

from __future__ import annotations

from botbuilder.core import ConversationState, PrivateConversationState, UserState
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import ChannelAccount, ConversationAccount, ConversationReference

from adapter import RetryPolicy, TurnRunner
from bots import BotSettings, StateBot
from dialogs import ProfileDialog
from storage.json_storage import JsonStorage


def build_runner(storage: JsonStorage, settings: BotSettings = BotSettings()) -> TurnRunner:
    conversation_state = ConversationState(storage)
    user_state = UserState(storage)
    private_state = PrivateConversationState(storage)
    bot = StateBot(
        conversation_state,
        user_state,
        private_state,
        storage,
        ProfileDialog(user_state.create_property("UserProfile"), settings.max_text_length),
        settings,
    )
    return TurnRunner(bot, [conversation_state, user_state, private_state], storage, RetryPolicy())


def conversation_reference(
    conversation_id: str = "conversation-1", user_id: str = "user-1"
) -> ConversationReference:
    return ConversationReference(
        channel_id="test",
        service_url="https://test.invalid",
        user=ChannelAccount(id=user_id, name="User"),
        bot=ChannelAccount(id="bot", name="Bot"),
        conversation=ConversationAccount(id=conversation_id),
    )


def build_test_adapter(
    storage: JsonStorage,
    settings: BotSettings = BotSettings(),
    reference: ConversationReference | None = None,
) -> TestAdapter:
    return TestAdapter(build_runner(storage, settings).on_turn, reference or conversation_reference())
