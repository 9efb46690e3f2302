"""A local stand-in for the Bot Framework's token issuer: OpenID metadata and signing keys
on 127.0.0.1, and channel tokens signed with them. A bot whose ``BotOpenIdMetadata``
points here accepts them as it accepts a channel's (issuer, signature, expiry, audience,
``serviceurl``), so tests and benchmarks run authenticated turns without the internet.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any, Dict, Optional, Sequence

import jwt
from aiohttp import web
from botframework.connector.auth import AuthenticationConstants
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from .live_bot import ChannelServer

METADATA_PATH = "/v1/.well-known/openidconfiguration"
KEYS_PATH = "/v1/.well-known/keys"


class OpenIdIssuer(ChannelServer):
    """Serves ``METADATA_PATH`` (pointing at ``KEYS_PATH``) and the JWKS of one RSA key,
    in a thread of its own; ``fetches`` counts the requests for either."""

    def __init__(self, endorsements: Optional[Sequence[str]] = None) -> None:
        super().__init__()
        self.metadata_url = f"{self.url}{METADATA_PATH}"
        self.key_id = f"local-{uuid.uuid4().hex[:12]}"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._endorsements = list(endorsements) if endorsements is not None else None
        self._fetches = 0
        self._fetch_lock = threading.Lock()

    @property
    def fetches(self) -> int:
        with self._fetch_lock:
            return self._fetches

    def _make_runner(self) -> web.BaseRunner:
        app = web.Application()
        app.router.add_get(METADATA_PATH, self._metadata)
        app.router.add_get(KEYS_PATH, self._keys)
        return web.AppRunner(app, access_log=None)

    def _count(self) -> None:
        with self._fetch_lock:
            self._fetches += 1

    async def _metadata(self, request: web.Request) -> web.Response:
        self._count()
        return web.json_response(
            {
                "issuer": AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
                "jwks_uri": f"{self.url}{KEYS_PATH}",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def _keys(self, request: web.Request) -> web.Response:
        self._count()
        key: Dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self._key.public_key()))
        key.update(kid=self.key_id, use="sig", alg="RS256")
        if self._endorsements is not None:
            key["endorsements"] = self._endorsements
        return web.json_response({"keys": [key]})

    def channel_token(
        self,
        app_id: str,
        service_url: str,
        lifetime_seconds: float = 3600,
        key: Optional[rsa.RSAPrivateKey] = None,
        key_id: Optional[str] = None,
        **claims: Any,
    ) -> str:
        """A token as a channel sends it to the bot ``app_id`` for activities from
        ``service_url``; ``claims`` add or replace claims, ``key`` signs in place of
        the published key and ``key_id`` names another key than the published one."""
        now = int(time.time())
        payload = {
            "iss": AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER,
            "aud": app_id,
            "serviceurl": service_url,
            "nbf": now - 5,
            "iat": now - 5,
            "exp": now + int(lifetime_seconds),
            **claims,
        }
        return jwt.encode(
            payload, key or self._key, algorithm="RS256", headers={"kid": key_id or self.key_id}
        )

    def authorization(self, app_id: str, service_url: str, **claims: Any) -> str:
        """The Authorization header value carrying ``channel_token``."""
        return f"Bearer {self.channel_token(app_id, service_url, **claims)}"
