"""The bot's logic through the SDK's TestAdapter, on our memory store (JSON round trips)."""

from __future__ import annotations

import re

from bots import BotSettings
from bots.state_bot import FORGOTTEN, WELCOME
from storage.memory_storage import MemoryStore
from tests.bot_harness import build_test_adapter

TIMESTAMP = re.compile(r"^Message received at: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+$")


async def test_docs_conversation_word_for_word():
    adapter = build_test_adapter(MemoryStore())
    flow = await adapter.send("hi")
    flow = await flow.assert_reply(WELCOME)
    flow = await flow.assert_reply("What is your name?")
    flow = await (await flow.send("Ada")).assert_reply(
        "Thanks Ada. To see conversation data, type anything."
    )
    flow = await flow.send("hello there")
    flow = await flow.assert_reply("Ada sent: hello there")
    flow = await flow.assert_reply(lambda activity, _: TIMESTAMP.match(activity.text) or None)
    flow = await flow.assert_reply("Message received from: test")
    await flow.assert_reply("Turn 3 of this conversation's utterance log.")
