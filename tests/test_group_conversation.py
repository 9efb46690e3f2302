"""A group conversation over HTTP, with the real bot process, on every persistent store:
three users talk at once. The dialog stack and the "asked for your name" flag are private
conversation state, so each user's answers reach only their own questions; the pizza order
is conversation state, shared by all three."""

from __future__ import annotations

import pytest

from bots.state_bot import WELCOME
from state_engine.testing.backends import PERSISTENT
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient

ASK_AGE = "How old are you? (type 'skip' to leave it out)"


@pytest.mark.parametrize("backend", PERSISTENT)
def test_each_user_answers_their_own_profile_and_the_order_is_shared(backend, backend_env):
    with ChannelServer() as channel, BotProcess(backend_env(backend)) as bot:
        client = EmulatorClient(bot.url, channel)

        def say(user: str, text: str) -> list[str]:
            return client.say(text, conversation_id="group", user_id=user)

        assert client.join("group", "ann") == [WELCOME]
        # The docs' name question, asked of two users at once.
        assert say("ann", "hi") == ["What is your name?"]
        assert say("bo", "hi") == ["What is your name?"]
        assert say("ann", "Ann") == ["Thanks Ann. To see conversation data, type anything."]
        assert say("bo", "Bo") == ["Thanks Bo. To see conversation data, type anything."]

        # Two profile dialogs waiting at once, and a third user ordering in between.
        assert say("ann", "profile") == ["What is your name?"]
        assert say("bo", "profile") == ["What is your name?"]
        assert say("cy", "add cheese") == ["Added cheese. Order: cheese"]
        assert say("bo", "Bo Diddley") == [ASK_AGE]
        assert say("ann", "Ann Lee") == [ASK_AGE]
        assert say("cy", "add olives") == ["Added olives. Order: cheese, olives"]
        summary, question = say("bo", "state")
        assert "the profile is waiting for your age (step 2 of 3)." in summary
        assert "the pizza order is cheese, olives." in summary
        assert question == ASK_AGE
        assert say("ann", "41") == ["Save this profile? Ann Lee, age 41"]
        assert say("cy", "hi") == ["What is your name?"]
        assert say("bo", "skip") == ["Save this profile? Bo Diddley, age not given"]
        assert say("cy", "Cy") == ["Thanks Cy. To see conversation data, type anything."]
        assert say("ann", "yes") == ["Profile saved: Ann Lee, age 41."]
        assert say("bo", "add ham") == ["Please answer yes or no."]
        assert say("bo", "yes") == ["Profile saved: Bo Diddley, age not given."]

        assert say("ann", "hello")[0] == "Ann Lee sent: hello"
        assert say("bo", "hello")[0] == "Bo Diddley sent: hello"
        assert say("cy", "hello")[0] == "Cy sent: hello"
        assert say("bo", "order") == ["Order: cheese, olives"]
