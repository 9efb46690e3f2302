"""A token the SDK accepted is taken again for the same channel and service URL until it
expires (at most TOKEN_REUSE_SECONDS); anything else is checked by the SDK in full."""

from __future__ import annotations

import time
from typing import Any, List

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from botbuilder.schema import Activity
from botframework.connector.auth import ClaimsIdentity
from botframework.connector.auth.authenticate_request_result import AuthenticateRequestResult

from state_engine.hosting.checked_tokens import TOKEN_REUSE_SECONDS, CheckedTokens
from state_engine.hosting.messages import make_messages_handler

SERVICE_URL = "http://127.0.0.1:9/"


def _activity(service_url: str = SERVICE_URL, channel: str = "msteams") -> Activity:
    return Activity(type="message", channel_id=channel, service_url=service_url)


def _result(expires: Any, authenticated: bool = True) -> AuthenticateRequestResult:
    result = AuthenticateRequestResult()
    result.claims_identity = ClaimsIdentity({"exp": expires, "aud": "bot"}, authenticated)
    result.audience = "https://api.botframework.com"
    return result


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_an_accepted_header_is_taken_again_as_a_copy_of_the_same_claims():
    clock = Clock()
    tokens = CheckedTokens(clock=clock)
    accepted = _result(clock.now + 3600)
    tokens.remember("Bearer t", _activity(), accepted)
    again = tokens.get("Bearer t", _activity())
    assert again is not accepted and again.claims_identity is accepted.claims_identity
    assert again.audience == accepted.audience


def test_another_service_url_channel_or_header_is_checked_again():
    clock = Clock()
    tokens = CheckedTokens(clock=clock)
    tokens.remember("Bearer t", _activity(), _result(clock.now + 3600))
    assert tokens.get("Bearer t", _activity("http://127.0.0.1:10/")) is None
    assert tokens.get("Bearer t", _activity(channel="emulator")) is None
    assert tokens.get("Bearer other", _activity()) is None


def test_never_past_the_tokens_expiry_nor_the_reuse_limit():
    clock = Clock()
    tokens = CheckedTokens(clock=clock)
    tokens.remember("Bearer soon", _activity(), _result(clock.now + 30))
    tokens.remember("Bearer later", _activity(), _result(clock.now + 3600))
    clock.now += 31
    assert tokens.get("Bearer soon", _activity()) is None
    assert tokens.get("Bearer later", _activity()) is not None
    clock.now += TOKEN_REUSE_SECONDS
    assert tokens.get("Bearer later", _activity()) is None


def test_no_header_no_expiry_or_an_anonymous_identity_is_never_kept():
    clock = Clock()
    tokens = CheckedTokens(clock=clock)
    tokens.remember("", _activity(), _result(clock.now + 3600))
    tokens.remember("Bearer a", _activity(), _result(None))
    tokens.remember("Bearer b", _activity(), _result("soon"))
    tokens.remember("Bearer c", _activity(), _result(True))
    tokens.remember("Bearer d", _activity(), _result(clock.now + 3600, authenticated=False))
    tokens.remember("Bearer e", _activity(), _result(clock.now - 1))
    for header in ("", "Bearer a", "Bearer b", "Bearer c", "Bearer d", "Bearer e"):
        assert tokens.get(header, _activity()) is None


def test_the_oldest_entries_go_first_past_the_limit():
    clock = Clock()
    tokens = CheckedTokens(max_entries=2, clock=clock)
    for name in ("a", "b", "c"):
        tokens.remember(f"Bearer {name}", _activity(), _result(clock.now + 3600))
    assert tokens.get("Bearer a", _activity()) is None
    assert tokens.get("Bearer b", _activity()) is not None and tokens.get("Bearer c", _activity()) is not None


class CountingAuthentication:
    """The adapter's authentication: accepts "Bearer good", refuses anything else, counts calls."""

    def __init__(self) -> None:
        self.calls: List[str] = []

    async def authenticate_request(self, activity: Activity, header: str) -> AuthenticateRequestResult:
        self.calls.append(header)
        if header != "Bearer good":
            raise PermissionError("refused")
        return _result(time.time() + 3600)


class RecordingAdapter:
    def __init__(self) -> None:
        self.bot_framework_authentication = CountingAuthentication()
        self.turns: List[AuthenticateRequestResult] = []

    async def process_activity(self, auth_result: AuthenticateRequestResult, activity: Activity, logic: Any) -> None:
        self.turns.append(auth_result)
        return None


class NoBot:
    async def on_turn(self, context: Any) -> None:
        raise AssertionError("the recording adapter runs no turn")


async def test_the_handler_asks_the_sdk_once_per_token_and_still_refuses_bad_ones():
    adapter = RecordingAdapter()
    app = web.Application()
    app.router.add_post("/api/messages", make_messages_handler(adapter, NoBot(), 64 * 1024))
    body = {
        "type": "message", "id": "1", "channelId": "msteams", "serviceUrl": SERVICE_URL,
        "from": {"id": "u1"}, "recipient": {"id": "bot"}, "conversation": {"id": "c1"}, "text": "hi",
    }
    async with TestClient(TestServer(app)) as client:
        statuses = []
        for header in ("Bearer good", "Bearer good", "Bearer bad", "Bearer good", "Bearer bad"):
            response = await client.post("/api/messages", json=body, headers={"Authorization": header})
            statuses.append(response.status)
        other = await client.post("/api/messages", json={**body, "serviceUrl": "http://127.0.0.1:10/"},
                                  headers={"Authorization": "Bearer good"})
    assert statuses == [201, 201, 401, 201, 401] and other.status == 201
    # One check for the good token per service URL; every bad one checked in full.
    assert adapter.bot_framework_authentication.calls == ["Bearer good", "Bearer bad", "Bearer bad", "Bearer good"]
    assert len(adapter.turns) == 4 and len({id(result) for result in adapter.turns}) == 4
