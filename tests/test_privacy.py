"""Secrets stay secret and a user can be forgotten, checked on the real app process.

* With distinctive fake secrets configured, a whole conversation (every command,
  bad requests, /healthz, with DEBUG logging) never shows one in a log line, a
  reply or an HTTP answer.
* ``forget me`` and a ``deleteUserData`` activity leave nothing of the user in
  the SQLite store: no key names them, no document holds what they said, and the
  files' bytes keep nothing of it (neither free pages nor the write-ahead log).
* The ``state`` command is off with STATE_COMMAND_ENABLED=false, and off by
  default once an app id is set (in Azure).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import pytest

from bots import BotSettings
from config import DefaultConfig
from state_engine.stores import memory_storage
from tests.bot_harness import build_test_adapter
from tests.http_probe import RawHttp, sqlite_documents
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient, http_get

SECRETS = {
    "MicrosoftAppPassword": "FAKE-app-password-Zq8~xW3",
    "COSMOS_DB_PRIMARY_KEY": "FAKEcosmosKEY0123456789abcdefQ==",
    "BLOB_CONNECTION_STRING": (
        "DefaultEndpointsProtocol=https;AccountName=fakeacct;"
        "AccountKey=FAKEblobKEY9876543210zyxw==;EndpointSuffix=core.windows.net"
    ),
    "TABLE_CONNECTION_STRING": (
        "DefaultEndpointsProtocol=https;AccountName=faketbl;"
        "AccountKey=FAKEtableKEY5555aaaa==;EndpointSuffix=core.windows.net"
    ),
}
STATE_OFF = "The state command is turned off on this bot."


def _secret_fragments() -> List[str]:
    """Each secret whole, and each account key on its own (a log could show just that part)."""
    fragments = list(SECRETS.values())
    for value in SECRETS.values():
        fragments += [
            part.split("=", 1)[1] for part in value.split(";") if part.startswith("AccountKey=")
        ]
    return fragments


def _assert_no_secret(where: str, text: str) -> None:
    for fragment in _secret_fragments():
        assert fragment not in text, f"a secret appears in {where}"


def test_no_secret_in_logs_replies_state_or_healthz(tmp_path: Path):
    env = {
        "STORAGE": "sqlite",
        "SQLITE_PATH": str(tmp_path / "state.sqlite3"),
        "LOG_LEVEL": "DEBUG",
        **SECRETS,
    }
    answers: List[str] = []
    with ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        http = RawHttp(bot.port)
        for text in ("hi", "Grace", "hello", "add ham", "order", "state", "profile",
                     "Grace Hopper", "85", "yes", "state", "forget me"):
            answers += client.say(text, "secrets", "grace")
        client.join("secrets-2", "grace")
        for body in (b"{", b"[]", json.dumps({"type": "message"}).encode()):
            answers.append(http.post(body)[1].decode())
        answers.append(http.post(b"{}", content_type="text/plain")[1].decode())
        answers.append(http_get(f"{bot.url}/healthz")[1].decode())
        answers.append(http_get(f"{bot.url}/nope")[1].decode())
        http.close()
        logs = bot.logs()
    assert any("What I store for you" in answer for answer in answers)  # state ran
    assert "DEBUG" in logs  # the most talkative logging was on
    _assert_no_secret("the bot's log", logs)
    _assert_no_secret("a reply or an HTTP answer", "\n".join(answers))
    _assert_no_secret("the channel's records", json.dumps(channel.activities()))


def test_no_secret_in_logs_when_requests_are_refused_for_want_of_a_token(tmp_path: Path):
    env = {
        "STORAGE": "sqlite",
        "SQLITE_PATH": str(tmp_path / "state.sqlite3"),
        "LOG_LEVEL": "DEBUG",
        "MicrosoftAppId": "00000000-aaaa-bbbb-cccc-000000000000",
        **SECRETS,
    }
    with ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        http = RawHttp(bot.port)
        answers = [
            http.post_json(client.activity(text="state"), headers=headers)
            for headers in (
                {}, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Basic eA=="}
            )
        ]
        health = http_get(f"{bot.url}/healthz")
        http.close()
        logs = bot.logs()
    assert [status for status, _ in answers] == [401, 401, 401]
    assert health[0] == 200
    _assert_no_secret("the bot's log", logs)
    bodies = [body.decode() for _, body in answers] + [health[1].decode()]
    _assert_no_secret("an HTTP answer", "\n".join(bodies))


# --- Forgetting a user ----------------------------------------------------------------------

FORGET_NAME = "Zebulon Quixote"
FORGET_UTTERANCES = ("my secret plan is pineapple", "add anchovies")


def _talk(client: EmulatorClient) -> None:
    """The user to forget, in two conversations, one of them shared with another user."""
    client.say("hi", "shared", "zeb")
    client.say(FORGET_NAME, "shared", "zeb")
    for text in FORGET_UTTERANCES:
        client.say(text, "shared", "zeb")
    client.say("hi", "private-zeb", "zeb")
    client.say("hi", "shared", "olga")
    client.say("Olga", "shared", "olga")
    client.say("hi", "olga-only", "olga")


def _traces_of_zeb(documents: Dict[str, str]) -> List[str]:
    return [
        key
        for key, document in documents.items()
        if "zeb" in key
        or "private-zeb" in document
        or FORGET_NAME in document
        or any(text in document for text in FORGET_UTTERANCES)
    ]


@pytest.mark.parametrize("how", ["forget me", "deleteUserData"])
def test_forgetting_a_user_leaves_nothing_of_them_in_the_store(tmp_path: Path, how: str):
    sqlite_path = tmp_path / "state.sqlite3"
    env = {"STORAGE": "sqlite", "SQLITE_PATH": str(sqlite_path)}
    with ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        _talk(client)
        before = sqlite_documents(sqlite_path)
        assert _traces_of_zeb(before), "the setup stored nothing of the user"

        if how == "forget me":
            [reply] = client.say("forget me", "private-zeb", "zeb")
            assert reply.startswith("I have deleted everything I stored about you: ")
        else:  # what a channel sends when the user asks it to delete their data
            delete = client.activity("deleteUserData", conversation_id="private-zeb", user_id="zeb")
            status, _ = client.post(delete)
            assert status == 201
        after = sqlite_documents(sqlite_path)

        assert _traces_of_zeb(after) == []
        # Olga's own records stay: her user state, and her conversation of her own.
        olga = {key: doc for key, doc in before.items() if "olga" in key or "olga-only" in key}
        unshared = {key: doc for key, doc in olga.items() if "shared" not in key}
        assert unshared and all(after.get(key) == doc for key, doc in unshared.items())
        # Nor in the files' bytes, the bot still running: not in the file's free pages, not
        # in the write-ahead log's older frames.
        raw = b"".join(path.read_bytes() for path in tmp_path.glob("state.sqlite3*"))
        assert not [mark for mark in (FORGET_NAME, *FORGET_UTTERANCES) if mark.encode() in raw]
        # The bot keeps working for the forgotten user: a fresh start.
        assert client.say("hi", "private-zeb", "zeb")[-1] == "What is your name?"


# --- The state command ----------------------------------------------------------------------


def test_state_command_is_off_by_default_with_an_app_id_unless_enabled():
    assert DefaultConfig.from_env({}).STATE_COMMAND_ENABLED is True
    assert DefaultConfig.from_env({"MicrosoftAppId": "some-app"}).STATE_COMMAND_ENABLED is False
    assert DefaultConfig.from_env(
        {"MicrosoftAppId": "some-app", "STATE_COMMAND_ENABLED": "true"}
    ).STATE_COMMAND_ENABLED is True
    assert DefaultConfig.from_env({"STATE_COMMAND_ENABLED": "false"}).STATE_COMMAND_ENABLED is False


async def test_with_the_command_off_state_shows_nothing_stored():
    """What app.py builds when an app id is set: BotSettings(state_command_enabled=False)."""
    adapter = build_test_adapter(memory_storage(), BotSettings(state_command_enabled=False))
    flow = await adapter.send("hi")
    flow = await flow.assert_reply(lambda activity, _: None)  # welcome
    flow = await flow.assert_reply("What is your name?")
    flow = await (await flow.send("Margaret")).assert_reply(lambda activity, _: None)
    await (await flow.send("state")).assert_reply(STATE_OFF)


def test_state_command_off_on_the_real_process(tmp_path: Path):
    env = {
        "STORAGE": "sqlite",
        "SQLITE_PATH": str(tmp_path / "s.sqlite3"),
        "STATE_COMMAND_ENABLED": "false",
    }
    with ChannelServer() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        client.say("hi", "c", "u")
        client.say("Margaret", "c", "u")
        assert client.say("state", "c", "u") == [STATE_OFF]
