"""on_turn_error as the docs' samples do it: tell the user, trace for the Emulator,
clear conversation state so a broken dialog cannot trap the user."""

from __future__ import annotations

from botbuilder.core import TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import ActivityTypes

from state_engine.turns import make_on_turn_error
from state_engine.turns import TurnRunner
from bots.state_bot import StateBot
from state_engine.stores import memory_storage
from tests.bot_harness import activity_template, build_bot


async def test_unhandled_error_tells_user_traces_and_clears_conversation_state():
    store = memory_storage()
    bot = build_bot(store)

    async def fail_on_boom(turn_context: TurnContext) -> None:
        if turn_context.activity.text == "boom":
            raise RuntimeError("a bug in the bot")
        await StateBot.on_message_activity(bot, turn_context)

    bot.on_message_activity = fail_on_boom
    template = activity_template()
    template.channel_id = "emulator"
    adapter = TestAdapter(
        TurnRunner(bot, bot.states, store).on_turn, template, send_trace_activities=True
    )
    conversation_state = bot.states[0]
    adapter.on_turn_error = make_on_turn_error(conversation_state)

    await adapter.send("add ham")
    assert "emulator/conversations/conversation-1" in store.keys()
    adapter.activity_buffer.clear()

    await adapter.send("boom")
    texts = [(a.type, a.text, a.label) for a in adapter.activity_buffer]
    assert texts[0] == (ActivityTypes.message, "The bot encountered an error or bug.", None)
    assert texts[1][1] == "To continue to run this bot, please fix the bot source code."
    assert texts[2][0] == ActivityTypes.trace and texts[2][2] == "TurnError"
    assert "a bug in the bot" in adapter.activity_buffer[2].value
    assert "emulator/conversations/conversation-1" not in store.keys()
