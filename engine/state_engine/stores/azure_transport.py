"""The HTTP transport of the Azure backends: the environment's proxy read once, not per request.

azure-core's default transport has aiohttp look up the proxy variables and ~/.netrc on a
worker thread for every request (``trust_env``). Here the proxy the environment names for
the store's endpoint is resolved when the store is built and handed to the SDK.
"""

from __future__ import annotations

from typing import Dict, Optional

from aiohttp.helpers import get_env_proxy_for_url
from azure.core.pipeline.transport import AioHttpTransport
from yarl import URL


def env_proxies(endpoint: str) -> Optional[Dict[str, str]]:
    """The SDK's ``proxies`` for ``endpoint`` as the environment says now (None: go direct),
    resolved exactly as aiohttp resolves it with ``trust_env``."""
    url = URL(endpoint)
    try:
        proxy, auth = get_env_proxy_for_url(url)
    except LookupError:
        return None
    if auth is not None:
        proxy = proxy.with_user(auth.login).with_password(auth.password)
    return {url.scheme: str(proxy)}


def transport(connection_timeout: float, read_timeout: float) -> AioHttpTransport:
    """An aiohttp transport that never reads the environment per request (pass
    ``proxies=env_proxies(endpoint)`` to the client beside it)."""
    return AioHttpTransport(
        use_env_settings=False, connection_timeout=connection_timeout, read_timeout=read_timeout
    )


def proxy_url(proxies: Optional[Dict[str, str]]) -> Optional[str]:
    """The one proxy of ``env_proxies``' answer, as the item calls take it."""
    return next(iter(proxies.values())) if proxies else None
