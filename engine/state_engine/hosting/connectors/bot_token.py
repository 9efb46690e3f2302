"""The bearer token pooled replies carry when the bot has an app id, from the SDK's own
credentials, so that the pooled sender authenticates exactly as the SDK's would."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from typing import Callable, Optional, TypeVar

from botframework.connector.auth import AppCredentials, AuthenticationConstants

T = TypeVar("T")

# A token MSAL hands out is valid for at least 5 more minutes; ask again after 1.
_TOKEN_REUSE_SECONDS = 60.0
#: A fetch running this long no longer keeps the next one from starting (MSAL's calls to
#: the sign-in service have no timeout, so a hung one may never end).
STUCK_SECONDS = 30.0


class SignInBusy(Exception):
    """Every sign-in thread is still waiting for the sign-in service."""


class SignInThreads:
    """Daemon threads for MSAL's synchronous calls, at most ``limit`` at once. A hung
    sign-in service holds these, never the event loop's default executor (which resolves
    host names for every store and channel), and never keeps the process from exiting."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running = 0
        self._lock = threading.Lock()

    def run(self, call: Callable[[], T]) -> "asyncio.Future[T]":
        with self._lock:
            if self._running >= self.limit:
                raise SignInBusy(f"the sign-in service has not answered the last {self.limit} requests")
            self._running += 1
        done: "concurrent.futures.Future[T]" = concurrent.futures.Future()
        done.set_running_or_notify_cancel()  # running from now on: a waiter's cancel cannot undo it

        def work() -> None:
            try:
                value, error = call(), None
            except BaseException as failure:  # handed to the waiting turn, whatever it is
                value, error = None, failure
            with self._lock:  # free before the waiting turn wakes up
                self._running -= 1
            if error is None:
                done.set_result(value)
            else:
                done.set_exception(error)

        threading.Thread(target=work, name="sign-in", daemon=True).start()
        return asyncio.wrap_future(done)


_SIGN_IN_THREADS = SignInThreads(limit=2)


class BotToken:
    """The bot's bearer token from the SDK's credentials, fetched off the event loop
    (MSAL's ``get_access_token`` is synchronous and may call the sign-in service). All
    turns waiting for a token share one fetch; a turn that stops waiting leaves it running."""

    def __init__(self, credentials: AppCredentials, threads: SignInThreads = _SIGN_IN_THREADS) -> None:
        self._credentials = credentials
        self._threads = threads
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
        """``Bearer <token>``; ``SignInBusy`` when no fetch can start."""
        now = time.monotonic()
        if self._value is not None and now - self._fetched_at <= _TOKEN_REUSE_SECONDS:
            return f"Bearer {self._value}"
        if self._fetching is None or now - self._fetch_started > STUCK_SECONDS:
            try:
                self._fetching = self._threads.run(self._credentials.get_access_token)
            except SignInBusy:
                if self._fetching is None:
                    raise
            else:
                self._fetch_started = now
                self._fetching.add_done_callback(self._fetched)
        return f"Bearer {await asyncio.shield(self._fetching)}"

    def _fetched(self, fetch: "asyncio.Future[str]") -> None:
        """Keep what a fetch brought (even one given up on as stuck), and let the next start."""
        if fetch is self._fetching:
            self._fetching = None
        if not fetch.cancelled() and fetch.exception() is None:
            self._value = fetch.result()
            self._fetched_at = time.monotonic()
