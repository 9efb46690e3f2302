"""Always an answer, in time: a channel that never answers, a flood of turns meanwhile, a
full disk, a frozen disk, a busy conversation.

Real bot processes, a real hung server (accepts, never answers), a real small disk filled
up, a real file system frozen. The turn deadline is set short so the bounds are seconds,
not the default ten.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import aiohttp

from state_engine.testing.blackhole import Blackhole
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient, http_get
from state_engine.testing.plugin import FreezableDisk, fill
from state_engine.turns import DEADLINE_SECONDS, TurnMessages

DEADLINE = 3.0
MESSAGES = TurnMessages()


def test_a_channel_that_never_answers_frees_the_conversation_within_the_deadline() -> None:
    """The first message's replies go to a server that never answers; the next message of
    the same conversation, from a working channel, is answered within the deadline.
    /healthz names the failing channel until a reply goes through again."""
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
        assert answered["stuck"] - started < DEADLINE + 2
        assert answered["status"] in (201, 502)
        assert hung.accepted >= 1 and bot.alive

        status, body = http_get(f"{bot.url}/healthz")
        replies = json.loads(body)["replies"]
        assert status == 200 and replies.startswith("failing for "), replies
        assert f"replies to 127.0.0.1:{hung.port}: cut off after" in replies and "stuck" not in replies
        client.say("hello again", "stuck", "sam")
        assert json.loads(http_get(f"{bot.url}/healthz")[1])["replies"] == "ok"


def test_a_channel_that_hangs_for_many_turns_holds_up_no_other_channels_replies() -> None:
    """150 conversations of a channel that never answers, at once: their replies hold at
    most a quarter of the bot's connections, so a conversation on a working channel gets
    all its replies at once (they waited behind the hung ones for their whole budget)."""
    env = {"STORAGE": "memory", "TURN_DEADLINE_SECONDS": str(2 * DEADLINE)}
    with Blackhole() as hung, ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        bodies = [client.activity(text="hi", conversation_id=f"hung-{n}", serviceUrl=hung.url) for n in range(150)]

        async def flood_then_talk() -> Tuple[List[str], float]:
            flood = asyncio.create_task(_post_all(f"{bot.url}/api/messages", bodies))
            await asyncio.sleep(1.5)
            started = time.monotonic()
            replies = await asyncio.to_thread(client.say, "hi", "working", "wendy")
            took = time.monotonic() - started
            await flood
            return replies, took

        replies, took = asyncio.run(flood_then_talk())
        print(f"\nthe working channel's turn took {took:.2f} s")
        assert replies[-1] == "What is your name?" and took < 1.5


def test_a_turn_whose_replies_hang_ends_within_the_default_deadline_and_keeps_its_state() -> None:
    """The default deadline (the reply's own budget is shorter): the replies give up, the
    error handler sends nothing more to that channel and clears nothing, and the request
    ends with a 502 in time. Before, the handler tried the hung channel three more times."""
    with Blackhole() as hung, ChannelServer() as channel, BotProcess({"STORAGE": "memory"}) as bot:
        client = EmulatorClient(bot.url, channel)
        client.say("hi", "hangs", "kim")  # name asked: the next message is the name
        started = time.monotonic()
        kim = client.activity(text="Kim", conversation_id="hangs", user_id="kim", serviceUrl=hung.url)
        status, _ = client.post(kim)
        took = time.monotonic() - started
        print(f"\nthe request ended after {took:.1f} s with {status}")
        assert status == 502 and took < DEADLINE_SECONDS + 1
        assert hung.accepted <= 2, "the first reply's attempts, and nothing more"
        assert client.say("hello", "hangs", "kim")[0] == "Kim sent: hello"  # saved, and kept


async def _post_all(url: str, bodies: List[Dict[str, Any]]) -> List[Tuple[int, str, float]]:
    """Every body posted at once: each answer's status, Retry-After and seconds taken."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def post(body: Dict[str, Any]) -> Tuple[int, str, float]:
            started = time.monotonic()
            async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=60)) as answer:
                await answer.read()
                return answer.status, answer.headers.get("Retry-After", ""), time.monotonic() - started

        return await asyncio.gather(*(post(body) for body in bodies))


def test_a_flood_while_turns_hang_runs_at_most_the_limit_and_refuses_the_rest_at_once(
    backend_env: Callable[[str], Dict[str, str]],
) -> None:
    """400 conversations at once while their channel never answers: only
    MAX_CONCURRENT_TURNS turns run (each holds memory until its deadline); every other
    request is answered 503 with Retry-After at once. /healthz answers meanwhile, and once
    the hung turns end every slot is free again."""
    limit, flood = 16, 400
    deadline = 2 * DEADLINE  # the hung turns outlast the flood's arrival, even on a busy machine
    env = {**backend_env("sqlite"), "TURN_DEADLINE_SECONDS": str(deadline), "MAX_CONCURRENT_TURNS": str(limit)}
    with Blackhole() as hung, ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        bodies = [
            client.activity(text="hi", conversation_id=f"flood-{n}", serviceUrl=hung.url) for n in range(flood)
        ]

        async def flood_and_check_health() -> Tuple[List[Tuple[int, str, float]], Tuple[int, bytes], float]:
            answers = asyncio.create_task(_post_all(f"{bot.url}/api/messages", bodies))
            await asyncio.sleep(1.0)
            started = time.monotonic()
            health = await asyncio.to_thread(http_get, f"{bot.url}/healthz")
            health_seconds = time.monotonic() - started
            return await answers, health, health_seconds

        answers, health, health_seconds = asyncio.run(flood_and_check_health())
        refused = [(retry, seconds) for status, retry, seconds in answers if status == 503]
        ran = [(status, seconds) for status, _, seconds in answers if status != 503]
        print(f"\n{len(ran)} turns ran, {len(refused)} refused in at most "
              f"{max(seconds for _, seconds in refused):.2f} s; /healthz {health[0]} in {health_seconds:.2f} s")
        assert len(ran) == limit, ran
        # Refused long before the hung turns end.
        assert all(retry == "1" and seconds < DEADLINE for retry, seconds in refused)
        assert all(seconds < deadline + 2 for _, seconds in ran)
        assert health[0] == 200 and health_seconds < DEADLINE

        # Every slot was given back: as many turns at once as the limit all run now.
        working = [client.activity(text="hi", conversation_id=f"after-{n}") for n in range(limit)]
        statuses = [status for status, _, _ in asyncio.run(_post_all(f"{bot.url}/api/messages", working))]
        assert statuses == [201] * limit
        assert bot.alive


def test_one_conversation_flooded_takes_an_eighth_of_the_slots_and_the_others_go_on(
    backend_env: Callable[[str], Dict[str, str]],
) -> None:
    """100 messages at once in one conversation whose channel never answers: its turns wait
    for each other, so only an eighth of MAX_CONCURRENT_TURNS may run or wait; the rest are
    refused at once, and another conversation is answered meanwhile."""
    limit, flood = 16, 100
    deadline = 2 * DEADLINE
    env = {**backend_env("sqlite"), "TURN_DEADLINE_SECONDS": str(deadline), "MAX_CONCURRENT_TURNS": str(limit)}
    with Blackhole() as hung, ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        bodies = [client.activity(text="add ham", conversation_id="busy", serviceUrl=hung.url) for _ in range(flood)]

        async def flood_and_talk_elsewhere() -> Tuple[List[Tuple[int, str, float]], List[str], float]:
            answers = asyncio.create_task(_post_all(f"{bot.url}/api/messages", bodies))
            await asyncio.sleep(1.0)
            started = time.monotonic()
            elsewhere = await asyncio.to_thread(client.say, "add cheese", "calm", "cy")
            elsewhere_seconds = time.monotonic() - started
            return await answers, elsewhere, elsewhere_seconds

        answers, elsewhere, elsewhere_seconds = asyncio.run(flood_and_talk_elsewhere())
        ran = [status for status, _, _ in answers if status != 503]
        refused = [seconds for status, _, seconds in answers if status == 503]
        print(f"\n{len(ran)} turns of the busy conversation ran, {len(refused)} refused; "
              f"another conversation answered in {elsewhere_seconds:.2f} s")
        assert len(ran) == limit // 8, ran
        assert all(seconds < DEADLINE for seconds in refused)
        assert elsewhere[-1] == "Added cheese. Order: cheese" and elsewhere_seconds < DEADLINE
        assert bot.alive


def test_a_frozen_disk_costs_a_turn_its_deadline_at_most_and_healthz_names_it(
    freezable_disk: FreezableDisk,
) -> None:
    """The SQLite file's disk stops taking writes. Every turn still ends within the
    deadline with a message that tells the truth, /healthz says 503 within one store
    call's time, and the process keeps serving; thawed, every conversation goes on where it was."""
    env = {"STORAGE": "sqlite", "SQLITE_PATH": str(freezable_disk.path / "state.sqlite3"),
           "TURN_DEADLINE_SECONDS": str(DEADLINE)}
    with ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        assert client.say("add cheese", "ann-c", "ann")[-1] == "Added cheese. Order: cheese"
        assert client.say("add cheese", "bo-c", "bo")[-1] == "Added cheese. Order: cheese"

        freezable_disk.freeze()
        try:
            started = time.monotonic()
            ann = client.say("add ham", "ann-c", "ann")
            assert time.monotonic() - started < DEADLINE + 2
            assert ann in ([MESSAGES.unsure], [MESSAGES.unavailable], [MESSAGES.too_slow]), ann
            started = time.monotonic()
            status, body = http_get(f"{bot.url}/healthz", timeout=15)
            assert time.monotonic() - started < DEADLINE  # one store call's time at most
            reason = json.loads(body)["reason"]
            assert status == 503 and "SQLITE_PATH" in reason and "disk" in reason, reason
            started = time.monotonic()
            assert client.say("add ham", "bo-c", "bo") == [MESSAGES.unavailable]
            assert time.monotonic() - started < 2, "a turn queued behind the stuck write"
        finally:
            freezable_disk.thaw()

        waited_until = time.monotonic() + 10
        while http_get(f"{bot.url}/healthz")[0] != 200:
            assert time.monotonic() < waited_until, "/healthz did not recover after the thaw"
            time.sleep(0.1)
        ann_order = client.say("order", "ann-c", "ann")
        if ann == [MESSAGES.unsure]:
            assert ann_order in (["Order: cheese"], ["Order: cheese, ham"]), ann_order
        else:
            assert ann_order == ["Order: cheese"], f"told {ann}, yet saved: {ann_order}"
        assert client.say("order", "bo-c", "bo") == ["Order: cheese"]
        assert client.say("add olives", "bo-c", "bo") == ["Added olives. Order: cheese, olives"]
        assert bot.alive and "Traceback" not in bot.logs()


def test_a_bot_whose_disk_froze_mid_write_still_stops_when_told(freezable_disk: FreezableDisk) -> None:
    """SIGTERM (App Service's restart, Ctrl+C) while a write hangs on a frozen disk: the
    worker cannot end until the disk answers, but the bot does, in seconds."""
    env = {"STORAGE": "sqlite", "SQLITE_PATH": str(freezable_disk.path / "state.sqlite3"),
           "TURN_DEADLINE_SECONDS": str(DEADLINE)}
    with ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        client.say("add cheese", "cy-c", "cy")
        freezable_disk.freeze()
        try:
            client.say("add ham", "cy-c", "cy")  # its write hangs in the worker
            started = time.monotonic()
            code = bot.stop(grace=10)
            took = time.monotonic() - started
        finally:
            freezable_disk.thaw()
        assert code is not None and took < 8, f"ended by a kill after {took:.1f} s" if code is None else took


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
