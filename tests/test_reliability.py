"""Always an answer, in time: a channel that never answers, a full disk, a busy conversation.

Real bot processes, a real hung server (accepts, never answers), a real small disk filled
up. The turn deadline is set short so the bounds are seconds, not the default ten.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Dict

from state_engine.testing.blackhole import Blackhole
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient, http_get
from state_engine.testing.plugin import fill

DEADLINE = 3.0


def test_a_channel_that_never_answers_frees_the_conversation_within_the_deadline() -> None:
    """The first message's replies go to a server that never answers; the next message of
    the same conversation, from a working channel, is answered within the deadline."""
    env = {"STORAGE": "memory", "TURN_DEADLINE_SECONDS": str(DEADLINE)}
    with Blackhole() as hung, ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        client.say("hi", "stuck", "sam")  # name asked: the next message is the name
        stuck = client.activity(text="Sam", conversation_id="stuck", user_id="sam", serviceUrl=hung.url)
        answered: Dict[str, float] = {}

        def post_stuck() -> None:
            status, _ = client.post(stuck)
            answered["stuck"] = time.monotonic()
            answered["status"] = status

        started = time.monotonic()
        thread = threading.Thread(target=post_stuck)
        thread.start()
        time.sleep(0.3)  # the first turn holds the conversation now
        replies = client.say("hello", "stuck", "sam")
        waited = time.monotonic() - started
        thread.join(30)

        print(f"\nnext turn answered after {waited:.1f} s; the stuck request ended after "
              f"{answered['stuck'] - started:.1f} s with {answered['status']}")
        assert waited < DEADLINE + 2
        assert replies[0] == "Sam sent: hello"  # the stuck turn was saved before its replies
        assert answered["stuck"] - started < DEADLINE + 2 and answered["status"] < 500 or answered["status"] == 502
        assert hung.accepted >= 1 and bot.alive


def test_a_full_disk_is_named_by_healthz_and_the_bot_goes_on_once_there_is_room(small_disk: Path) -> None:
    env = {"STORAGE": "sqlite", "SQLITE_PATH": str(small_disk / "state.sqlite3")}
    with ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        assert client.say("add cheese")[-1] == "Added cheese. Order: cheese"
        assert http_get(f"{bot.url}/healthz")[0] == 200

        fill(small_disk / "filler")
        status, body = http_get(f"{bot.url}/healthz")
        reason = json.loads(body)["reason"]
        assert status == 503 and "SQLITE_PATH" in reason and "full" in reason, reason
        client.say("add ham")  # may be saved into WAL space already there, or refused

        (small_disk / "filler").unlink()
        assert http_get(f"{bot.url}/healthz")[0] == 200
        assert client.say("add olives")[-1].startswith("Added olives. Order: cheese")
        assert bot.alive
