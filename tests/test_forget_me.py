"""``forget me`` removes all of one user's data and nothing of anyone else's, on every store.

Over HTTP with the real bot process; afterwards every item the store holds is read back
with the store's own listing, so a record of the forgotten user cannot hide anywhere.
"""

from __future__ import annotations

from typing import Callable, Dict, List

import pytest

import data_models  # noqa: F401  (registers the data models with the codec, to read them back)
from state_engine import keys
from state_engine.testing.backends import PERSISTENT, read_back, stored_items
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient
from tests.race import Message, send_together

ASK_AGE = "How old are you? (type 'skip' to leave it out)"
MANY = 150


@pytest.mark.parametrize("backend", PERSISTENT)
def test_forget_me_in_a_group_takes_only_what_is_mine(
    backend: str, backend_env: Callable[[str], Dict[str, str]]
) -> None:
    """Ann, Bo and Cy share a conversation; Bo also has one of his own. Bo forgets himself:
    his records everywhere and his utterances in the shared log go; Ann's dialog waiting
    mid-way, both profiles and the group's order stay."""
    env = backend_env(backend)
    with ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)

        def say(user: str, text: str, conversation: str = "group") -> List[str]:
            return client.say(text, conversation_id=conversation, user_id=user)

        for user, name in (("ann", "Ann"), ("bo", "Bo"), ("cy", "Cy")):
            say(user, "hi")
            say(user, name)
        assert say("bo", "add cheese") == ["Added cheese. Order: cheese"]
        assert say("ann", "profile") == ["What is your name?"]
        assert say("ann", "Ann Lee") == [ASK_AGE]
        assert say("bo", "bo-secret-words")[0] == "Bo sent: bo-secret-words"
        assert "Bo sent: hi" in say("bo", "hi", "bo-alone")
        assert say("cy", "add olives") == ["Added olives. Order: cheese, olives"]

        [reply] = say("bo", "forget me")
        assert reply.startswith("I have deleted everything I stored about you: ")
        assert "1 of them only you were in, deleted whole" in reply

        texts = stored_items(env)
        assert not [item_id for item_id in texts if "/bo" in item_id or item_id.endswith("/bo")]
        marks = ('bo-secret-words', '"bo"', 'users/bo"', 'users/bo/')
        leaks = [item_id for item_id, text in texts.items() if any(mark in text for mark in marks)]
        assert leaks == [], leaks
        assert not any("bo-alone" in item_id for item_id in texts)
        # Everyone else's: Ann's dialog still waits for her age, the order is whole.
        assert say("ann", "41") == ["Save this profile? Ann Lee, age 41"]
        assert say("cy", "order") == ["Order: cheese, olives"]
        assert say("cy", "hello")[0] == "Cy sent: hello"
        # And Bo starts over.
        assert say("bo", "hello")[-1] == "What is your name?"


@pytest.mark.parametrize("backend", PERSISTENT)
def test_forget_me_reaches_every_conversation_however_many(
    backend: str, backend_env: Callable[[str], Dict[str, str]]
) -> None:
    """A user in 150 conversations (the old index kept 100): none of their records remain."""
    env = {**backend_env(backend), "TURN_MAX_RETRIES": "20"}
    conversations = [f"many-{n:03d}" for n in range(MANY)]
    with ChannelServer() as channel, BotProcess(env) as bot:
        for start in range(0, MANY, 25):
            send_together([Message(bot.url, c, "max", "hi") for c in conversations[start : start + 25]], channel)
        client = EmulatorClient(bot.url, channel)
        assert client.say("hi", "other", "someone-else")[-1] == "What is your name?"
        index = [keys.membership("emulator", "max", c) for c in conversations]
        assert len(read_back(env, index)) == MANY

        [reply] = client.say("forget me", conversations[0], "max")
        assert reply.startswith("I have deleted everything I stored about you: ")
        assert f"in {MANY} conversations" in reply

    texts = stored_items(env)
    remaining = {item_id: text for item_id, text in texts.items() if "max" in item_id or '"max"' in text}
    assert remaining == {}
    others = [item_id for item_id in texts if "someone-else" in item_id or item_id.endswith("/other")]
    assert others, "the other user's records are gone too"
