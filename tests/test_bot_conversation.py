"""The bot's logic through the SDK's TestAdapter, on our memory store (JSON round trips)."""

from __future__ import annotations

import re

from bots import BotSettings
from bots.state_bot import WELCOME
from state_engine.stores import memory_storage
from tests.bot_harness import build_test_adapter

TIMESTAMP = re.compile(r"^Message received at: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+$")


def matches(pattern: re.Pattern[str]):
    """An ``assert_reply`` check: TestAdapter ignores what a check returns, so it asserts."""

    def check(activity, _) -> None:
        assert pattern.match(activity.text), activity.text

    return check


async def test_docs_conversation_word_for_word():
    adapter = build_test_adapter(memory_storage())
    flow = await adapter.send("hi")
    flow = await flow.assert_reply(WELCOME)
    flow = await flow.assert_reply("What is your name?")
    flow = await (await flow.send("Ada")).assert_reply(
        "Thanks Ada. To see conversation data, type anything."
    )
    flow = await flow.send("hello there")
    flow = await flow.assert_reply("Ada sent: hello there")
    flow = await flow.assert_reply(matches(TIMESTAMP))
    flow = await flow.assert_reply("Message received from: test")
    await flow.assert_reply("Turn 3 of this conversation's utterance log.")


async def _named_user(adapter, name: str = "Ada"):
    flow = await adapter.send("hi")
    flow = await flow.assert_reply(WELCOME)
    flow = await flow.assert_reply("What is your name?")
    return await (await flow.send(name)).assert_reply(
        f"Thanks {name}. To see conversation data, type anything."
    )


async def test_profile_dialog_reprompts_invalid_age_then_saves():
    store = memory_storage()
    adapter = build_test_adapter(store)
    flow = await _named_user(adapter)
    flow = await (await flow.send("profile")).assert_reply("What is your name?")
    flow = await (await flow.send("Ada Lovelace")).assert_reply(
        "How old are you? (type 'skip' to leave it out)"
    )
    retry = "Please enter your age as a whole number from 1 to 150, or 'skip'."
    flow = await (await flow.send("very old")).assert_reply(retry)
    flow = await (await flow.send("-4")).assert_reply(retry)
    flow = await (await flow.send("36.5")).assert_reply(retry)
    flow = await (await flow.send("36")).assert_reply("Save this profile? Ada Lovelace, age 36 (1) Yes or (2) No")
    flow = await (await flow.send("yes")).assert_reply("Profile saved: Ada Lovelace, age 36.")
    flow = await (await flow.send("state")).assert_reply(
        matches(re.compile(r".*your name is Ada Lovelace; your age is 36\.", re.S))
    )
    await (await flow.send("hello")).assert_reply("Ada Lovelace sent: hello")


async def test_profile_dialog_skip_age_and_decline():
    adapter = build_test_adapter(memory_storage())
    flow = await _named_user(adapter)
    flow = await (await flow.send("profile")).assert_reply("What is your name?")
    flow = await (await flow.send("Bo")).assert_reply(
        "How old are you? (type 'skip' to leave it out)"
    )
    flow = await (await flow.send("skip")).assert_reply("Save this profile? Bo, age not given (1) Yes or (2) No")
    flow = await (await flow.send("no")).assert_reply("Nothing was changed.")
    await (await flow.send("hello")).assert_reply("Ada sent: hello")


async def test_pizza_order_commands_work_without_a_name():
    adapter = build_test_adapter(memory_storage())
    flow = await adapter.send("order")
    flow = await flow.assert_reply(WELCOME)
    flow = await flow.assert_reply("Order: (empty)")
    flow = await (await flow.send("add mushrooms")).assert_reply(
        "Added mushrooms. Order: mushrooms"
    )
    flow = await (await flow.send("Add  extra cheese")).assert_reply(
        "Added extra cheese. Order: mushrooms, extra cheese"
    )
    flow = await (await flow.send("order")).assert_reply("Order: mushrooms, extra cheese")
    flow = await (await flow.send("clear order")).assert_reply("Cleared the order.")
    flow = await (await flow.send("order")).assert_reply("Order: (empty)")
    await (await flow.send("hi")).assert_reply("What is your name?")


async def test_state_command_shows_all_three_scopes_and_the_log():
    adapter = build_test_adapter(memory_storage(), BotSettings(utterance_log_size=3))
    flow = await _named_user(adapter, "Cy")
    for text in ("one", "two", "three"):
        flow = await flow.send(text)
        for _ in range(4):
            flow = await flow.assert_reply(lambda activity, _: None)
    flow = await (await flow.send("add olives")).assert_reply("Added olives. Order: olives")

    def check(activity, _) -> None:
        lines = activity.text.split("\n")
        assert lines[0] == "What I store for you and this conversation:"
        assert lines[1] == (
            "- User state (UserProfile, follows you into every conversation): "
            "your name is Cy; your age is not given."
        )
        assert re.fullmatch(
            r"- Conversation state \(ConversationData and PizzaOrder, shared by everyone here\): "
            r"the last message arrived at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ from the test "
            r"channel; the pizza order is olives\.",
            lines[2],
        ), lines[2]
        assert lines[3] == (
            "- Private conversation state (PrivateConversationData and the dialog stack, "
            "you in this conversation only): you sent 7 messages here; "
            "no question is waiting for your answer."
        )
        # The log is bounded: 7 turns logged, only the last 3 utterances kept.
        assert lines[4] == (
            "- Utterance log (written directly to storage): this is turn 7 of this "
            "conversation, and the log keeps its 3 most recent messages."
        )
        assert "=" not in activity.text  # sentences, never Python reprs

    await (await flow.send("state")).assert_reply(check)


async def test_state_command_can_be_turned_off():
    adapter = build_test_adapter(memory_storage(), BotSettings(state_command_enabled=False))
    flow = await (await adapter.send("state")).assert_reply(WELCOME)
    await flow.assert_reply("The state command is turned off on this bot.")


async def test_forget_me_deletes_everything_and_starts_over():
    store = memory_storage()
    adapter = build_test_adapter(store)
    flow = await _named_user(adapter)
    flow = await (await flow.send("add ham")).assert_reply("Added ham. Order: ham")
    assert any("users/user-1" in key for key in await store.items.list_ids(""))
    flow = await (await flow.send("forget me")).assert_reply(
        "I have deleted everything I stored about you: 6 records in 1 conversation; "
        "1 of them only you were in, deleted whole."
    )
    assert await store.items.list_ids("") == []
    flow = await flow.send("hello again")
    flow = await flow.assert_reply(WELCOME)
    await flow.assert_reply("What is your name?")


async def test_delete_user_data_activity_deletes_everything():
    from botbuilder.schema import Activity, ActivityTypes

    store = memory_storage()
    adapter = build_test_adapter(store)
    await _named_user(adapter)
    assert await store.items.list_ids("")
    await adapter.process_activity(
        Activity(type=ActivityTypes.delete_user_data), adapter.logic
    )
    assert await store.items.list_ids("") == []


async def test_message_without_text_gets_a_clear_reply_and_changes_nothing():
    from botbuilder.schema import Activity, ActivityTypes, Attachment

    store = memory_storage()
    adapter = build_test_adapter(store)
    flow = await adapter.send(
        Activity(
            type=ActivityTypes.message,
            attachments=[Attachment(content_type="image/png", content_url="https://x.invalid/a.png")],
        )
    )
    await flow.assert_reply(
        "I can only read text, and that message had none. Type anything to continue."
    )
    assert await store.items.list_ids("") == []


async def test_long_text_is_bounded_before_it_is_stored():
    store = memory_storage()
    adapter = build_test_adapter(store, BotSettings(max_text_length=10, max_name_length=4))
    flow = await (await adapter.send("hi")).assert_reply(WELCOME)
    flow = await (await flow.assert_reply("What is your name?")).send("N" * 30)
    flow = await flow.assert_reply("Thanks NNNN. To see conversation data, type anything.")
    await (await flow.send("x" * 50)).assert_reply("NNNN sent: xxxxxxxxxx")
