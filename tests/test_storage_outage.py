"""The store goes away in the middle of a conversation, then comes back.

The outage is real, not mocked: another connection takes SQLite's write lock
(``BEGIN IMMEDIATE``) and holds it past the bot's busy timeout, as a stuck
writer or a backup would. (chmod would not do: the tests run as root.) With
WAL, reads still work while the lock is held, so every turn gets as far as
its first write and fails there: the moment where half-writes could happen.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, Tuple, TypeVar

import pytest

from data_models import UTTERANCE_LOG
from state_engine.testing.backends import CLOUD, HOOKS, backend_env, read_back
from state_engine.testing.emulators import Emulator, start_azurite, start_cosmos
from state_engine.testing.fault_proxy import FaultProxy, through, upstream_of
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient, http_get
from tests.race import Message, reply_texts, send_together
from state_engine.testing.sqlite_lock import WriteLock
from state_engine.turns import TurnMessages

BUSY_TIMEOUT = 0.5
DEADLINE = 4.0
MESSAGES = TurnMessages()
T = TypeVar("T")


def records(path: Path) -> Dict[str, Tuple[str, str]]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT key, document, e_tag FROM store_items")
        return {key: (document, e_tag) for key, document, e_tag in rows}


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[WriteLock]:
    lock = WriteLock(tmp_path / "state.sqlite3")
    yield lock
    lock.close()


def timed(call: Callable[[], T]) -> Tuple[T, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_sqlite_locked_past_the_timeout_then_back(tmp_path, locked):
    path = tmp_path / "state.sqlite3"
    env = {"STORAGE": "sqlite", "SQLITE_PATH": str(path), "SQLITE_BUSY_TIMEOUT": str(BUSY_TIMEOUT)}
    with ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        assert client.say("add cheese", user_id="ann")[-1] == "Added cheese. Order: cheese"
        assert client.say("hi", user_id="ann") == ["What is your name?"]
        assert http_get(f"{bot.url}/healthz")[0] == 200
        before = records(path)

        locked.take()

        # The user is told plainly that nothing was saved, and only that.
        replies, seconds = timed(lambda: client.say("add ham", user_id="ann"))
        assert replies == [MESSAGES.unavailable]
        assert seconds < 5
        # The process keeps serving: health says 503 quickly, other conversations get answers.
        (status, body), seconds = timed(lambda: http_get(f"{bot.url}/healthz"))
        assert status == 503 and b"SQLite" in body and seconds < 3
        other, seconds = timed(lambda: client.say("order", conversation_id="other", user_id="bo"))
        assert other == [MESSAGES.unavailable] and seconds < 5
        assert bot.alive

        locked.release()

        # Nothing half-written: every record is byte for byte what it was.
        assert records(path) == before
        assert http_get(f"{bot.url}/healthz")[0] == 200
        # The conversation goes on where it was: the name prompt still waits for an answer.
        assert client.say("Ann", user_id="ann") == ["Thanks Ann. To see conversation data, type anything."]
        assert client.say("add ham", user_id="ann") == ["Added ham. Order: cheese, ham"]
        assert client.say("order", user_id="ann") == ["Order: cheese, ham"]
        assert "Traceback" not in bot.logs()


def _emulator_for(backend: str, folder: Path) -> Emulator:
    """A private emulator: stopping or freezing it must not touch other tests' servers."""
    return start_cosmos(folder) if HOOKS[backend].emulator == "cosmos" else start_azurite(folder)


@pytest.mark.parametrize("backend", CLOUD)
def test_cloud_store_stopped_mid_conversation(tmp_path: Path, backend: str) -> None:
    """The emulator process ends: the user is told, /healthz turns 503, the process keeps serving."""
    emulator = _emulator_for(backend, tmp_path)
    try:
        with ChannelServer() as channel, BotProcess(backend_env(backend, emulator)) as bot:
            client = EmulatorClient(bot.url, channel)
            assert client.say("add cheese")[-1] == "Added cheese. Order: cheese"
            assert http_get(f"{bot.url}/healthz")[0] == 200

            emulator.stop()

            replies, seconds = timed(lambda: client.say("add ham"))
            assert replies == [MESSAGES.unavailable] and seconds < DEADLINE
            (status, _), seconds = timed(lambda: http_get(f"{bot.url}/healthz", timeout=15))
            assert status == 503 and seconds < DEADLINE
            assert client.say("order", conversation_id="other", user_id="bo") == [MESSAGES.unavailable]
            assert bot.alive
    finally:
        emulator.stop()


@pytest.mark.parametrize("backend", CLOUD)
def test_a_frozen_store_costs_each_turn_its_deadline_at_most(tmp_path: Path, backend: str) -> None:
    """The emulator is frozen (SIGSTOP: connections open, nothing answers). Ten conversations
    at once all end within the turn deadline with a clear message that is true: thawed,
    a turn the user was told was not saved is not there; they all go on."""
    emulator = _emulator_for(backend, tmp_path)
    env = {**backend_env(backend, emulator), "TURN_DEADLINE_SECONDS": str(DEADLINE)}
    try:
        with ChannelServer() as channel, BotProcess(env) as bot:
            client = EmulatorClient(bot.url, channel)
            names = [f"c{n}" for n in range(10)]
            for name in names:
                assert client.say("add cheese", name, name)[-1] == "Added cheese. Order: cheese"

            emulator.process.signal(signal.SIGSTOP)
            messages = [Message(bot.url, name, name, "add ham") for name in names]
            _, seconds = send_together(messages, channel)
            heard = [reply_texts(channel, message) for message in messages]
            print(f"\n{backend} frozen: 10 turns ended in {seconds:.1f} s: {set(map(tuple, heard))}")
            assert seconds < DEADLINE + 3
            assert all(texts in ([MESSAGES.unavailable], [MESSAGES.too_slow], [MESSAGES.unsure]) for texts in heard)
            status, _ = http_get(f"{bot.url}/healthz", timeout=15)
            assert status == 503

            emulator.process.signal(signal.SIGCONT)
            time.sleep(DEADLINE + 2.5)  # anything left half-way has expired and may be fenced off
            for name, texts in zip(names, heard):
                order = client.say("order", name, name)
                if texts == [MESSAGES.unsure]:
                    assert order in (["Order: cheese"], ["Order: cheese, ham"]), order
                else:  # told nothing was saved: nothing was
                    assert order == ["Order: cheese"], (texts, order)
            assert http_get(f"{bot.url}/healthz")[0] == 200
            assert bot.alive
    finally:
        emulator.process.signal(signal.SIGCONT)
        emulator.stop()


@pytest.mark.parametrize("backend", CLOUD)
def test_a_save_that_got_no_answer_is_settled_and_the_user_told_the_truth(
    backend_env: Callable[[str], Dict[str, str]], backend: str
) -> None:
    """The store carried out a save but its answer was lost: the turn counts, once, with
    its replies. A save held back until after its timeout: fenced off, the user is told
    nothing was saved, and when it reaches the store it is refused."""
    env = {**backend_env(backend), "TURN_DEADLINE_SECONDS": str(DEADLINE)}
    with FaultProxy(upstream_of(env)) as proxy, ChannelServer() as channel, \
            BotProcess(through(env, proxy)) as bot:
        client = EmulatorClient(bot.url, channel)
        assert client.say("add cheese", user_id="ann")[-1] == "Added cheese. Order: cheese"

        proxy.lose_answer()  # the usual turn's one write: its conversation's partition
        assert client.say("add ham", user_id="ann") == ["Added ham. Order: cheese, ham"]
        proxy.lose_answer(skip=1)  # a first message: the membership marker, then the commit
        sent = len(proxy.writes)
        assert client.say("add olives", user_id="bo") == ["Added olives. Order: cheese, ham, olives"]
        give_up = time.monotonic() + DEADLINE
        while len(proxy.writes) < sent + 3:  # the marker's roll forward, after the replies
            assert time.monotonic() < give_up, proxy.writes[sent:]
            time.sleep(0.05)

        proxy.hold_write(DEADLINE)  # well past one call's timeout (a quarter of the deadline)
        assert client.say("add basil", user_id="ann") == [MESSAGES.unavailable]
        time.sleep(DEADLINE)  # the held write has reached the store, and been refused

        assert client.say("order", user_id="ann") == ["Order: cheese, ham, olives"]
        assert client.say("order", user_id="bo") == ["Order: cheese, ham, olives"]
        log_key = UTTERANCE_LOG.key("emulator", "conversation-1")
        said = [utterance.text for utterance in read_back(env, [log_key])[log_key].utterances]
        assert said == ["add cheese", "add ham", "add olives", "order", "order"], said
        assert bot.alive and "Traceback" not in bot.logs()
