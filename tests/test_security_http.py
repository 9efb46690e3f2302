"""The HTTP endpoint against bad input, on the real app process and a local channel.

Every bad request gets a 4xx with a one-line JSON reason and no stack trace,
runs no turn (nothing reaches the channel) and changes nothing in the store.
Activities the bot does not handle are answered as the SDK defines and leave
the store as it was. With an app id configured, no request without a valid
Bot Framework token runs a turn, and nothing is fetched from the internet.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from bots.state_bot import WELCOME
from tests.http_probe import RawHttp, drip, error_reason, sqlite_documents
from state_engine.testing.blackhole import Blackhole
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient, http_get
from state_engine.hosting.errors import json_errors

LIMIT = 16 * 1024
APP_ID = "00000000-1111-2222-3333-444444444444"


class LiveBot:
    """The app process, its channel and its SQLite file, shared by the tests of a module."""

    def __init__(self, bot: BotProcess, channel: ChannelServer, sqlite_path: Path) -> None:
        self.bot = bot
        self.channel = channel
        self.sqlite_path = sqlite_path
        self.client = EmulatorClient(bot.url, channel)
        self.http = RawHttp(bot.port)

    def store(self) -> Dict[str, str]:
        return sqlite_documents(self.sqlite_path)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveBot]:
    sqlite_path = tmp_path_factory.mktemp("security") / "state.sqlite3"
    env = {"STORAGE": "sqlite", "SQLITE_PATH": str(sqlite_path), "MAX_REQUEST_BYTES": str(LIMIT)}
    with ChannelServer() as channel, BotProcess(env) as bot:
        live_bot = LiveBot(bot, channel, sqlite_path)
        # A conversation with state in every scope, for the "nothing changed" checks.
        assert live_bot.client.join("known") == [WELCOME]
        live_bot.client.say("hi", "known")
        live_bot.client.say("Ada", "known")
        live_bot.client.say("add olives", "known")
        yield live_bot
        live_bot.http.close()


def assert_refused(live: LiveBot, status: int, body: bytes, expected: int) -> str:
    assert status == expected, (status, body)
    return error_reason(status, body)


# --- Bodies that are not JSON, not JSON we accept, or too large ----------------------


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b'{"type": NaN}', "not valid JSON"),
        (b'{"type": "message", "value": Infinity}', "not valid JSON"),
        (b'{"value": 1e999}', "not valid JSON"),
        (b'{"value": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b"[" * 5000 + b"]" * 5000, "nested deeper"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, "nested deeper"),
        (b'{"type": "message", "text": "\\ud800"}', "surrogate"),
        (b"[]", "JSON object"),
        (b"null", "JSON object"),
        (b'"message"', "JSON object"),
        (b"12345678901234567890", "JSON object"),
    ],
)
def test_bodies_that_are_not_an_activity_object_are_a_400(live: LiveBot, body: bytes, reason: str):
    before = live.store()
    status, answer = live.http.post(body)
    assert reason in assert_refused(live, status, answer, 400)
    assert live.store() == before


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_wrong_or_missing_content_type_is_a_415(live: LiveBot, content_type):
    body = json.dumps(live.client.activity(text="hi", conversation_id="ct")).encode()
    status, answer = live.http.post(body, content_type=content_type)
    assert "Content-Type" in assert_refused(live, status, answer, 415)
    assert live.channel.activities("ct") == []


def test_json_content_type_with_a_charset_is_accepted(live: LiveBot):
    body = json.dumps(live.client.activity(text="hi", conversation_id="charset")).encode()
    status, _ = live.http.post(body, content_type="application/json; charset=utf-8")
    assert status == 201
    assert live.channel.activities("charset")


def _padded_activity(live: LiveBot, size: int) -> bytes:
    activity = live.client.activity(text="hi", conversation_id="big")
    activity["channelData"] = {"padding": ""}
    filler = size - len(json.dumps(activity).encode())
    activity["channelData"]["padding"] = "x" * filler
    body = json.dumps(activity).encode()
    assert len(body) == size
    return body


def test_a_body_at_the_limit_is_read_whole_even_across_many_chunks(live: LiveBot):
    body = _padded_activity(live, LIMIT)
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))
    status, _ = live.http.post(chunks, chunked=True)
    assert status == 201
    assert live.channel.activities("big")


@pytest.mark.parametrize("how", ["content-length", "chunked", "gzip"])
def test_a_body_over_the_limit_is_a_413(live: LiveBot, how: str):
    before = live.store()
    if how == "content-length":
        status, answer = live.http.post(_padded_activity(live, LIMIT + 1))
    elif how == "chunked":  # no Content-Length: the limit is enforced while reading
        body = _padded_activity(live, LIMIT * 4)
        status, answer = live.http.post(
            (body[i : i + 4096] for i in range(0, len(body), 4096)), chunked=True
        )
    else:  # a small gzip body that inflates past the limit
        packed = gzip.compress(_padded_activity(live, LIMIT * 8))
        assert len(packed) < LIMIT
        status, answer = live.http.post(packed, headers={"Content-Encoding": "gzip"})
    assert "over" in assert_refused(live, status, answer, 413)
    assert live.store() == before


# --- Bodies that cannot be decoded, and clients too slow to trust -------------------------


def _head(live: LiveBot, length: int, **headers: str) -> bytes:
    lines = [
        "POST /api/messages HTTP/1.1", f"Host: 127.0.0.1:{live.bot.port}",
        "Content-Type: application/json", f"Content-Length: {length}",
        *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


CUT_GZIP = gzip.compress(b'{"type": "message", "text": "' + b"x" * 500 + b'"}')[:20]


@pytest.mark.parametrize(
    "encoding, body, reason",
    [
        ("gzip", b"this was never gzip", "could not be decoded: Can not decode content-encoding"),
        ("deflate", b"nor deflate", "could not be decoded: Can not decode content-encoding"),
        # Inflates to the start of a document, then stops: what arrived is not JSON.
        ("gzip", CUT_GZIP + b"\xff" * 40, "not valid JSON"),
    ],
    ids=["gzip", "deflate", "corrupt gzip"],
)
def test_a_body_that_cannot_be_decoded_is_a_400_with_the_reason(live: LiveBot, encoding, body, reason):
    before = live.store()
    status, answer = live.http.post(body, headers={"Content-Encoding": encoding})
    refused = assert_refused(live, status, answer, 400)
    assert reason in refused and "\n" not in refused, refused
    assert live.store() == before
    assert live.bot.alive and "Traceback" not in live.bot.logs()


@pytest.mark.parametrize(
    "framing",
    [b"Content-Encoding: br\r\nContent-Length: 2\r\n\r\n{}",  # aiohttp has no brotli here
     b"Transfer-Encoding: chunked\r\n\r\n5\r\n{}{}{}\r\nzz\r\n"],
    ids=["unsupported encoding", "broken chunks"],
)
def test_framing_aiohttp_refuses_itself_is_a_400_and_the_bot_keeps_serving(live: LiveBot, framing):
    head = b"POST /api/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    result = drip(live.bot.port, head + framing, b"", interval=0, wait=10)
    assert result.status == 400, result.answer
    assert b"Traceback" not in result.answer
    assert live.bot.alive
    assert live.client.say("order", "known") == ["Order: olives"]


def test_a_body_trickled_slower_than_the_time_limit_is_refused_before_it_ends(live: LiveBot):
    """30 bytes at one every half second would take 15 s; the bot answers 408 after 10."""
    body = json.dumps({"type": "message", "text": "slow"}).encode()[:30]
    result = drip(live.bot.port, _head(live, len(body)), body, interval=0.5)
    assert result.status == 408, result.answer
    assert b"did not arrive within 10 s" in result.answer
    assert result.sent < len(body), "refused while the client was still sending"
    assert result.closed, "and the connection is closed, not left waiting for the rest"


@pytest.mark.parametrize("how", [socket.SHUT_WR, socket.SHUT_RDWR])
def test_a_client_gone_before_its_body_ended_leaves_no_trace_in_the_log(live: LiveBot, how: int):
    """The body is 100 bytes short when the client half-closes or closes: the bot drops
    the request quietly (nobody is there to answer) and keeps serving."""
    body = json.dumps(live.client.activity(text="cut short", conversation_id="gone")).encode()
    logged_before = len(live.bot.logs())
    with socket.create_connection(("127.0.0.1", live.bot.port), timeout=10) as sock:
        sock.sendall(_head(live, len(body) + 100) + body)
        sock.shutdown(how)
        if how == socket.SHUT_WR:
            sock.recv(1000)
    time.sleep(0.5)
    assert live.client.say("order", "known") == ["Order: olives"]
    logged = live.bot.logs()[logged_before:]
    assert "unhandled error" not in logged and "Traceback" not in logged, logged


def test_request_headers_trickled_for_ever_are_cut_off(live: LiveBot):
    """aiohttp times a new connection with the keep-alive limit (15 s) until a request
    arrives: headers sent a byte every half second never become a request."""
    head = _head(live, 2) * 3
    result = drip(live.bot.port, b"", head, interval=0.5, wait=60)
    assert result.closed and result.sent < len(head)
    assert result.seconds < 30


def test_an_idle_keep_alive_connection_is_closed(live: LiveBot):
    body = json.dumps(live.client.activity(text="hi", conversation_id="idle")).encode()
    result = drip(live.bot.port, _head(live, len(body)) + body, b"", interval=0, wait=60)
    assert result.status == 201, result.answer
    assert result.closed and result.seconds < 30, "aiohttp's default would keep it 75 s"


# --- JSON objects that are not a valid activity -------------------------------------------


def _without(activity: Dict[str, Any], field: str) -> Dict[str, Any]:
    return {key: value for key, value in activity.items() if key != field}


INVALID_ACTIVITIES = {
    "missing type": (lambda a: _without(a, "type"), "'type'"),
    "blank type": (lambda a: {**a, "type": "  "}, "'type'"),
    "missing channelId": (lambda a: _without(a, "channelId"), "'channelId'"),
    "missing conversation": (lambda a: _without(a, "conversation"), "'conversation.id'"),
    "conversation without id": (
        lambda a: {**a, "conversation": {"name": "x"}},
        "'conversation.id'",
    ),
    "numeric conversation id": (lambda a: {**a, "conversation": {"id": 5}}, "'conversation.id'"),
    "missing from": (lambda a: _without(a, "from"), "'from.id'"),
    "from as a string": (lambda a: {**a, "from": "user-1"}, "'from.id'"),
    "missing serviceUrl": (lambda a: _without(a, "serviceUrl"), "'serviceUrl'"),
    "serviceUrl not http": (lambda a: {**a, "serviceUrl": "file:///etc/passwd"}, "'serviceUrl'"),
    "serviceUrl without host": (lambda a: {**a, "serviceUrl": "http://"}, "'serviceUrl'"),
    # Each got through to the turn, which saved, and then a 500 when the reply was sent.
    "serviceUrl port out of range": (
        lambda a: {**a, "serviceUrl": "http://127.0.0.1:99999/"}, "'serviceUrl' is not a valid URL"
    ),
    "serviceUrl port not a number": (lambda a: {**a, "serviceUrl": "http://127.0.0.1:abc/"}, "'serviceUrl'"),
    "serviceUrl unclosed IPv6 host": (lambda a: {**a, "serviceUrl": "http://[::1"}, "'serviceUrl'"),
    "serviceUrl empty host label": (lambda a: {**a, "serviceUrl": "http://a..b/"}, "'serviceUrl'"),
    "serviceUrl host label too long": (lambda a: {**a, "serviceUrl": f"http://{'a' * 300}/"}, "'serviceUrl'"),
    "serviceUrl NUL in the host": (lambda a: {**a, "serviceUrl": "http://a\u0000b/"}, "'serviceUrl'"),
    "serviceUrl invisible host": (lambda a: {**a, "serviceUrl": "https://\u2060/"}, "'serviceUrl'"),
    "serviceUrl with a password": (
        lambda a: {**a, "serviceUrl": "http://alice:s3cret@127.0.0.1:1/"}, "user name or password"
    ),
    "adaptiveCard/action with a string action": (
        lambda a: {**a, "type": "invoke", "name": "adaptiveCard/action", "value": {"action": "x"}},
        "'value.action' must be an object",
    ),
    "adaptiveCard/action with a list action": (
        lambda a: {**a, "type": "invoke", "name": "adaptiveCard/action", "value": {"action": [1]}},
        "'value.action' must be an object",
    ),
    "text as an object": (
        lambda a: {**a, "text": {"a": 1}},
        "'activity.text' must be a JSON string",
    ),
    "text as a number": (lambda a: {**a, "text": 42}, "'activity.text'"),
    "id as a list": (lambda a: {**a, "id": ["x"]}, "'activity.id'"),
    "timestamp not a date": (lambda a: {**a, "timestamp": "yesterday"}, "ISO 8601"),
    "timestamp as a number": (lambda a: {**a, "timestamp": 1700000000}, "'activity.timestamp'"),
    "membersAdded as an object": (lambda a: {**a, "membersAdded": {"id": "x"}}, "JSON array"),
    "membersAdded with null": (lambda a: {**a, "membersAdded": [None]}, "must not be null"),
    "membersAdded with a string": (lambda a: {**a, "membersAdded": ["x"]}, "JSON object"),
    "member id as a number": (
        lambda a: {**a, "membersAdded": [{"id": 7}]},
        "'activity.membersAdded[0].id'",
    ),
    "recipient as a string": (lambda a: {**a, "recipient": "bot"}, "'activity.recipient'"),
    "isGroup as a string": (
        lambda a: {**a, "conversation": {"id": "c", "isGroup": "yes"}},
        "'activity.conversation.isGroup' must be a JSON bool",
    ),
    "attachments with null": (lambda a: {**a, "attachments": [None]}, "must not be null"),
    "attachment contentType as a number": (
        lambda a: {**a, "attachments": [{"contentType": 5}]},
        "'activity.attachments[0].contentType'",
    ),
    "suggestedActions.actions as a string": (
        lambda a: {**a, "suggestedActions": {"actions": "y"}},
        "'activity.suggestedActions.actions'",
    ),
    "reactionsAdded with null": (lambda a: {**a, "reactionsAdded": [None]}, "must not be null"),
}


@pytest.mark.parametrize("case", sorted(INVALID_ACTIVITIES))
def test_json_that_is_not_a_valid_activity_is_a_400_with_the_reason(live: LiveBot, case: str):
    mutate, reason = INVALID_ACTIVITIES[case]
    conversation = f"invalid-{uuid.uuid4().hex[:8]}"
    activity = mutate(live.client.activity(text="hi", conversation_id=conversation))
    before = live.store()
    status, answer = live.http.post_json(activity)
    assert reason in assert_refused(live, status, answer, 400)
    assert live.store() == before
    assert live.channel.activities(conversation) == []


def test_odd_but_valid_values_are_answered_not_crashed_on(live: LiveBot):
    """Unicode, control characters, nulls, deep (but bounded) data in free-form fields."""
    conversation = "odd-values"
    odd = {
        "channelData": {"nested": [[[[[["deep"]]]]]], "big": 10**300, "none": None},
        "value": {"emoji": "🍕👩‍💻", "rtl": "\u202eevil", "nul": "\x00"},
        "entities": [{"type": "mention", "anything": [1, 2.5, True, None]}],
        "locale": None,
        "attachments": [],
        "recipient": None,
    }
    for text in ("\x00\x1b[31m", "🍕" * 10, "‮reversed", "line\nbreak\r\n", None):
        body = live.client.activity(text=text, conversation_id=conversation, **odd)
        status, answer = live.http.post_json(body)
        assert status == 201, answer
    assert "on_turn_error" not in live.bot.logs()


# --- What the adapter does with valid activities -------------------------------------------


def test_expect_replies_come_back_in_the_http_body_and_nothing_is_posted(live: LiveBot):
    conversation = "expect-replies"
    activity = live.client.activity(
        text="hello", conversation_id=conversation, user_id="lin", deliveryMode="expectReplies"
    )
    status, answer = live.http.post_json(activity)
    assert status == 200, answer
    replies = json.loads(answer)["activities"]
    assert [reply["text"] for reply in replies] == [WELCOME, "What is your name?"]
    assert all(reply["conversation"]["id"] == conversation for reply in replies)
    assert live.channel.activities(conversation) == []
    # The turn's state was saved like any other: the next turn continues from it.
    activity = live.client.activity(
        text="Lin", conversation_id=conversation, user_id="lin", deliveryMode="expectReplies"
    )
    status, answer = live.http.post_json(activity)
    assert [r["text"] for r in json.loads(answer)["activities"]] == [
        "Thanks Lin. To see conversation data, type anything."
    ]


UNHANDLED = {
    "typing": {},
    "endOfConversation": {"code": "completedSuccessfully"},
    "event": {"name": "some/event", "value": {"a": 1}},
    "event tokens/response": {"name": "tokens/response", "value": {"token": "x"}},
    "messageReaction": {"reactionsAdded": [{"type": "like"}], "replyToId": "r1"},
    "installationUpdate add": {"action": "add"},
    "installationUpdate remove": {"action": "remove-upgrade"},
    "messageUpdate": {"text": "edited"},
    "messageDelete": {},
    "conversationUpdate membersRemoved": {"membersRemoved": [{"id": "user-1"}]},
    "handoff": {},
    "trace": {"name": "x", "value": 1},
    "someFutureType": {},
}


@pytest.mark.parametrize("case", sorted(UNHANDLED))
def test_activity_types_the_bot_does_not_handle_change_nothing(live: LiveBot, case: str):
    activity_type = case.split()[0]
    activity = live.client.activity(activity_type, conversation_id="known", **UNHANDLED[case])
    before_store = live.store()
    before_replies = len(live.channel.activities("known"))
    status, answer = live.http.post_json(activity)
    assert status == 201, answer
    assert live.store() == before_store
    assert len(live.channel.activities("known")) == before_replies


@pytest.mark.parametrize(
    "name, value, expected",
    [
        (None, None, 501),
        ("some/custom", {"a": 1}, 501),
        ("adaptiveCard/action", {"action": {"type": "Action.Execute"}}, 501),
        ("adaptiveCard/action", "not an object", 400),
        ("adaptiveCard/action", None, 400),
        ("adaptiveCard/action", {"action": {"type": "Action.Submit"}}, 400),
        ("signin/verifyState", {"state": "123"}, 501),
        ("signin/tokenExchange", {"id": "x", "token": "t"}, 501),  # not only on Teams
        ("healthCheck", None, 501),  # the Python SDK has no healthCheck handler
    ],
)
def test_invoke_gets_the_sdk_invoke_response_not_a_500(live: LiveBot, name, value, expected):
    fields = {key: val for key, val in (("name", name), ("value", value)) if val is not None}
    activity = live.client.activity("invoke", conversation_id="known", **fields)
    before = live.store()
    status, answer = live.http.post_json(activity)
    assert status == expected, answer
    assert "[on_turn_error]" not in live.bot.logs()
    if status == 400:  # the protocol's error object, not the SDK's unserializable Exception
        body = json.loads(answer)
        assert body["type"] == "application/vnd.microsoft.error"
        assert set(body["value"]) == {"code", "message"}
    assert live.store() == before


def test_a_message_with_only_attachments_gets_a_sensible_reply(live: LiveBot):
    before = live.store()
    activity = live.client.activity(
        conversation_id="known",
        attachments=[{"contentType": "image/png", "contentUrl": "https://example.invalid/a.png"}],
    )
    assert live.client.send(activity) == [
        "I can only read text, and that message had none. Type anything to continue."
    ]
    assert live.store() == before


def test_a_channel_that_refuses_the_replies_is_a_502_and_the_bot_keeps_serving(live: LiveBot):
    refusing = f"{live.channel.url}/no-such-channel/"  # the channel answers 404 there
    activity = live.client.activity(text="hi", conversation_id="nowhere", serviceUrl=refusing)
    status, answer = live.http.post_json(activity)
    assert "could not be delivered" in assert_refused(live, status, answer, 502)
    assert live.bot.alive
    assert live.client.say("order", "known") == ["Order: olives"]


def test_other_methods_and_paths_answer_without_a_trace(live: LiveBot):
    for method, path in (("GET", "/api/messages"), ("PUT", "/api/messages"), ("GET", "/nope")):
        status, answer = live.http.request(method, path)
        assert status in (404, 405)
        assert b"Traceback" not in answer


async def test_an_unexpected_error_is_a_json_500_without_a_trace_even_in_debug(caplog):
    """The middleware's promise, checked on its own: a bug stays visible in the log."""

    async def broken(_: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/broken", broken)
    # aiohttp puts the traceback into its own 500 page when the loop runs in debug mode.
    asyncio.get_running_loop().set_debug(True)
    async with TestClient(TestServer(app)) as client:
        with caplog.at_level(logging.ERROR, logger="web.errors"):
            response = await client.get("/broken")
            body = await response.text()
    assert response.status == 500
    assert "secret internals" not in body and "Traceback" not in body
    assert json.loads(body) == {"error": "internal error; see the bot's log"}
    assert "secret internals" in caplog.text and "RuntimeError" in caplog.text


# --- Authentication with an app id configured ----------------------------------------------


@pytest.fixture(scope="module")
def blackhole() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung metadata endpoint)."""
    with Blackhole() as server:
        yield server.port


@pytest.fixture(scope="module")
def secured(tmp_path_factory, blackhole: int) -> Iterator[LiveBot]:
    """The app with an app id, whose way to the internet is a proxy that never answers:
    any metadata fetch the SDK attempts hangs instead of leaving this machine."""
    sqlite_path = tmp_path_factory.mktemp("secured") / "state.sqlite3"
    env = {
        "STORAGE": "sqlite",
        "SQLITE_PATH": str(sqlite_path),
        "MicrosoftAppId": APP_ID,
        "MicrosoftAppPassword": "fake-password-for-auth-tests",
        "HTTPS_PROXY": f"http://127.0.0.1:{blackhole}",
        "HTTP_PROXY": f"http://127.0.0.1:{blackhole}",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    with ChannelServer() as channel, BotProcess(env) as bot:
        yield LiveBot(bot, channel, sqlite_path)


def _token(issuer: str, algorithm: str = "RS256") -> str:
    now = int(time.time())
    claims = {"iss": issuer, "aud": APP_ID, "exp": now + 600, "nbf": now - 10, "serviceurl": "x"}
    if algorithm == "HS256":
        return jwt.encode(claims, "a-self-chosen-shared-secret-of-32-bytes!", algorithm="HS256")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "self-signed"})


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer garbage",
        "Bearer a.b.c",
        "Basic dXNlcjpwYXNz",
        "bearer lowercase-scheme",
        "Bearer " + _token("https://attacker.example"),
        "Bearer " + _token("https://attacker.example", "HS256"),
    ],
    ids=lambda value: (value or "none")[:24],
)
def test_without_a_valid_token_the_answer_is_401_fast_and_no_turn_runs(
    secured: LiveBot, authorization
):
    conversation = f"auth-{uuid.uuid4().hex[:8]}"
    headers = {} if authorization is None else {"Authorization": authorization}
    started = time.monotonic()
    status, answer = secured.http.post_json(
        secured.client.activity(text="hi", conversation_id=conversation), headers=headers
    )
    assert time.monotonic() - started < 2
    assert "token" in assert_refused(secured, status, answer, 401)
    assert secured.channel.activities() == []
    assert secured.store() == {}


def test_a_token_the_sdk_would_check_online_is_401_and_never_stalls_the_bot(secured: LiveBot):
    """A self-signed token naming the Bot Framework's issuer sends the SDK to fetch its
    signing keys. Here that fetch hangs forever; the bot keeps answering others
    meanwhile and refuses the request when the fetch's time limit passes."""
    activity = secured.client.activity(text="hi", conversation_id="online-check")
    headers = {"Authorization": "Bearer " + _token("https://api.botframework.com")}
    outcome: Dict[str, Any] = {}

    def post() -> None:
        outcome["answer"] = RawHttp(secured.bot.port).post_json(activity, headers=headers)

    thread = threading.Thread(target=post)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    assert http_get(f"{secured.bot.url}/healthz")[0] == 200
    no_token = secured.http.post_json(secured.client.activity(text="hi", conversation_id="other"))
    assert no_token[0] == 401
    assert time.monotonic() - started < 1, "the event loop was blocked by the token check"
    thread.join(30)
    status, answer = outcome["answer"]
    assert "token" in assert_refused(secured, status, answer, 401)
    assert secured.channel.activities() == [] and secured.store() == {}
    assert secured.bot.alive
