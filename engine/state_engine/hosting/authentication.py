"""The SDK's request authentication, bounded in time whatever a client sends.

The SDK fetches channel tokens' signing keys with a blocking ``requests.get`` and no
timeout; here its metadata cache holds ``SigningKeys``, fetched on the event loop with
aiohttp within a time limit, so a hung metadata endpoint costs no threads or sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import aiohttp
from botbuilder.schema import Activity
from botframework.connector.auth import (
    AuthenticationConstants,
    BotFrameworkAuthentication,
    ChannelValidation,
    GovernmentConstants,
    JwtTokenExtractor,
)
from botframework.connector.auth.authenticate_request_result import AuthenticateRequestResult
from jwt.algorithms import RSAAlgorithm

logger = logging.getLogger(__name__)

#: How long a request may take to authenticate, key fetch included.
AUTH_TIMEOUT_SECONDS = 10.0
#: How long fetching the metadata and then its keys may take, together.
KEY_FETCH_TIMEOUT_SECONDS = 5.0
#: After a failed fetch, tokens needing new keys are refused this long without fetching.
RETRY_AFTER_FAILURE_SECONDS = 10.0
#: Requests that may wait for one fetch; more are answered 503 at once.
MAX_WAITING_FOR_KEYS = 64
#: The SDK's schedule: keys are fetched again after a day, or after an hour when
#: a token names a key they do not hold (a key rollover).
KEYS_MAX_AGE_SECONDS = 24 * 3600.0
UNKNOWN_KEY_REFETCH_SECONDS = 3600.0
# Metadata and key documents are a few kilobytes.
_MAX_DOCUMENT_BYTES = 1024 * 1024


class KeysUnavailable(Exception):
    """The signing keys could not be fetched: the token cannot be checked (401)."""


class KeysBusy(Exception):
    """Too many requests already wait for the signing keys (503)."""


@dataclass(frozen=True)
class SigningKey:
    """One published key, as the SDK's ``JwtTokenExtractor`` reads it: the public key
    and the channels it is endorsed for."""

    public_key: Any
    endorsements: List[str] = field(default_factory=list)


async def _get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as response:
        response.raise_for_status()
        body = await response.content.read(_MAX_DOCUMENT_BYTES + 1)
    if len(body) > _MAX_DOCUMENT_BYTES:
        raise ValueError(f"{url} answered more than {_MAX_DOCUMENT_BYTES} bytes")
    return json.loads(body)


def _parse_keys(document: Any) -> Dict[str, SigningKey]:
    """The RSA keys of a JWKS document by key id, parsed once (the SDK parses on every request)."""
    keys: Dict[str, SigningKey] = {}
    for item in document["keys"]:
        if isinstance(item, dict) and item.get("kty") == "RSA" and isinstance(item.get("kid"), str):
            endorsements = item.get("endorsements") or []
            keys[item["kid"]] = SigningKey(RSAAlgorithm.from_jwk(json.dumps(item)), endorsements)
    return keys


class SigningKeys:
    """The signing keys published at one OpenID metadata URL, in the SDK's metadata
    cache in place of its ``_OpenIdMetadata`` (same ``get``, bounded fetches)."""

    def __init__(
        self,
        url: str,
        fetch_timeout: float = KEY_FETCH_TIMEOUT_SECONDS,
        retry_after_failure: float = RETRY_AFTER_FAILURE_SECONDS,
        max_waiting: int = MAX_WAITING_FOR_KEYS,
    ) -> None:
        self.url = url
        self._fetch_timeout = fetch_timeout
        self._retry_after_failure = retry_after_failure
        self._max_waiting = max_waiting
        self._keys: Dict[str, SigningKey] = {}
        self._fetched_at: Optional[float] = None
        self._failed_at: Optional[float] = None
        self._failure = ""
        self._fetch: Optional["asyncio.Task[None]"] = None
        self._waiting = 0

    async def get(self, key_id: Optional[str]) -> SigningKey:
        """The key a token names, fetching the keys first when the SDK would."""
        if self._age() > KEYS_MAX_AGE_SECONDS:
            if self._keys:
                # A day old: still good while new ones are fetched (or cannot be).
                with contextlib.suppress(KeysUnavailable):
                    self._start_fetch()
            else:
                await self._wait_for_fetch()
        key = self._keys.get(key_id) if key_id else None
        if key is None and key_id and self._age() > UNKNOWN_KEY_REFETCH_SECONDS:
            await self._wait_for_fetch()
            key = self._keys.get(key_id)
        if key is None:
            raise PermissionError(f"signing key {key_id!r} is not published at {self.url}")
        return key

    def _age(self) -> float:
        return float("inf") if self._fetched_at is None else time.monotonic() - self._fetched_at

    def _start_fetch(self) -> "asyncio.Task[None]":
        """The fetch in progress, or a new one unless the last failed moments ago."""
        if self._failed_at is not None:
            since = time.monotonic() - self._failed_at
            if since < self._retry_after_failure:
                raise KeysUnavailable(
                    f"fetching {self.url} failed {since:.0f} s ago: {self._failure}"
                )
        loop = asyncio.get_running_loop()
        if self._fetch is None or self._fetch.done() or self._fetch.get_loop() is not loop:
            self._fetch = loop.create_task(self._download())
            # Its outcome is read here even when no request waits for it.
            self._fetch.add_done_callback(lambda task: task.cancelled() or task.exception())
        return self._fetch

    async def _wait_for_fetch(self) -> None:
        """Wait for the one fetch every request needing the keys shares."""
        fetch = self._start_fetch()
        if self._waiting >= self._max_waiting:
            raise KeysBusy(f"{self._waiting} requests already wait for the keys at {self.url}")
        self._waiting += 1
        try:
            await asyncio.shield(fetch)
        finally:
            self._waiting -= 1

    async def _download(self) -> None:
        try:
            async with asyncio.timeout(self._fetch_timeout):
                # trust_env: HTTPS_PROXY and NO_PROXY apply, as they do to the SDK's requests.
                async with aiohttp.ClientSession(trust_env=True) as session:
                    metadata = await _get_json(session, self.url)
                    keys = _parse_keys(await _get_json(session, metadata["jwks_uri"]))
        except Exception as error:
            self._failed_at = time.monotonic()
            reason = "no answer in time" if isinstance(error, TimeoutError) else repr(error)
            self._failure = reason
            logger.warning("signing keys from %s unavailable: %s", self.url, reason)
            raise KeysUnavailable(f"fetching {self.url} failed: {reason}") from None
        self._keys, self._fetched_at, self._failed_at = keys, time.monotonic(), None


def use_openid_metadata(channel_metadata_url: str = "") -> None:
    """Have the SDK check tokens with ``SigningKeys`` for every metadata URL it may use.

    ``channel_metadata_url`` replaces the Bot Framework's metadata for channel tokens,
    as the SDK's ``BotOpenIdMetadata`` setting does (it sets
    ``ChannelValidation.open_id_metadata_endpoint``). Calling it again keeps what is in place."""
    if channel_metadata_url:
        ChannelValidation.open_id_metadata_endpoint = channel_metadata_url
    urls = (
        ChannelValidation.open_id_metadata_endpoint
        or AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
        AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
        GovernmentConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
        GovernmentConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
    )
    for url in urls:
        if not isinstance(JwtTokenExtractor.metadataCache.get(url), SigningKeys):
            JwtTokenExtractor.metadataCache[url] = SigningKeys(url)


async def authenticate(
    auth: BotFrameworkAuthentication, activity: Activity, auth_header: str
) -> AuthenticateRequestResult:
    """The SDK's authentication of one request, within ``AUTH_TIMEOUT_SECONDS``.

    It runs on the event loop: with ``SigningKeys`` in place nothing in it blocks."""
    use_openid_metadata()
    async with asyncio.timeout(AUTH_TIMEOUT_SECONDS):
        return await auth.authenticate_request(activity, auth_header)
