"""What the bot stores is data: odd input round-trips exactly, oversized records are
refused before they are written, planted or malformed documents are refused without
running, and records in the codec's shape before are still read.

The per-backend contract (every store refuses ``py/reduce`` documents and
oversized items) is tests/test_storage_contract.py; these tests check what the
*bot* does on top of it: the user's reply, the records left behind, the process.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest

from state_engine import keys
from state_engine.stores import StateStorage
from state_engine.stores.partition import FORMAT_TAG, FORMAT_VERSION
from state_engine.stores.items import Item
from state_engine.stores.memory import MemoryItems
from state_engine.turns import TurnMessages
from bots import BotSettings
from bots.state_bot import WELCOME
from data_models import PizzaOrder

TOO_LARGE_MESSAGE, UNSAFE_MESSAGE = TurnMessages().too_large, TurnMessages().unsafe
from tests.bot_harness import build_test_adapter
from tests.http_probe import sqlite_documents
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient

MAX_TEXT = 2000  # config.py's default MAX_TEXT_LENGTH, which the live bot runs with
MAX_NAME = BotSettings.max_name_length

TRICKY_TEXTS = {
    "markdown": "**bold** _it_ [click me](javascript:alert(1)) ![img](http://x.invalid/a.png)",
    "html": "<script>alert('x')</script><img src=x onerror=alert(1)><b>hi</b>",
    "control characters": "\x00bell\x07 \x1b[31mred\x1b[0m\ttab\r\nINFO forged log line",
    "ten thousand characters": "abcdefghij" * 1000,
    "emoji": "👩🏽‍💻 🍕🇺🇳 family: 👨‍👩‍👧‍👦",
    "right-to-left override": "\u202egnp.exe",
    "sql": "'; DROP TABLE store_items; --",
    "codec tags as text": '{"$type": "UtteranceLog", "py/reduce": [{"py/function": "os.system"}]}',
    "a command inside": "please state the order and forget me not",
}


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[Tuple[EmulatorClient, BotProcess, Path]]:
    sqlite_path = tmp_path_factory.mktemp("stored-data") / "state.sqlite3"
    with ChannelServer() as channel, BotProcess(
        {"STORAGE": "sqlite", "SQLITE_PATH": str(sqlite_path)}
    ) as bot:
        yield EmulatorClient(bot.url, channel), bot, sqlite_path


def _stored(sqlite_path: Path, key: str) -> Dict[str, Any]:
    return json.loads(sqlite_documents(sqlite_path)[key])


@pytest.mark.parametrize("case", sorted(TRICKY_TEXTS))
def test_user_input_is_stored_and_echoed_as_data(live, case: str):
    client, bot, sqlite_path = live
    text = TRICKY_TEXTS[case]
    user, conversation = f"user-{case}", f"conversation-{case}"
    bounded, name = text.strip()[:MAX_TEXT], text.strip()[:MAX_NAME]

    client.say("hi", conversation, user)
    assert client.say(text, conversation, user) == [
        f"Thanks {name}. To see conversation data, type anything."
    ]
    replies = client.say(text, conversation, user)
    assert replies[0] == f"{name} sent: {bounded}"

    profile = _stored(sqlite_path, f"emulator/users/{user}")["UserProfile"]
    assert profile == {"$type": "UserProfile", "name": name, "age": None}
    log = _stored(sqlite_path, f"emulator/conversations/{conversation}/log")
    assert log == {
        "$type": "UtteranceLog",
        "utterances": [
            {"$type": "Utterance", "user_id": user, "text": said} for said in ("hi", bounded, bounded)
        ],
        "turn_number": 3,
    }
    assert "[on_turn_error]" not in bot.logs()
    assert "forged log line" not in bot.logs()  # user text is not logged at all


# --- Records over the store's limit ---------------------------------------------------------


class SmallItems(MemoryItems):
    """The memory backend with a limit small enough to reach in a few turns."""

    max_item_bytes = 6000

    def snapshot(self) -> Dict[str, Item]:
        return dict(self._items)


async def _say(adapter, text: str) -> List[str]:
    """Run one turn through the TestAdapter; the texts of all its replies."""
    await adapter.receive_activity(text)
    replies = [activity.text for activity in adapter.activity_buffer]
    adapter.activity_buffer.clear()
    return replies


async def _named(adapter, name: str) -> None:
    assert await _say(adapter, "hi") == [WELCOME, "What is your name?"]
    assert await _say(adapter, name) == [f"Thanks {name}. To see conversation data, type anything."]


async def _until_too_large(adapter, store: SmallItems, text: str, turns: int = 10) -> Dict[str, Item]:
    """Say ``text`` until a turn is refused; the store as it was before that turn."""
    for turn in range(turns):
        before = store.snapshot()
        replies = await _say(adapter, text.format(turn=turn))  # distinct: a repeated topping is not added
        if replies == [TOO_LARGE_MESSAGE]:
            return before
    raise AssertionError("no turn was refused; the limit was never reached")


async def test_an_utterance_log_over_the_limit_is_refused_before_the_write():
    store = SmallItems()
    settings = BotSettings(utterance_log_size=1000, max_text_length=100_000)
    adapter = build_test_adapter(StateStorage(store), settings)
    await _named(adapter, "Ada")
    before = await _until_too_large(adapter, store, "m" * 1500 + "{turn}")
    assert store.snapshot() == before  # nothing of the refused turn was written


async def test_a_conversation_state_over_the_limit_is_refused_and_nothing_of_the_turn_is_kept():
    """The order grows (the log does not: it keeps 2 utterances) on a store whose limit is
    below a full order. The turn that would make it too large changes nothing, not even
    the utterance log the bot writes "directly to storage" (the turn runner stages it with
    the turn's state)."""
    store = SmallItems()
    store.max_item_bytes = 2500
    adapter = build_test_adapter(StateStorage(store), BotSettings(utterance_log_size=2, max_text_length=100_000))
    await _named(adapter, "Ada")
    before = await _until_too_large(adapter, store, "add {turn:02d}" + "t" * 48, turns=PizzaOrder.MAX_TOPPINGS)
    assert store.snapshot() == before


# --- A planted jsonpickle document in the bot's own record ----------------------------------

PAYLOADS = {
    "py/reduce": {"py/reduce": [{"py/function": "os.system"}, {"py/tuple": ["touch {marker}"]}]},
    "py/object": {
        "py/object": "subprocess.Popen",
        "py/newargs": {"py/tuple": [["touch", "{marker}"]]},
    },
    "unknown $type": {"$type": "os.system", "$value": "touch {marker}"},
    "py/reduce beside the tag": {
        "$type": "ConversationData",
        "welcomed": True,
        "py/reduce": [{"py/function": "os.system"}, {"py/tuple": ["touch {marker}"]}],
    },
    "py/reduce in the shape before": {
        "$type": "ConversationData",
        "$value": {
            "welcomed": {
                "py/reduce": [{"py/function": "os.system"}, {"py/tuple": ["touch {marker}"]}]
            }
        },
    },
    "a field of the wrong type": {"$type": "ConversationData", "welcomed": 1},
    "a dunder attribute": {
        "$type": "DialogInstance",
        "id": "x",
        "state": {},
        "__class__": "touch {marker}",
    },
}


def _plant(sqlite_path: Path, key: str, document: Dict[str, Any]) -> str:
    """Put ``document`` as the record ``key`` into its partition's row, bypassing the bot."""
    item_id = keys.partition_of(key)
    connection = sqlite3.connect(sqlite_path, timeout=10)
    with connection:
        row = connection.execute("SELECT document FROM store_items WHERE key = ?", (item_id,)).fetchone()
        partition = json.loads(row[0]) if row else {FORMAT_TAG: FORMAT_VERSION, "records": {}}
        partition["records"][key] = {"e_tag": "planted", "value": document}
        connection.execute(
            "INSERT INTO store_items (key, document, e_tag) VALUES (?, ?, 'planted') "
            "ON CONFLICT(key) DO UPDATE SET document = excluded.document, e_tag = 'planted'",
            (item_id, json.dumps(partition)),
        )
    connection.close()
    return json.dumps(document)


def _plant_payload(live, tmp_path: Path, payload: str) -> Tuple[str, str, Path]:
    """A conversation whose state record was replaced by a planted document."""
    client, _, sqlite_path = live
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    conversation = f"planted-{payload}-{uuid.uuid4().hex[:6]}"
    client.say("hi", conversation, "victim-user")
    key = f"emulator/conversations/{conversation}"
    planted = json.dumps(PAYLOADS[payload]).replace("{marker}", str(marker))
    _plant(sqlite_path, key, {"ConversationData": json.loads(planted)})
    return conversation, key, marker


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_a_planted_document_is_refused_runs_nothing_and_the_bot_keeps_serving(
    live, tmp_path: Path, payload: str
):
    client, bot, sqlite_path = live
    conversation, key, marker = _plant_payload(live, tmp_path, payload)
    stored = sqlite_documents(sqlite_path)[key]

    for text in ("hello", "state", "profile"):
        assert client.say(text, conversation, "victim-user") == [UNSAFE_MESSAGE]
    assert not marker.exists()
    assert sqlite_documents(sqlite_path)[key] == stored  # refused, never overwritten
    assert bot.alive
    assert client.say("hi", f"{conversation}-elsewhere", "someone-else")[-1] == "What is your name?"
    assert "Traceback" not in bot.logs()


def test_forget_me_is_the_way_out_of_a_planted_record(live, tmp_path: Path):
    client, _, sqlite_path = live
    conversation, key, marker = _plant_payload(live, tmp_path, "py/reduce")
    [reply] = client.say("forget me", conversation, "victim-user")
    assert reply.startswith("I have deleted everything I stored about you")
    assert key not in sqlite_documents(sqlite_path)
    assert not marker.exists()


# --- A record in the codec's shape before ---------------------------------------------------


def _old_shape_mid_prompt(conversation: str) -> Dict[str, Any]:
    """A conversation record as the codec stored it before objects were flattened
    (``{"$type": X, "$value": {...}}`` at every level): the profile dialog waiting on
    its age prompt, and an order."""

    def wrapped(name: str, value: Dict[str, Any]) -> Dict[str, Any]:
        return {"$type": name, "$value": value}

    def activity(text: str) -> Dict[str, Any]:
        return wrapped("Activity", {"type": "message", "text": text, "inputHint": "acceptingInput"})

    number_prompt = wrapped(
        "DialogInstance",
        {
            "id": "NumberPrompt",
            "state": {
                "options": wrapped(
                    "PromptOptions",
                    {
                        "prompt": activity("How old are you? (type 'skip' to leave it out)"),
                        "retry_prompt": activity("Please enter your age as a whole number."),
                        "choices": None,
                        "style": None,
                        "validations": None,
                        "number_of_attempts": 0,
                    },
                ),
                "state": {},
            },
        },
    )
    waterfall = wrapped(
        "DialogInstance",
        {
            "id": "WaterfallDialog",
            "state": {
                "options": None,
                "values": {"name": "Ada"},
                "instanceId": conversation,
                "stepIndex": 1,
            },
        },
    )
    inner = wrapped("DialogState", {"_dialog_stack": [number_prompt, waterfall]})
    return {
        "PrivateConversationData": wrapped(
            "PrivateConversationData", {"message_count": 1, "prompted_for_user_name": False}
        ),
        "DialogState": wrapped(
            "DialogState",
            {
                "_dialog_stack": [
                    wrapped("DialogInstance", {"id": "ProfileDialog", "state": {"dialogs": inner}})
                ]
            },
        ),
    }


def test_a_record_in_the_shape_before_is_read_mid_prompt_and_rewritten_in_the_new_shape(live):
    client, bot, sqlite_path = live
    conversation, user = f"old-shape-{uuid.uuid4().hex[:6]}", "old-shape-user"
    client.say("hi", conversation, user)
    key = keys.private_state("emulator", conversation, user)
    _plant(sqlite_path, key, _old_shape_mid_prompt(conversation))
    order = {"PizzaOrder": {"$type": "PizzaOrder", "$value": {"toppings": ["cheese"]}}}
    _plant(sqlite_path, keys.conversation_state("emulator", conversation), order)

    assert client.say("36", conversation, user)[-1].startswith("Save this profile? Ada, age 36")
    assert client.say("yes", conversation, user)[-1] == "Profile saved: Ada, age 36."
    assert client.say("order", conversation, user) == ["Order: cheese"]
    stored = _stored(sqlite_path, keys.conversation_state("emulator", conversation))
    assert stored["PizzaOrder"] == {"$type": "PizzaOrder", "toppings": ["cheese"]}
    assert "$value" not in json.dumps(_stored(sqlite_path, key))
    assert "[on_turn_error]" not in bot.logs()
