"""The docs' ``ConfigurationBotFrameworkAuthentication`` wrapped so that its connector
factories and user-token clients are kept per app id instead of built every turn;
requests are still authenticated by the SDK."""

from __future__ import annotations

from typing import Dict, Optional

from botbuilder.schema import Activity
from botframework.connector.auth import (
    AuthenticateRequestResult,
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ClaimsIdentity,
    ConnectorFactory,
    UserTokenClient,
)
from botframework.connector.skills import BotFrameworkClient

from ...outbound import HttpClient, Limits
from .factory import PooledConnectorFactory
from .replies import ReplyHealth, SendLimits
from .user_tokens import LazyUserTokenClient


class PooledBotFrameworkAuthentication(BotFrameworkAuthentication):
    """The SDK's authentication, with connectors and user-token clients kept per app id.

    CloudAdapter asks its ``BotFrameworkAuthentication`` for a connector factory and a
    user-token client on every turn; the SDK builds new msrest clients each time and sends
    each reply as a blocking ``requests`` call on a thread (``docs/performance.md``). This
    wraps the docs' ``ConfigurationBotFrameworkAuthentication`` and changes only that:

    * requests are still authenticated by the SDK (``authenticate_request`` is
      delegated; a bot with an app id still refuses a request without a valid token);
    * one connector per (app id, service URL, audience), built once from the SDK's own
      connector factory, so its credentials, login endpoint and user agent are exactly
      the SDK's (``factory.py``);
    * the calls CloudAdapter makes for replies (send, reply, update, delete) go over one
      shared keep-alive HTTP client (``state_engine.outbound``), with the bot's token
      when it has an app id, serialized to the SDK's JSON (``activity_json.py``), retried
      as msrest retries, within a time budget per reply (``replies.py``); every other
      connector call (members, attachments, create conversation, any call with msrest
      options) is the SDK's ``ConnectorClient``, unchanged;
    * the user-token client (only OAuth prompts use it) is built on first use.

    ``limits`` bounds each reply sent, and ``reply_health`` says how the last one went
    (for /healthz). Use one instance per event loop, and ``await close()`` when the app stops."""

    def __init__(
        self, inner: BotFrameworkAuthentication, limits: SendLimits = SendLimits()
    ) -> None:
        self._inner = inner
        self._limits = limits
        self.reply_health = ReplyHealth()
        self._client: Optional[HttpClient] = None
        self._factories: Dict[Optional[str], PooledConnectorFactory] = {}
        self._user_token_clients: Dict[Optional[str], LazyUserTokenClient] = {}

    def _shared_client(self) -> HttpClient:
        if self._client is None:
            # A quarter for one channel: one that hangs cannot hold up the replies to the others.
            self._client = HttpClient(limits=Limits(connections=100, per_origin=25, idle_seconds=30))
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

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
                self._shared_client,
                limits=self._limits,
                health=self.reply_health,
            )
            self._factories[app_id] = factory
        return factory

    async def create_user_token_client(self, claims_identity: ClaimsIdentity) -> UserTokenClient:
        app_id = self._app_id(claims_identity)
        client = self._user_token_clients.get(app_id)
        if client is None:
            client = LazyUserTokenClient(
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
