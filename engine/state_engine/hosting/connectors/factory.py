"""The connector factory CloudAdapter asks for a connector on every turn: one connector
per service URL and audience, built once from the SDK's own factory and kept, whose
reply calls go over the pooled HTTP client."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Optional, Tuple

from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import AppCredentials, ConnectorFactory

from ...outbound import HttpClient
from .bot_token import BotToken
from .replies import PooledConversations, ReplyHealth, SendLimits


class _PooledConnectorClient:
    """The SDK's ConnectorClient for a service URL, with pooled ``conversations``."""

    def __init__(self, sdk_client: ConnectorClient, conversations: PooledConversations) -> None:
        self._sdk = sdk_client
        self.conversations = conversations

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sdk, name)


class PooledConnectorFactory(ConnectorFactory):
    """One connector per (service URL, audience) for one app id, kept for reuse."""

    def __init__(
        self,
        sdk_factory: ConnectorFactory,
        client: Callable[[], HttpClient],
        max_connectors: int = 256,
        limits: SendLimits = SendLimits(),
        health: Optional[ReplyHealth] = None,
    ) -> None:
        self._sdk_factory = sdk_factory
        self._client = client
        self._max_connectors = max_connectors
        self._limits = limits
        self._health = health if health is not None else ReplyHealth()
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
        token = BotToken(credentials) if BotToken.needed(credentials) else None
        return _PooledConnectorClient(
            sdk_client, PooledConversations(sdk_client, self._client, token, self._limits, self._health)
        )
