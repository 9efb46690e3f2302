"""on_turn_error as the docs' samples do it (tell the user, trace for the Emulator), clearing
only the failing user's dialog: in a group, everyone else's state and the shared order stay."""

from __future__ import annotations

from typing import Tuple

from botbuilder.core import TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import ActivityTypes

from bots.state_bot import StateBot
from state_engine import keys
from state_engine.stores import StateStorage, memory_storage
from state_engine.turns import RetryPolicy, TurnRunner, TurnScopedStorage, make_on_turn_error
from tests.bot_harness import activity_template, build_bot


def failing_on_boom(store: StateStorage) -> Tuple[StateBot, TurnRunner]:
    """The sample's bot, whose message "boom" raises (a bug), and its turn runner."""
    turn_storage = TurnScopedStorage(store)
    bot = build_bot(turn_storage)

    async def fail_on_boom(turn_context: TurnContext) -> None:
        if turn_context.activity.text == "boom":
            raise RuntimeError("a bug in the bot")
        await StateBot.on_message_activity(bot, turn_context)

    bot.on_message_activity = fail_on_boom
    return bot, TurnRunner(bot, bot.states, turn_storage, RetryPolicy())


async def test_an_unhandled_error_clears_only_the_failing_users_dialog():
    store = memory_storage()
    bot, runner = failing_on_boom(store)
    adapters = {}
    for user in ("ann", "bo"):
        template = activity_template("group", user)
        template.channel_id = "emulator"
        adapters[user] = TestAdapter(runner.on_turn, template, send_trace_activities=True)
        adapters[user].on_turn_error = make_on_turn_error(bot.states[2], store)

    await adapters["ann"].send("add ham")
    await adapters["ann"].send("profile")  # Ann's dialog waits for her name
    await adapters["bo"].send("profile")  # and Bo's for his
    private = {user: keys.private_state("emulator", "group", user) for user in adapters}
    assert set(await store.read_records(private.values())) == set(private.values())
    adapters["bo"].activity_buffer.clear()

    await adapters["bo"].send("boom")
    texts = [(a.type, a.text, a.label) for a in adapters["bo"].activity_buffer]
    assert texts[0] == (ActivityTypes.message, "The bot encountered an error or bug.", None)
    assert texts[1][1] == "To continue to run this bot, please fix the bot source code."
    assert texts[2][0] == ActivityTypes.trace and texts[2][2] == "TurnError"
    assert "a bug in the bot" in adapters["bo"].activity_buffer[2].value

    found = await store.read_records([*private.values(), keys.conversation_state("emulator", "group")])
    assert private["bo"] not in found  # Bo's dialog is gone, so it cannot trap him
    assert private["ann"] in found  # Ann's dialog still waits
    order = (await store.read([keys.conversation_state("emulator", "group")]))
    assert order[keys.conversation_state("emulator", "group")]["PizzaOrder"].toppings == ["ham"]


async def test_the_error_handler_never_clears_what_a_later_turn_saved():
    """Ann's turn fails; before its error handler clears her dialog, her next message (on
    another instance, or queued behind it) is saved and answered. The handler deletes only
    the version the failed turn read, so her new dialog step stays."""
    store = memory_storage()
    bot, runner = failing_on_boom(store)
    failing, next_one = (TestAdapter(runner.on_turn, activity_template("c", "ann")) for _ in range(2))
    handler = make_on_turn_error(bot.states[2], store)

    async def the_next_message_first(context: TurnContext, error: Exception) -> None:
        await next_one.send("Ann")
        await handler(context, error)

    failing.on_turn_error = the_next_message_first
    await failing.send("profile")
    assert [a.text for a in failing.activity_buffer][-1] == "What is your name?"
    await failing.send("boom")
    assert [a.text for a in next_one.activity_buffer] == ["How old are you? (type 'skip' to leave it out)"]

    private = keys.private_state("test", "c", "ann")
    assert private in await store.read_records([private]), "the handler undid a saved turn"
    await next_one.send("41")
    assert next_one.activity_buffer[-1].text.startswith("Save this profile? Ann, age 41")
