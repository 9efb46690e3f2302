"""The store goes away in the middle of a conversation, then comes back.

The outage is real, not mocked: another connection takes SQLite's write lock
(``BEGIN IMMEDIATE``) and holds it past the bot's busy timeout, as a stuck
writer or a backup would. (chmod would not do: the tests run as root.) With
WAL, reads still work while the lock is held, so every turn gets as far as
its first write and fails there: the moment where half-writes could happen.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, Tuple, TypeVar

import pytest

from state_engine.turns.runner import UNAVAILABLE_MESSAGE
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient, http_get
from state_engine.testing.sqlite_lock import WriteLock

BUSY_TIMEOUT = 0.5
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
        assert replies == [UNAVAILABLE_MESSAGE]
        assert seconds < 5
        # The process keeps serving: health says 503 quickly, other conversations get answers.
        (status, body), seconds = timed(lambda: http_get(f"{bot.url}/healthz"))
        assert status == 503 and b"StorageUnavailableError" in body and seconds < 3
        other, seconds = timed(lambda: client.say("order", conversation_id="other", user_id="bo"))
        assert other == [UNAVAILABLE_MESSAGE] and seconds < 5
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


@pytest.mark.parametrize("backend", ["blob", "table"])
def test_cloud_store_emulator_stopped_mid_conversation(tmp_path, backend):
    """Azurite stops: the user is told, /healthz turns 503, the process keeps serving.
    (Coming back is not covered: the emulators start on a fresh port each time.)"""
    from state_engine.testing.emulators import backend_env, start_azurite

    azurite = start_azurite(tmp_path)
    try:
        with ChannelServer() as channel, BotProcess(backend_env(backend, azurite=azurite)) as bot:
            client = EmulatorClient(bot.url, channel)
            assert client.say("add cheese")[-1] == "Added cheese. Order: cheese"
            assert http_get(f"{bot.url}/healthz")[0] == 200

            azurite.stop()

            replies, seconds = timed(lambda: client.say("add ham"))
            assert replies == [UNAVAILABLE_MESSAGE] and seconds < 10
            (status, _), seconds = timed(lambda: http_get(f"{bot.url}/healthz", timeout=15))
            assert status == 503 and seconds < 10
            assert client.say("order", conversation_id="other", user_id="bo") == [UNAVAILABLE_MESSAGE]
            assert bot.alive
    finally:
        azurite.stop()
