"""A crash between two writes of one turn: after a restart the turn is all there or not at all.

The turn is a user's answer to "What is your name?": it changes their private state and
the utterance log (the conversation's partition) and their user state (another one). On
the cloud stores that is three writes (prepare, commit, roll forward); on SQLite one
transaction. The bot process is killed right after a chosen write, then started again.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Dict, Iterator

import pytest

import data_models  # noqa: F401  (registers the data models with the codec, to read them back)
from state_engine.testing.backends import read_back
from state_engine.testing.live_bot import PROJECT_ROOT, BotProcess, ChannelServer, EmulatorClient

CRASHING = [sys.executable, str(PROJECT_ROOT / "tests" / "crashing_bot.py")]
DEADLINE = 2.0  # markers of an unfinished commit expire this soon (plus a clock margin)
CASES = [
    ("sqlite", 1, "absent"),  # one statement of the transaction ran, no COMMIT
    ("cosmos", 1, "absent"),  # the user partition prepared, the conversation not committed
    ("cosmos", 2, "present"),  # committed on the conversation, not rolled forward
    ("blob", 1, "absent"),
    ("blob", 2, "present"),
    ("table", 1, "absent"),
    ("table", 2, "present"),
]


@pytest.fixture(scope="module")
def channel() -> Iterator[ChannelServer]:
    with ChannelServer() as server:
        yield server


def stored(env: Dict[str, str], conversation: str) -> Dict[str, object]:
    """The user's records as the store holds them now, read through a fresh store."""
    keys = {
        "user": "emulator/users/ada",
        "private": f"emulator/conversations/{conversation}/users/ada/",
        "log": f"emulator/conversations/{conversation}/log",
    }
    found = read_back(env, list(keys.values()))
    return {name: found.get(key) for name, key in keys.items()}


def named(records: Dict[str, object]) -> bool:
    user = records["user"] or {}
    return getattr(user.get("UserProfile"), "name", None) == "Ada"


@pytest.mark.parametrize("backend, crash_at, expect", CASES)
def test_a_turn_killed_between_writes_is_whole_or_absent(
    backend: str, crash_at: int, expect: str, backend_env: Callable[[str], Dict[str, str]],
    channel: ChannelServer,
) -> None:
    env = {**backend_env(backend), "TURN_DEADLINE_SECONDS": str(DEADLINE)}
    conversation = f"crash-{backend}-{crash_at}"
    with BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        assert client.say("hi", conversation, "ada")[-1] == "What is your name?"
    before = stored(env, conversation)

    crashing = BotProcess({**env, "CRASH_AT_WRITE": str(crash_at)}, command=CRASHING).start()
    client = EmulatorClient(crashing.url, channel)
    with pytest.raises(OSError):  # the process dies while the request is open
        client.post(client.activity(text="Ada", conversation_id=conversation, user_id="ada"))
    deadline = time.monotonic() + 10
    while crashing.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not crashing.alive, "the bot did not crash at the chosen write"
    crashing.stop()
    if expect == "absent" and backend != "sqlite":
        time.sleep(DEADLINE + 2.5)  # the prepared marker has expired: the next turn may fence it

    with BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        replies = client.say("hello", conversation, "ada")
        after = stored(env, conversation)
        if expect == "present":
            # Every part of the turn: the name, the log entry, the private message count.
            assert named(after) and replies[0] == "Ada sent: hello"
            assert after["log"].turn_number == before["log"].turn_number + 2
            assert after["private"]["PrivateConversationData"].message_count == 3
        else:
            # None of it: "hello" is taken as the name the bot is still waiting for.
            assert replies == ["Thanks hello. To see conversation data, type anything."]
            assert after["log"].turn_number == before["log"].turn_number + 1
            assert after["private"]["PrivateConversationData"].message_count == 2
        # And the conversation goes on normally.
        assert client.say("again", conversation, "ada")[0].endswith("sent: again")
