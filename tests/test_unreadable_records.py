"""A record of one user that cannot be decoded, in any shape, on every store.

Planted with the service's own SDK into the user's private state (beside everyone else's
records of the group conversation): that user's next turn gets the clear "could not be
read safely" answer, never an error turn; the others go on; `forget me` deletes it.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable, Dict

import pytest

from state_engine import keys
from state_engine.stores import create_storage, read_backend_settings
from state_engine.testing.backends import HOOKS, PERSISTENT, plant_table_entity, read_back
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient
from state_engine.turns import TurnMessages

UNSAFE = TurnMessages().unsafe


def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


# Each a private conversation state record of the victim, as a planted value.
SHAPES: Dict[str, Any] = {
    "a list document": ["not", "a", "record"],
    "a string document": "just text",
    "a datetime with a bad $value": {"PrivateConversationData": {"$type": "datetime", "$value": 42}},
    "a number field given null": {"PrivateConversationData": {"$type": "PrivateConversationData", "message_count": None}},
    "a field given the wrong type": {"PrivateConversationData": {"$type": "PrivateConversationData", "message_count": "7"}},
    "a dict without $type": {"PrivateConversationData": {"message_count": 3}},
    "very deep nesting": {"PrivateConversationData": _deep(900)},
    "a bad enum value": {
        "DialogState": {"$type": "DialogState", "_dialog_stack": [
            {"$type": "DialogInstance", "id": "ProfileDialog", "state": {"options": {
                "$type": "PromptOptions", "prompt": None, "retry_prompt": None, "choices": None,
                "style": {"$type": "ListStyle", "$value": "99"}, "validations": None, "number_of_attempts": 0,
            }}}
        ]}
    },
    "an Activity with wrong field types": {
        "DialogState": {"$type": "DialogState", "_dialog_stack": [
            {"$type": "DialogInstance", "id": "ProfileDialog", "state": {"options": {
                "$type": "PromptOptions", "prompt": {"$type": "Activity", "type": "message", "text": {"a": 1}},
                "retry_prompt": None, "choices": None, "style": None, "validations": None, "number_of_attempts": 0,
            }}}
        ]}
    },
    "a jsonpickle payload": {"PrivateConversationData": {"py/reduce": [{"py/function": "os.system"}, "true"]}},
}


async def _plant_private(name: str, env: Dict[str, str], conversation: str, user: str, value: Any) -> None:
    """Put ``value`` as ``user``'s private state record into the conversation's item."""
    item_id = keys.conversation_state("emulator", conversation)
    store = create_storage(env["STORAGE"], read_backend_settings(env["STORAGE"], env))
    try:
        item = (await store.items.get([item_id]))[item_id]
    finally:
        await store.close()
    partition = json.loads(item.text)
    partition["records"][keys.private_state("emulator", conversation, user)] = {"e_tag": "planted", "value": value}
    await HOOKS[name].plant(env, item_id, json.dumps(partition))


@pytest.mark.parametrize("backend", PERSISTENT)
def test_every_unreadable_shape_gets_the_clear_answer_and_forget_me_deletes_it(
    backend: str, backend_env: Callable[[str], Dict[str, str]]
) -> None:
    env = backend_env(backend)
    with ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        for n, (shape, value) in enumerate(SHAPES.items()):
            conversation, victim = f"bad-{n}", f"victim-{n}"
            client.say("hi", conversation, victim)
            client.say("add cheese", conversation, "friend")
            asyncio.run(_plant_private(backend, env, conversation, victim, value))

            started = time.monotonic()
            assert client.say("hello", conversation, victim) == [UNSAFE], shape
            assert time.monotonic() - started < 5, shape
            # The group goes on: the friend's record and the order are untouched.
            assert client.say("order", conversation, "friend") == ["Order: cheese"], shape

            [reply] = client.say("forget me", conversation, victim)
            assert reply.startswith("I have deleted everything I stored about you"), shape
            private = keys.private_state("emulator", conversation, victim)
            assert private not in read_back(env, [private], decoded=False), shape
            assert client.say("hello", conversation, victim)[-1] == "What is your name?", shape
        assert "[on_turn_error]" not in bot.logs() and "Traceback" not in bot.logs()
        assert bot.alive


@pytest.mark.parametrize("parts", [10**9, -1, "many", 0])
def test_a_table_entity_with_impossible_document_parts_is_unreadable_at_once(
    parts: Any, backend_env: Callable[[str], Dict[str, str]]
) -> None:
    """Checked before anything is allocated: DocumentParts=10**9 must not build a
    billion-part string (that froze the loop and grew memory until killed)."""
    env = backend_env("table")
    with ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        client.say("hi", "parts", "pat")
        item_id = keys.conversation_state("emulator", "parts")
        asyncio.run(plant_table_entity(env, item_id, {"DocumentParts": parts, "Document0": "{}"}))
        started = time.monotonic()
        assert client.say("hello", "parts", "pat") == [UNSAFE]
        assert time.monotonic() - started < 5
        [reply] = client.say("forget me", "parts", "pat")
        assert reply.startswith("I have deleted everything I stored about you")
        assert client.say("hello", "parts", "pat")[-1] == "What is your name?"
        assert bot.alive
