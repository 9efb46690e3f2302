"""The bearer token pooled replies carry when the bot has an app id, from the SDK's own
credentials, so that the pooled sender authenticates exactly as the SDK's would."""

from __future__ import annotations

import asyncio
import time
from typing import Optional

from botframework.connector.auth import AppCredentials, AuthenticationConstants

# A token MSAL hands out is valid for at least 5 more minutes; ask again after 1.
_TOKEN_REUSE_SECONDS = 60.0


class BotToken:
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
