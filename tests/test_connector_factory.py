"""The pooled connector factory (state_engine.hosting.connectors) against a real local
channel: replies arrive as the SDK would send them, over one kept-alive
connection, with the bot's token when it has an app id, and a reply the channel
never answers fails within its time budget.

The token itself normally comes from login.microsoftonline.com, which tests
cannot reach. The app-id tests therefore give ConfigurationBotFrameworkAuthentication
a credentials factory (the SDK's own extension point) whose credentials return a
fixed token; everything after that (header, HTTP, channel) is real.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any, AsyncIterator, Dict, List, Optional

import pytest
from aiohttp import web
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationAccount,
    ResourceResponse,
)
from botframework.connector.auth import (
    AuthenticationConstants,
    ClaimsIdentity,
    MicrosoftAppCredentials,
    PasswordServiceClientCredentialFactory,
)

from state_engine.hosting.connectors import replies as pooled_replies
from state_engine.hosting.connectors.bot_token import BotToken, SignInBusy, SignInThreads
from state_engine.hosting.connectors import (
    SEND_BUDGET_SECONDS,
    ChannelRequestError,
    PooledBotFrameworkAuthentication,
    PooledConnectorFactory,
    SendLimits,
)
from config import DefaultConfig
from state_engine.testing.blackhole import Blackhole
from state_engine.testing.live_bot import free_port
from state_engine.testing.local_app import serving

APP_ID = "00000000-1111-2222-3333-444444444444"
TOKEN = "token-from-the-sdk-credentials"


class FixedTokenCredentials(MicrosoftAppCredentials):
    """The SDK's app credentials, with the one call to Azure AD answered locally."""

    def get_access_token(self, force_refresh: bool = False) -> str:
        return TOKEN


class SlowTokenCredentials(MicrosoftAppCredentials):
    """Credentials whose login service takes 3 s to answer."""

    def get_access_token(self, force_refresh: bool = False) -> str:
        time.sleep(3)
        return TOKEN


class FixedTokenCredentialFactory(PasswordServiceClientCredentialFactory):
    credentials = FixedTokenCredentials

    async def create_credentials(self, app_id, oauth_scope, login_endpoint, validate_authority):
        if await self.is_authentication_disabled():
            return MicrosoftAppCredentials.empty()
        if not await self.is_valid_app_id(app_id):
            raise PermissionError("Invalid app_id")
        return self.credentials(app_id, self.password, self.tenant_id, oauth_scope)


class SlowTokenCredentialFactory(FixedTokenCredentialFactory):
    credentials = SlowTokenCredentials


class RecordingChannel:
    """A channel on a real socket that records each request, and which TCP
    connection (client port) it came on. ``fail_next`` answers with a status."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        self.fail_next: List[int] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": dict(request.headers),
                "json": await request.json() if body else None,
                "client_port": request.transport.get_extra_info("peername")[1],
            }
        )
        if self.fail_next:
            return web.json_response({"error": {"code": "Busy"}}, status=self.fail_next.pop(0))
        if request.method == "DELETE":
            return web.Response(status=200)
        return web.json_response({"id": f"channel-{len(self.requests)}"})


@pytest.fixture
async def channel() -> AsyncIterator[RecordingChannel]:
    recorder = RecordingChannel()
    async with serving(recorder.handle) as url:
        recorder.url = url
        yield recorder


def authentication(
    app_id: str = "",
    limits: SendLimits = SendLimits(),
    factory: type = FixedTokenCredentialFactory,
) -> PooledBotFrameworkAuthentication:
    config = DefaultConfig(APP_ID=app_id, APP_PASSWORD="secret" if app_id else "")
    return PooledBotFrameworkAuthentication(
        ConfigurationBotFrameworkAuthentication(
            config, credentials_factory=factory(config.APP_ID, config.APP_PASSWORD)
        ),
        limits,
    )


def reply(text: str, conversation_id: str = "conversation/1 ?") -> Activity:
    return Activity(
        type=ActivityTypes.message,
        text=text,
        channel_id="emulator",
        conversation=ConversationAccount(id=conversation_id),
        from_property=ChannelAccount(id="bot", name="Bot"),
        recipient=ChannelAccount(id="user-1", name="User"),
        reply_to_id="activity 7",
    )


def bot_claims(app_id: Optional[str]) -> ClaimsIdentity:
    claims = {AuthenticationConstants.AUDIENCE_CLAIM: app_id} if app_id else {}
    return ClaimsIdentity(claims, True)


async def test_replies_reach_the_channel_over_one_kept_alive_connection(channel):
    auth = authentication()
    try:
        incoming = reply("hi")
        result = await auth.authenticate_request(incoming, "")
        assert isinstance(result.connector_factory, PooledConnectorFactory)
        connector = await result.connector_factory.create(channel.url, result.audience)

        first = await connector.conversations.reply_to_activity(
            "conversation/1 ?", "activity 7", reply("one")
        )
        second = await connector.conversations.send_to_conversation(
            "conversation/1 ?", reply("two")
        )
        updated = await connector.conversations.update_activity(
            "conversation/1 ?", "channel-1", reply("one, edited")
        )
        assert await connector.conversations.delete_activity("conversation/1 ?", "channel-2") is None
    finally:
        await auth.close()

    assert [type(r) for r in (first, second, updated)] == [ResourceResponse] * 3
    assert (first.id, second.id, updated.id) == ("channel-1", "channel-2", "channel-3")
    assert [(r["method"], r["path"]) for r in channel.requests] == [
        # Path parts quoted as the SDK quotes them (nothing is "safe").
        ("POST", "/v3/conversations/conversation%2F1%20%3F/activities/activity%207"),
        ("POST", "/v3/conversations/conversation%2F1%20%3F/activities"),
        ("PUT", "/v3/conversations/conversation%2F1%20%3F/activities/channel-1"),
        ("DELETE", "/v3/conversations/conversation%2F1%20%3F/activities/channel-2"),
    ]
    posted = channel.requests[0]
    # The body is the SDK's wire format of the activity.
    assert posted["json"] == reply("one").serialize()
    assert posted["json"]["from"] == {"id": "bot", "name": "Bot"}
    assert posted["headers"]["x-ms-conversation-id"] == "conversation/1 ?"
    assert posted["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert "BotBuilder Python" in posted["headers"]["User-Agent"]
    # No app id: no token, as the SDK's connector does it.
    assert all("Authorization" not in r["headers"] for r in channel.requests)
    # Four requests, one TCP connection: the session keeps it alive.
    assert len({r["client_port"] for r in channel.requests}) == 1


async def test_one_connector_per_service_url_and_audience_reused_across_turns(channel):
    auth = authentication()
    try:
        factories = [
            (await auth.authenticate_request(reply("turn"), "")).connector_factory
            for _ in range(3)
        ]
        assert factories[0] is factories[1] is factories[2]
        factory = factories[0]
        assert auth.create_connector_factory(bot_claims(None)) is factory
        first = await factory.create(channel.url, "audience-a")
        assert await factory.create(channel.url, "audience-a") is first
        assert await factory.create(channel.url, "audience-b") is not first
        assert await factory.create(channel.url + "/other", "audience-a") is not first
        # The user-token client is only built if an OAuth prompt calls it.
        token_client = await auth.create_user_token_client(bot_claims(None))
        assert await auth.create_user_token_client(bot_claims(None)) is token_client
    finally:
        await auth.close()


async def test_with_an_app_id_replies_carry_the_bots_token(channel):
    auth = authentication(APP_ID)
    try:
        factory = auth.create_connector_factory(bot_claims(APP_ID))
        connector = await factory.create(channel.url, None)
        await connector.conversations.reply_to_activity("c1", "a1", reply("secured", "c1"))
        await connector.conversations.send_to_conversation("c1", reply("again", "c1"))
    finally:
        await auth.close()
    assert [r["headers"].get("Authorization") for r in channel.requests] == [f"Bearer {TOKEN}"] * 2


async def test_with_an_app_id_a_request_without_a_token_is_refused():
    auth = authentication(APP_ID)
    try:
        with pytest.raises(PermissionError):
            await auth.authenticate_request(reply("no token"), "")
    finally:
        await auth.close()


async def test_a_refused_reply_raises_with_the_status_and_the_channels_reason(channel):
    auth = authentication()
    try:
        connector = await auth.create_connector_factory(bot_claims(None)).create(channel.url, None)
        channel.fail_next = [403]
        with pytest.raises(ChannelRequestError) as refused:
            await connector.conversations.reply_to_activity("c1", "a1", reply("x", "c1"))
        assert refused.value.status == 403
        assert "answered 403" in str(refused.value) and "Busy" in str(refused.value)
        assert len(channel.requests) == 1  # a 4xx is not retried
        # What /healthz shows: the host and the status, not the conversation or the body.
        assert auth.reply_health.problem == f"replies to {channel.url[len('http://'):]}: answered 403"

        # A 5xx is retried as msrest retries it (the first retry at once).
        channel.fail_next = [503]
        response = await connector.conversations.reply_to_activity("c1", "a1", reply("y", "c1"))
        assert response.id == "channel-3"
        assert len(channel.requests) == 3
        assert auth.reply_health.problem is None  # one went through
    finally:
        await auth.close()


async def test_an_unreachable_channel_raises_a_clear_error(monkeypatch):
    # The retry waits (1.6 s, 3.2 s, as msrest waits) are not what is tested here.
    monkeypatch.setattr(pooled_replies, "_RETRY_WAITS", (0.0, 0.0, 0.0))
    auth = authentication()
    try:
        connector = await auth.create_connector_factory(bot_claims(None)).create(
            f"http://127.0.0.1:{free_port()}", None  # nothing listens there
        )
        with pytest.raises(ChannelRequestError, match="could not be reached") as unreachable:
            await connector.conversations.send_to_conversation("c1", reply("z", "c1"))
        assert unreachable.value.status is None
    finally:
        await auth.close()


# --- Every reply within its time budget -----------------------------------------------------


async def _send_timed(auth: PooledBotFrameworkAuthentication, service_url: str, app_id=None):
    """Send one reply; return the error it ended with and the seconds it took."""
    connector = await auth.create_connector_factory(bot_claims(app_id)).create(service_url, None)
    started = time.monotonic()
    with pytest.raises(ChannelRequestError) as failed:
        await connector.conversations.send_to_conversation("c1", reply("z", "c1"))
    return failed.value, time.monotonic() - started


async def test_a_channel_that_never_answers_fails_within_the_budget_after_retrying():
    auth = authentication(limits=SendLimits(attempt_seconds=1, budget_seconds=2.5))
    try:
        with Blackhole() as blackhole:
            error, seconds = await _send_timed(auth, blackhole.url)
            attempts = blackhole.accepted
    finally:
        await auth.close()
    assert error.status is None and "no answer within 1 s" in str(error)
    # 1 s, an immediate retry of 1 s; the next wait (1.6 s) would overrun the budget.
    assert attempts == 2
    assert 1.5 < seconds < 2.5 + 2


async def test_with_the_default_limits_a_hung_channel_fails_within_the_default_budget():
    auth = authentication()
    try:
        with Blackhole() as blackhole:
            error, seconds = await _send_timed(auth, blackhole.url)
    finally:
        await auth.close()
    assert error.status is None
    assert seconds < SEND_BUDGET_SECONDS + 3


async def test_5xx_retries_stop_when_the_next_wait_would_pass_the_budget(channel):
    auth = authentication(limits=SendLimits(attempt_seconds=1, budget_seconds=2.5))
    channel.fail_next = [503] * 10
    try:
        error, seconds = await _send_timed(auth, channel.url)
    finally:
        await auth.close()
    # At once, at once again, after 1.6 s; a wait of 3.2 s does not fit.
    assert error.status == 503 and len(channel.requests) == 3
    assert seconds < 2.5 + 2


async def test_a_token_that_does_not_come_in_time_fails_the_reply_within_the_budget(channel):
    auth = authentication(APP_ID, SendLimits(budget_seconds=1), SlowTokenCredentialFactory)
    try:
        error, seconds = await _send_timed(auth, channel.url, APP_ID)
    finally:
        await auth.close()
    assert "no token for the bot within 1 s" in str(error)
    assert seconds < 1 + 1.5
    assert channel.requests == []


async def test_a_sign_in_service_that_never_answers_holds_one_thread_and_host_names_still_resolve(
    channel, monkeypatch: pytest.MonkeyPatch
):
    """The SDK's own credentials (MSAL, over requests) reach the sign-in service through a
    proxy that accepts and never answers. Each reply fails within its budget; all of them
    wait on one fetch on the sign-in threads, and the event loop's default executor, which
    resolves host names for every store and channel, stays free."""
    with Blackhole() as hung:
        monkeypatch.setenv("HTTPS_PROXY", hung.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        auth = authentication(APP_ID, SendLimits(budget_seconds=0.5), PasswordServiceClientCredentialFactory)
        try:
            for _ in range(10):
                error, seconds = await _send_timed(auth, channel.url, APP_ID)
                assert "no token for the bot within 0.5 s" in str(error) and seconds < 0.5 + 1.5
            host = channel.url[len("http://"):]
            assert auth.reply_health.problem == f"replies to {host}: no token for the bot within 0.5 s"
            assert hung.accepted == 1  # one fetch, shared by every reply
            assert len([t for t in threading.enumerate() if t.name.startswith("sign-in")]) <= 2  # the pool
            await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo("localhost", 80), 2)
        finally:
            await auth.close()
    assert channel.requests == []


def test_a_process_whose_sign_in_call_hangs_still_exits():
    """A turn gives up on a token whose fetch never ends; the process still exits at once
    (a thread of a ThreadPoolExecutor, the loop's default one included, is joined at exit)."""
    script = textwrap.dedent(
        """
        import asyncio, threading
        from state_engine.hosting.connectors.bot_token import BotToken

        class Hanging:
            microsoft_app_id = "app"

            def get_access_token(self, force_refresh=False):
                threading.Event().wait()

        async def main():
            try:
                await asyncio.wait_for(BotToken(Hanging()).header(), 0.2)
            except TimeoutError:
                print("gave up")

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=15)
    assert done.returncode == 0 and done.stdout.strip() == "gave up", done.stderr


async def test_with_every_sign_in_thread_held_a_new_fetch_is_refused_at_once():
    """Two fetches hang (other connectors' tokens); a third does not queue behind them on a
    thread that may never come free: it is refused at once, naming the sign-in service (the
    reply sender turns that into a ChannelRequestError)."""
    release = threading.Event()

    class Hanging:
        microsoft_app_id = APP_ID

        def get_access_token(self, force_refresh: bool = False) -> str:
            release.wait()
            return TOKEN

    threads = SignInThreads(limit=2)
    held = [BotToken(Hanging(), threads) for _ in range(2)]
    waiting = [asyncio.ensure_future(token.header()) for token in held]
    await asyncio.sleep(0.1)
    try:
        with pytest.raises(SignInBusy, match="has not answered the last 2 requests"):
            await BotToken(Hanging(), threads).header()
    finally:
        release.set()
    assert await asyncio.gather(*waiting) == [f"Bearer {TOKEN}"] * 2
    assert await BotToken(Hanging(), threads).header() == f"Bearer {TOKEN}"  # the threads are free again
