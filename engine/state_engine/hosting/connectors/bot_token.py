"""The bearer token pooled replies carry when the bot has an app id, from the SDK's own
credentials, so that the pooled sender authenticates exactly as the SDK's would."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from botframework.connector.auth import AppCredentials, AuthenticationConstants

# A token MSAL hands out is valid for at least 5 more minutes; ask again after 1.
_TOKEN_REUSE_SECONDS = 60.0
#: A fetch running this long no longer keeps the next one from starting (MSAL's calls to
#: the sign-in service have no timeout, so a hung one may never end).
STUCK_SECONDS = 30.0
#: The threads MSAL's synchronous calls run on: a hung sign-in service holds these at
#: most, never the event loop's default executor, which also resolves host names.
_SIGN_IN_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sign-in")


class BotToken:
    """The bot's bearer token from the SDK's credentials, fetched off the event loop
    (MSAL's ``get_access_token`` is synchronous and may call the sign-in service). All
    turns waiting for a token share one fetch; a turn that stops waiting leaves it running."""

    def __init__(self, credentials: AppCredentials) -> None:
        self._credentials = credentials
        self._value: Optional[str] = None
        self._fetched_at = 0.0
        self._fetching: Optional["asyncio.Future[str]"] = None
        self._fetch_started = 0.0

    @staticmethod
    def needed(credentials: AppCredentials) -> bool:
        """The SDK's rule (``AppCredentials._should_set_token``): only with an app id."""
        app_id = credentials.microsoft_app_id
        return bool(app_id) and app_id != AuthenticationConstants.ANONYMOUS_SKILL_APP_ID

    async def header(self) -> str:
        now = time.monotonic()
        if self._value is None or now - self._fetched_at > _TOKEN_REUSE_SECONDS:
            if self._fetching is None or now - self._fetch_started > STUCK_SECONDS:
                loop = asyncio.get_running_loop()
                self._fetching = loop.run_in_executor(_SIGN_IN_THREADS, self._credentials.get_access_token)
                self._fetch_started = now
                self._fetching.add_done_callback(self._fetched)
            return f"Bearer {await asyncio.shield(self._fetching)}"
        return f"Bearer {self._value}"

    def _fetched(self, fetch: "asyncio.Future[str]") -> None:
        """Keep what a fetch brought (even one given up on as stuck), and let the next start."""
        if fetch is self._fetching:
            self._fetching = None
        if not fetch.cancelled() and fetch.exception() is None:
            self._value = fetch.result()
            self._fetched_at = time.monotonic()
