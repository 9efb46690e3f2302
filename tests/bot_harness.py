"""Builds the bot exactly as app.py does, on a given store, for TestAdapter tests."""

from __future__ import annotations

from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity, ChannelAccount, ConversationAccount

from state_engine.turns import RetryPolicy, TurnRunner, TurnScopedStorage
from bots import BotSettings, StateBot
from dialogs import ProfileDialog
from state_engine.state import ConversationState, PrivateConversationState, UserState
from state_engine.stores import StateStorage


def build_bot(storage: StateStorage, settings: BotSettings = BotSettings()) -> StateBot:
    turn_storage = storage if isinstance(storage, TurnScopedStorage) else TurnScopedStorage(storage)
    user_state = UserState(turn_storage)
    return StateBot(
        ConversationState(turn_storage),
        user_state,
        PrivateConversationState(turn_storage),
        turn_storage,
        ProfileDialog(user_state.create_property("UserProfile"), settings.max_name_length),
        settings,
    )


def build_runner(storage: StateStorage, settings: BotSettings = BotSettings()) -> TurnRunner:
    turn_storage = TurnScopedStorage(storage)
    bot = build_bot(turn_storage, settings)
    return TurnRunner(bot, bot.states, turn_storage, RetryPolicy())


def activity_template(conversation_id: str = "conversation-1", user_id: str = "user-1") -> Activity:
    """What every test activity starts from (a plain ``"test"`` channel id, not the SDK's enum)."""
    return Activity(
        channel_id="test",
        service_url="https://test.invalid",
        from_property=ChannelAccount(id=user_id, name="User"),
        recipient=ChannelAccount(id="bot", name="Bot"),
        conversation=ConversationAccount(id=conversation_id),
    )


def build_test_adapter(
    storage: StateStorage,
    settings: BotSettings = BotSettings(),
    template: Activity | None = None,
) -> TestAdapter:
    return TestAdapter(build_runner(storage, settings).on_turn, template or activity_template())
