"""Scale-out without lost updates: two bot processes, one SQLite file, one group order.

The docs' pizza race (bench/pizza_race.py) over real HTTP: N users of one
conversation add a topping at the same moment, alternating between two bot
processes. Same harness against the docs' default wiring measures what it loses.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import pytest

from state_engine.turns.runner import BUSY_MESSAGE
from state_engine.testing.race import RaceResult, count_conflicts, run_race
from data_models import PizzaOrder, UtteranceLog
from state_engine.stores.sqlite import SqliteStorage
from state_engine.testing.live_bot import PROJECT_ROOT, BotProcess, ChannelServer

CLIENTS = 40
RACES = 3
MAX_RACES = 5


@pytest.fixture(scope="module")
def channel() -> Iterator[ChannelServer]:
    with ChannelServer() as server:
        yield server


def start_pair(tmp_path: Path, **settings: str) -> List[BotProcess]:
    env = {"STORAGE": "sqlite", "SQLITE_PATH": str(tmp_path / "shared.sqlite3"), **settings}
    return [BotProcess(env).start(), BotProcess(env).start()]


def stored(path: Path, conversation_id: str) -> tuple[PizzaOrder, UtteranceLog]:
    """The order and the utterance log as the SQLite file holds them, through the codec."""

    key = f"emulator/conversations/{conversation_id}"

    async def read() -> Dict[str, object]:
        store = SqliteStorage(path)
        try:
            return await store.read([key, f"{key}/log"])
        finally:
            await store.close()

    items = asyncio.run(read())
    return items[key]["PizzaOrder"], items[f"{key}/log"]


def races_on_pair(
    tmp_path: Path, channel: ChannelServer, collided: Callable[[RaceResult, int], bool], **settings: str
) -> List[tuple[RaceResult, int]]:
    """Race on two processes until a race shows a collision (at most MAX_RACES, each
    in a new conversation): on a loaded machine one race may happen not to collide.
    Returns every race with the conflicts its processes logged during it."""
    bots = start_pair(tmp_path, **settings)
    races: List[tuple[RaceResult, int]] = []
    try:
        seen = 0
        while len(races) < MAX_RACES and not (races and collided(*races[-1])):
            result = run_race([bot.url for bot in bots], channel, CLIENTS)
            total = sum(count_conflicts(bot.logs()) for bot in bots)
            races.append((result, total - seen))
            seen = total
    finally:
        for bot in bots:
            bot.stop()
    return races


def test_two_processes_lose_no_update_and_reply_only_what_was_saved(tmp_path, channel):
    races = races_on_pair(
        tmp_path,
        channel,
        lambda _, conflicts: conflicts > 0,
        TURN_MAX_RETRIES="100",
        TURN_RETRY_BASE_DELAY="0.005",
    )
    for result, conflicts in races:
        print(f"\nturn runner, 2 processes on SQLite: {result.summary()}, {conflicts} retried attempts")
        # Every client got exactly one reply, and it is "Added": nobody was busy.
        assert all(len(texts) == 1 for texts in result.replies.values()), result.replies
        assert sorted(result.acknowledged) == result.toppings
        # No reply went out for a discarded attempt: the channel saw one reply per client.
        assert result.channel_replies == CLIENTS
        # The stored order has every topping exactly once ...
        order, log = stored(tmp_path / "shared.sqlite3", result.conversation_id)
        assert order.toppings == result.final_order
        assert sorted(order.toppings) == result.toppings
        # ... and each reply showed an order that was saved: a prefix of the final order
        # ending in its topping. Together the replies replay one serial history.
        assert result.unsaved_replies == []
        shown = sorted(
            len(text.split("Order: ")[1].split(", "))
            for texts in result.replies.values()
            for text in texts
        )
        assert shown == list(range(1, CLIENTS + 1))
        # The utterance log, written by the bot directly, was saved with the state:
        # each message counted once (an `order` before and after the race), none twice.
        assert log.turn_number == CLIENTS + 2
        assert log.utterances[-1] == "order"
        assert len(set(log.utterances[:-1])) == len(log.utterances) - 1
    # Not vacuous: the processes really did collide and threw attempts away.
    assert races[-1][1] > 0


def test_without_retries_the_losers_are_told_busy_and_change_nothing(tmp_path, channel):
    races = races_on_pair(
        tmp_path,
        channel,
        lambda result, _: bool(result.busy),
        TURN_MAX_RETRIES="0",
        TURN_RETRY_BASE_DELAY="0",
    )
    for result, conflicts in races:
        print(f"\nturn runner, no retries: {result.summary()}, {conflicts} conflicts")
        assert conflicts == len(result.busy)
        assert sorted(result.busy + result.acknowledged) == result.toppings
        # A busy client heard only the busy message, and its topping is not in the order.
        assert all(result.replies[t] == [BUSY_MESSAGE] for t in result.busy)
        assert not set(result.busy) & set(result.final_order)
        # Everything acknowledged was kept, once, and shown as saved.
        assert sorted(result.final_order) == sorted(result.acknowledged)
        assert result.lost == [] and result.unsaved_replies == []
        assert result.channel_replies == CLIENTS
        # A busy turn changed nothing, the utterance log included.
        _, log = stored(tmp_path / "shared.sqlite3", result.conversation_id)
        assert log.turn_number == 2 + len(result.acknowledged)
    assert races[-1][0].busy, "no race produced a conflict"


def test_the_docs_default_wiring_is_measured_by_the_same_harness(channel):
    """BotState over the SDK's MemoryStorage, save_changes after the replies were sent.

    Its losses vary run to run: the SDK's MemoryStorage hands every turn the same
    live objects, so concurrent turns mostly append to one shared list and lose
    only when a save swaps that object mid-flight. Hence a figure, not an assertion."""
    command = [sys.executable, str(PROJECT_ROOT / "bench" / "docs_wiring_app.py")]
    with BotProcess({}, command=command) as baseline:
        results = [run_race([baseline.url], channel, CLIENTS) for _ in range(RACES)]
    for result in results:
        print(f"\ndocs' default wiring, 1 process, SDK MemoryStorage: {result.summary()}")
        assert sorted(result.acknowledged + result.busy) == result.toppings
        assert result.channel_replies == CLIENTS
    lost = sum(len(result.lost) for result in results)
    print(f"LOST UPDATES (docs' wiring, 1 process): {lost} of {CLIENTS * RACES} acknowledged")

    # Scaled out as the docs' scenario has it, each instance keeps its own memory:
    # every topping acknowledged by the second instance is missing from the first's
    # order (more may go in each instance's own race). Certain, so the harness must see it.
    with BotProcess({}, command=command) as first, BotProcess({}, command=command) as second:
        result = run_race([first.url, second.url], channel, CLIENTS)
    print(f"docs' default wiring, 2 processes: {result.summary()}")
    print(f"LOST UPDATES (docs' wiring, 2 processes): {len(result.lost)} of {CLIENTS} acknowledged")
    assert len(result.lost) >= CLIENTS // 2
