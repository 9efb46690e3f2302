"""Property-based fuzzing of /api/messages on the real app process (Hypothesis).

Thousands of generated activities (well-formed, then mutated field by field)
and raw bodies go over one keep-alive connection. For every one: no 5xx (an
unknown invoke's 501 is the SDK's answer, not a failure), no unhandled error in
the bot's log, the process stays up. At the end, the records of a conversation
set up before the fuzzing are byte for byte what they were.

Replies go only to the local channel: every http(s) ``serviceUrl`` the fuzzer
produces is replaced by the channel's, so nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterator
from urllib.parse import urlparse

import pytest
from aiohttp import web
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.http_probe import TRACE_MARKERS, RawHttp, sqlite_documents
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient

VICTIM = "victim"  # conversation and user ids of the conversation that must not change
LIMIT = 32 * 1024
# Lines in the bot's log that mean a request found a bug, even when it was answered.
BUG_MARKERS = ("[on_turn_error]", "unhandled error answering", "Traceback")

def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=bool(os.environ.get("CI")),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


class AnyPathChannel(ChannelServer):
    """The local channel, accepting a reply at any path: the fuzzer's ids (``{``, ``/``,
    ``%``...) make reply URLs a real channel, which issued those ids, would accept."""

    def _make_runner(self) -> web.BaseRunner:
        # aiohttp's low-level server: no router, so no path it cannot match.
        return web.ServerRunner(web.Server(self._receive_any, loop=self._loop), access_log=None)

    async def _receive_any(self, request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"id": "reply"})


class FuzzTarget:
    def __init__(self, bot: BotProcess, channel: ChannelServer, sqlite_path: Path) -> None:
        self.bot = bot
        self.channel = channel
        self.sqlite_path = sqlite_path
        self.http = RawHttp(bot.port)
        self._log_offset = 0

    def victim_records(self) -> Dict[str, str]:
        return {
            key: document
            for key, document in sqlite_documents(self.sqlite_path).items()
            if VICTIM in key
        }

    def new_log_lines(self) -> str:
        with open(self.bot.log_path, "rb") as log:
            log.seek(self._log_offset)
            text = log.read().decode("utf-8", "replace")
        self._log_offset += len(text.encode("utf-8", "replace"))
        return text

    def check(self, status: int, body: bytes, allow_501: bool) -> None:
        event(f"HTTP {status}")  # pytest --hypothesis-show-statistics shows the spread
        assert self.bot.alive, "the bot process died"
        assert status < 500 or (allow_501 and status == 501), (status, body[:300])
        assert not any(marker in body.decode("utf-8", "replace") for marker in TRACE_MARKERS)
        new_lines = self.new_log_lines()
        assert not any(marker in new_lines for marker in BUG_MARKERS), new_lines[-3000:]


@pytest.fixture(scope="module")
def target(tmp_path_factory) -> Iterator[FuzzTarget]:
    sqlite_path = tmp_path_factory.mktemp("fuzz") / "state.sqlite3"
    env = {"STORAGE": "sqlite", "SQLITE_PATH": str(sqlite_path), "MAX_REQUEST_BYTES": str(LIMIT)}
    with AnyPathChannel() as channel, BotProcess(env) as bot:
        client = EmulatorClient(bot.url, channel)
        client.join(VICTIM, VICTIM)
        for text in ("hi", "Victoria", "add mushrooms", "profile", "Victoria V"):
            client.say(text, VICTIM, VICTIM)
        fuzz_target = FuzzTarget(bot, channel, sqlite_path)
        before = fuzz_target.victim_records()
        # user, conversation, private state, the utterance log, membership and participants
        assert len(before) == 6
        fuzz_target.new_log_lines()
        yield fuzz_target
        fuzz_target.http.close()
        assert bot.alive
        assert fuzz_target.victim_records() == before, "the fuzzing changed another conversation"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
# Mostly ids a channel could issue (any printable Unicode), sometimes any text at all.
printable = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=24)
ids = st.sampled_from(["fuzz-1", "fuzz-2", "fuzz-3"]) | printable | printable | st.text(max_size=24)
timestamps = st.datetimes(
    min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.timezones()
).map(lambda d: d.isoformat()) | st.text(max_size=30)
accounts = st.fixed_dictionaries(
    {"id": ids}, optional={"name": st.text(max_size=20), "role": st.sampled_from(["user", "bot"])}
)
ACTIVITY_TYPES = [
    "message", "conversationUpdate", "typing", "endOfConversation", "event", "invoke",
    "messageReaction", "installationUpdate", "messageUpdate", "messageDelete",
    "deleteUserData", "contactRelationUpdate", "handoff", "trace", "command",
]
COMMANDS = [
    "forget me", "state", "profile", "order", "clear order", "add ham",
    "yes", "no", "skip", "42", "hi",
]
INVOKE_NAMES = [
    "adaptiveCard/action", "signin/verifyState", "signin/tokenExchange",
    "composeExtension/query", "x",
]


@st.composite
def activities(draw: st.DrawFn, channel_url: str) -> Dict[str, Any]:
    activity: Dict[str, Any] = {
        "type": draw(st.sampled_from(ACTIVITY_TYPES) | st.text(min_size=1, max_size=12)),
        "id": draw(st.uuids().map(str) | ids),
        "channelId": draw(st.sampled_from(["emulator", "webchat", "msteams"]) | ids),
        "serviceUrl": channel_url,
        "from": draw(accounts),
        "recipient": {"id": "bot", "role": "bot"},
        "conversation": {
            "id": draw(ids),
            **draw(st.fixed_dictionaries({}, optional={"isGroup": st.booleans()})),
        },
    }
    optional = {
        "text": st.sampled_from(COMMANDS) | st.text(max_size=300),
        "timestamp": timestamps,
        "localTimestamp": timestamps,
        "deliveryMode": st.sampled_from(["normal", "expectReplies", "notification"]),
        "membersAdded": st.lists(accounts, max_size=3),
        "membersRemoved": st.lists(accounts, max_size=3),
        "reactionsAdded": st.lists(
            st.fixed_dictionaries({"type": st.text(max_size=8)}), max_size=2
        ),
        "name": st.sampled_from(INVOKE_NAMES) | st.text(max_size=20),
        "value": json_values,
        "channelData": json_values,
        "action": st.sampled_from(["add", "remove", "add-upgrade"]) | st.text(max_size=10),
        "attachments": st.lists(
            st.fixed_dictionaries(
                {"contentType": st.text(max_size=20)}, optional={"content": json_values}
            ),
            max_size=2,
        ),
        "entities": st.lists(st.fixed_dictionaries({"type": st.text(max_size=10)}), max_size=2),
        "locale": st.text(max_size=10),
        "replyToId": st.text(max_size=10),
        "textFormat": st.sampled_from(["plain", "markdown", "xml"]) | st.text(max_size=8),
    }
    for field in draw(st.sets(st.sampled_from(sorted(optional)), max_size=6)):
        activity[field] = draw(optional[field])
    return activity


def _mutated(
    activity: Dict[str, Any], mutations: Dict[str, Any], channel_url: str
) -> Dict[str, Any]:
    result = dict(activity)
    for field, value in mutations.items():
        if value is _DELETE:
            result.pop(field, None)
        else:
            result[field] = value
    url = result.get("serviceUrl")
    if isinstance(url, str) and urlparse(url).scheme in ("http", "https"):
        result["serviceUrl"] = channel_url  # never let the bot post anywhere but here
    return result


_DELETE = object()
FIELDS = ["type", "id", "channelId", "serviceUrl", "from", "recipient", "conversation", "text",
          "timestamp", "membersAdded", "attachments", "value", "deliveryMode", "name", "entities"]


def _is_invoke(activity: Any) -> bool:
    return isinstance(activity, dict) and activity.get("type") == "invoke"


def _untouched_victim(activity: Any) -> bool:
    return VICTIM not in json.dumps(activity)


def test_generated_activities_are_answered_without_a_server_error(target: FuzzTarget):
    @fuzz(1500)
    @given(activity=activities(target.channel.url))
    def run(activity: Dict[str, Any]) -> None:
        if not _untouched_victim(activity):
            return
        status, body = target.http.post_json(activity)
        target.check(status, body, allow_501=_is_invoke(activity))

    run()


def test_mutated_activities_are_a_clean_4xx_or_answered(target: FuzzTarget):
    @fuzz(1500)
    @given(
        activity=activities(target.channel.url),
        mutations=st.dictionaries(
            st.sampled_from(FIELDS), st.just(_DELETE) | json_values, min_size=1, max_size=3
        ),
    )
    def run(activity: Dict[str, Any], mutations: Dict[str, Any]) -> None:
        mutated = _mutated(activity, mutations, target.channel.url)
        if not _untouched_victim(mutated):
            return
        status, body = target.http.post_json(mutated)
        target.check(status, body, allow_501=_is_invoke(mutated))

    run()


def test_raw_bodies_and_content_types_are_a_clean_4xx(target: FuzzTarget):
    @fuzz(1000)
    @given(
        body=st.binary(max_size=512)
        | json_values.map(lambda value: json.dumps(value).encode())
        | st.text(max_size=200).map(lambda text: text.encode("utf-8", "surrogatepass")),
        content_type=st.sampled_from(
            ["application/json", "application/json; charset=latin-1", None, "text/json", ""]
        ),
    )
    def run(body: bytes, content_type: str | None) -> None:
        status, answer = target.http.post(body, content_type=content_type)
        assert status in (400, 413, 415), (status, body, answer)
        target.check(status, answer, allow_501=False)

    run()
