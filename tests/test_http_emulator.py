"""The bot over HTTP as the Emulator talks to it: a real process, a real channel."""

from __future__ import annotations

import pytest

from bots.state_bot import WELCOME
from state_engine.testing.backends import PERSISTENT
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient


@pytest.mark.parametrize("backend", PERSISTENT)
def test_conversation_and_dialog_survive_a_restart(backend, backend_env):
    """The docs' conversation on each persistent store, with the bot process
    stopped and started again half-way through a dialog."""
    with ChannelServer() as channel, BotProcess(backend_env(backend)) as bot:
        client = EmulatorClient(bot.url, channel)
        assert client.join() == [WELCOME]
        assert client.say("hi") == ["What is your name?"]
        assert client.say("Grace") == ["Thanks Grace. To see conversation data, type anything."]
        replies = client.say("hello")
        assert replies[0] == "Grace sent: hello"
        assert replies[2] == "Message received from: emulator"
        assert client.say("profile") == ["What is your name?"]
        assert client.say("Grace Hopper") == ["How old are you? (type 'skip' to leave it out)"]

        bot.restart()

        # The user's name (user state) and the unfinished dialog (private
        # conversation state) were both in the store, not in the process.
        assert client.say("85") == ["Save this profile? Grace Hopper, age 85"]
        assert client.say("yes") == ["Profile saved: Grace Hopper, age 85."]
        assert client.say("again")[0] == "Grace Hopper sent: again"
