"""Replies over one pooled aiohttp session: the SDK's connector factory, made cheap.

CloudAdapter asks its ``BotFrameworkAuthentication`` for a connector factory and
a user-token client on every turn. The SDK's answer builds a new msrest
``ConnectorClient`` and a new ``UserTokenClient`` each time (their msrest
configuration alone, ``ClientRetryPolicy.__init__``, took about a quarter of the
bot's CPU), and msrest sends each reply as a blocking ``requests`` call in a
thread pool. ``PooledBotFrameworkAuthentication`` wraps the docs'
``ConfigurationBotFrameworkAuthentication`` and changes only that:

* requests are still authenticated by the SDK (``authenticate_request`` is
  delegated; a bot with an app id still refuses a request without a valid token);
* one connector per (app id, service URL, audience), built once from the SDK's
  own connector factory, so its credentials, login endpoint and user agent are
  exactly the SDK's;
* the calls CloudAdapter makes for replies (send, reply, update, delete) go over
  one shared keep-alive aiohttp session, with the bot's token when it has an
  app id, serialized to the SDK's JSON (``activity_json.py``) and retried as msrest retries,
  within a time budget per reply (msrest would wait up to 100 s per attempt);
  every other connector call (members, attachments, create conversation, any
  call with msrest options) is the SDK's ``ConnectorClient``, unchanged;
* the user-token client (only OAuth prompts use it) is built on first use.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Optional, Tuple
from urllib.parse import quote, urljoin

import aiohttp
from botbuilder.schema import Activity, ResourceResponse
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import (
    AppCredentials,
    AuthenticateRequestResult,
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ClaimsIdentity,
    ConnectorFactory,
    UserTokenClient,
)
from botframework.connector.skills import BotFrameworkClient

from ..activity_json import activity_to_json

# A token MSAL hands out is valid for at least 5 more minutes; ask again after 1.
_TOKEN_REUSE_SECONDS = 60.0
# msrest's ClientRetryPolicy: 3 retries on connection errors and 5xx except 501/505,
# waits as urllib3 computes them for backoff_factor 0.8; here only those that fit the budget.
_RETRY_WAITS = (0.0, 1.6, 3.2)
_NO_RETRY_STATUSES = (501, 505)
#: How long one attempt to send a reply may take (msrest's is 100 s).
ATTEMPT_TIMEOUT_SECONDS = 5.0
#: How long sending one reply may take, every attempt and wait included.
SEND_BUDGET_SECONDS = 6.0
# An attempt with less time than this left is not worth starting.
_MIN_ATTEMPT_SECONDS = 0.1


@dataclass(frozen=True)
class SendLimits:
    """How long sending one reply may take: each attempt, and all of them with their waits."""

    attempt_seconds: float = ATTEMPT_TIMEOUT_SECONDS
    budget_seconds: float = SEND_BUDGET_SECONDS


class ChannelRequestError(Exception):
    """The channel refused or never answered a request the bot made to it."""

    def __init__(self, method: str, url: str, status: Optional[int], detail: str) -> None:
        answer = f"answered {status}" if status is not None else "could not be reached"
        super().__init__(f"{method} {url}: the channel {answer}: {detail}")
        self.method = method
        self.url = url
        self.status = status


class _Token:
    """The bot's bearer token from the SDK's credentials, fetched off the event loop
    (MSAL's ``get_access_token`` is synchronous and may call the login service)."""

    def __init__(self, credentials: AppCredentials) -> None:
        self._credentials = credentials
        self._value: Optional[str] = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    @staticmethod
    def needed(credentials: AppCredentials) -> bool:
        """The SDK's rule (``AppCredentials._should_set_token``): only with an app id."""
        app_id = credentials.microsoft_app_id
        return bool(app_id) and app_id != AuthenticationConstants.ANONYMOUS_SKILL_APP_ID

    async def header(self) -> str:
        async with self._lock:
            if self._value is None or time.monotonic() - self._fetched_at > _TOKEN_REUSE_SECONDS:
                loop = asyncio.get_running_loop()
                self._value = await loop.run_in_executor(None, self._credentials.get_access_token)
                self._fetched_at = time.monotonic()
            return f"Bearer {self._value}"


class _PooledConversations:
    """``ConnectorClient.conversations`` with the reply calls sent over the pooled
    session; any other operation, or a call with msrest options, is the SDK's."""

    def __init__(
        self,
        sdk_client: ConnectorClient,
        session: Callable[[], aiohttp.ClientSession],
        token: Optional[_Token],
        limits: SendLimits,
    ) -> None:
        self._sdk = sdk_client.conversations
        self._base_url = sdk_client.config.base_url.rstrip("/") + "/"
        self._user_agent = sdk_client.config.user_agent
        self._session = session
        self._token = token
        self._limits = limits

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sdk, name)

    async def send_to_conversation(
        self, conversation_id: str, activity: Activity, **options: Any
    ) -> Optional[ResourceResponse]:
        if options:
            return await self._sdk.send_to_conversation(conversation_id, activity, **options)
        return await self._send("POST", self._path(conversation_id), activity)

    async def reply_to_activity(
        self, conversation_id: str, activity_id: str, activity: Activity, **options: Any
    ) -> Optional[ResourceResponse]:
        if options:
            return await self._sdk.reply_to_activity(
                conversation_id, activity_id, activity, **options
            )
        return await self._send(
            "POST",
            self._path(conversation_id, activity_id),
            activity,
            {"x-ms-conversation-id": conversation_id},
        )

    async def update_activity(
        self, conversation_id: str, activity_id: str, activity: Activity, **options: Any
    ) -> Optional[ResourceResponse]:
        if options:
            return await self._sdk.update_activity(
                conversation_id, activity_id, activity, **options
            )
        return await self._send("PUT", self._path(conversation_id, activity_id), activity)

    async def delete_activity(self, conversation_id: str, activity_id: str, **options: Any) -> None:
        if options:
            return await self._sdk.delete_activity(conversation_id, activity_id, **options)
        await self._send("DELETE", self._path(conversation_id, activity_id), None)
        return None

    def _path(self, conversation_id: str, activity_id: Optional[str] = None) -> str:
        # The SDK quotes path parts with nothing safe, then joins them to the service URL.
        path = f"v3/conversations/{quote(str(conversation_id), safe='')}/activities"
        if activity_id is not None:
            path += f"/{quote(str(activity_id), safe='')}"
        return urljoin(self._base_url, path)

    async def _send(
        self,
        method: str,
        url: str,
        activity: Optional[Activity],
        extra_headers: Optional[Dict[str, str]] = None,
    ) -> Optional[ResourceResponse]:
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        body: Optional[bytes] = None
        if activity is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
            # The same JSON as the SDK's serializer, a fraction of its cost.
            body = json.dumps(activity_to_json(activity)).encode("utf-8")
        if extra_headers:
            headers.update(extra_headers)
        loop = asyncio.get_running_loop()
        budget = self._limits.budget_seconds
        deadline = loop.time() + budget
        if self._token is not None:
            try:
                async with asyncio.timeout_at(deadline):
                    headers["Authorization"] = await self._token.header()
            except TimeoutError:
                detail = f"no token for the bot within {budget:g} s"
                raise ChannelRequestError(method, url, None, detail) from None

        for wait in _RETRY_WAITS + (None,):
            remaining = max(deadline - loop.time(), _MIN_ATTEMPT_SECONDS)
            attempt = aiohttp.ClientTimeout(total=min(self._limits.attempt_seconds, remaining))
            try:
                async with self._session().request(
                    method, url, data=body, headers=headers, timeout=attempt
                ) as response:
                    content = await response.read()
                    status = response.status
            except asyncio.TimeoutError:
                failure: Tuple[Optional[int], str] = (None, f"no answer within {attempt.total:g} s")
            except aiohttp.ClientError as error:
                failure = (None, repr(error))
            else:
                if status in (200, 201, 202):
                    return _resource_response(method, url, status, content)
                failure = (status, content[:300].decode("utf-8", "replace") or "no body")
                if status < 500 or status in _NO_RETRY_STATUSES:
                    raise ChannelRequestError(method, url, *failure)
            # Retry only when the wait leaves time for another attempt.
            if wait is None or deadline - loop.time() - wait < _MIN_ATTEMPT_SECONDS:
                raise ChannelRequestError(method, url, *failure)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _resource_response(
    method: str, url: str, status: int, content: bytes
) -> Optional[ResourceResponse]:
    """What the SDK's operation returns: the ResourceResponse, or None without a body."""
    if not content.strip():
        return None
    try:
        data = json.loads(content)
    except ValueError as error:
        raise ChannelRequestError(method, url, status, f"the body is not JSON ({error})") from error
    # ResourceResponse has one field; msrest's generic deserializer costs more than a reply.
    return ResourceResponse(id=data.get("id")) if isinstance(data, dict) else None


class _PooledConnectorClient:
    """The SDK's ConnectorClient for a service URL, with pooled ``conversations``."""

    def __init__(self, sdk_client: ConnectorClient, conversations: _PooledConversations) -> None:
        self._sdk = sdk_client
        self.conversations = conversations

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sdk, name)


class PooledConnectorFactory(ConnectorFactory):
    """One connector per (service URL, audience) for one app id, kept for reuse."""

    def __init__(
        self,
        sdk_factory: ConnectorFactory,
        session: Callable[[], aiohttp.ClientSession],
        max_connectors: int = 256,
        limits: SendLimits = SendLimits(),
    ) -> None:
        self._sdk_factory = sdk_factory
        self._session = session
        self._max_connectors = max_connectors
        self._limits = limits
        self._connectors: "OrderedDict[Tuple[str, Optional[str]], Any]" = OrderedDict()

    async def create(self, service_url: str, audience: Optional[str] = None) -> Any:
        """A ConnectorClient for ``service_url`` (the SDK's, or one that sends replies pooled)."""
        key = (service_url, audience)
        connector = self._connectors.get(key)
        if connector is None:
            connector = self._pooled(await self._sdk_factory.create(service_url, audience))
            self._connectors[key] = connector
            # Service URLs come from activities: keep a bounded number of them.
            while len(self._connectors) > self._max_connectors:
                self._connectors.popitem(last=False)
        else:
            self._connectors.move_to_end(key)
        return connector

    def _pooled(self, sdk_client: ConnectorClient) -> Any:
        credentials = sdk_client.config.credentials
        if not isinstance(credentials, AppCredentials):
            return sdk_client  # credentials we cannot read a token from: the SDK sends
        token = _Token(credentials) if _Token.needed(credentials) else None
        return _PooledConnectorClient(
            sdk_client, _PooledConversations(sdk_client, self._session, token, self._limits)
        )


class _LazyUserTokenClient(UserTokenClient):
    """The SDK's user-token client, built the first time an OAuth prompt needs it."""

    def __init__(self, build: Callable[[], Awaitable[UserTokenClient]]) -> None:
        self._build = build
        self._client: Optional[UserTokenClient] = None

    async def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if self._client is None:
            self._client = await self._build()
        return await getattr(self._client, name)(*args, **kwargs)

    async def get_user_token(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("get_user_token", *args, **kwargs)

    async def get_sign_in_resource(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("get_sign_in_resource", *args, **kwargs)

    async def sign_out_user(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("sign_out_user", *args, **kwargs)

    async def get_token_status(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("get_token_status", *args, **kwargs)

    async def get_aad_tokens(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("get_aad_tokens", *args, **kwargs)

    async def exchange_token(self, *args: Any, **kwargs: Any) -> Any:
        return await self._call("exchange_token", *args, **kwargs)


class PooledBotFrameworkAuthentication(BotFrameworkAuthentication):
    """The SDK's authentication, with connectors and user-token clients kept per app id.

    ``limits`` bounds each reply sent. Use one instance per event loop, and
    ``await close()`` when the app stops."""

    def __init__(
        self, inner: BotFrameworkAuthentication, limits: SendLimits = SendLimits()
    ) -> None:
        self._inner = inner
        self._limits = limits
        self._session: Optional[aiohttp.ClientSession] = None
        self._factories: Dict[Optional[str], PooledConnectorFactory] = {}
        self._user_token_clients: Dict[Optional[str], _LazyUserTokenClient] = {}

    def _shared_session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop, as aiohttp requires.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100, keepalive_timeout=30)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @staticmethod
    def _app_id(claims_identity: ClaimsIdentity) -> Optional[str]:
        """The app id the SDK's factories are built for (audience claim, else appid)."""
        app_id = claims_identity.get_claim_value(AuthenticationConstants.AUDIENCE_CLAIM)
        if app_id is None:
            app_id = claims_identity.get_claim_value(AuthenticationConstants.APP_ID_CLAIM)
        return app_id

    async def authenticate_request(
        self, activity: Activity, auth_header: str
    ) -> AuthenticateRequestResult:
        result = await self._inner.authenticate_request(activity, auth_header)
        result.connector_factory = self.create_connector_factory(result.claims_identity)
        return result

    async def authenticate_streaming_request(
        self, auth_header: str, channel_id_header: str
    ) -> AuthenticateRequestResult:
        # CloudAdapter puts its own streaming connector factory on this result.
        return await self._inner.authenticate_streaming_request(auth_header, channel_id_header)

    def create_connector_factory(self, claims_identity: ClaimsIdentity) -> ConnectorFactory:
        app_id = self._app_id(claims_identity)
        factory = self._factories.get(app_id)
        if factory is None:
            factory = PooledConnectorFactory(
                self._inner.create_connector_factory(claims_identity),
                self._shared_session,
                limits=self._limits,
            )
            self._factories[app_id] = factory
        return factory

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        app_id = self._app_id(claims_identity)
        client = self._user_token_clients.get(app_id)
        if client is None:
            client = _LazyUserTokenClient(
                lambda: self._inner.create_user_token_client(claims_identity)
            )
            self._user_token_clients[app_id] = client
        return client

    def create_bot_framework_client(self) -> BotFrameworkClient:
        return self._inner.create_bot_framework_client()

    def get_originating_audience(self) -> str:
        return self._inner.get_originating_audience()

    async def authenticate_channel_request(self, auth_header: str) -> ClaimsIdentity:
        return await self._inner.authenticate_channel_request(auth_header)
