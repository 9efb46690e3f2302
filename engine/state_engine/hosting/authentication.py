"""The SDK's request authentication, made safe to call with anything a client sends."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine, Optional, TypeVar

from botbuilder.schema import Activity
from botframework.connector.auth import BotFrameworkAuthentication
from botframework.connector.auth.authenticate_request_result import AuthenticateRequestResult

T = TypeVar("T")

#: How long a token may take to validate (the SDK may fetch OpenID metadata to do it).
AUTH_TIMEOUT_SECONDS = 10.0


def _on_daemon_thread(work: Coroutine[Any, Any, T]) -> "asyncio.Future[T]":
    """Run a coroutine on its own event loop in a daemon thread: if it blocks for
    good, neither this loop nor the process's shutdown waits for it."""
    loop = asyncio.get_running_loop()
    future: "asyncio.Future[T]" = loop.create_future()

    def settle(result: Any, error: Optional[BaseException]) -> None:
        if future.done():  # the caller gave up waiting
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def run() -> None:
        try:
            result = asyncio.run(work)
        except BaseException as error:  # handed to the awaiting request, not lost
            loop.call_soon_threadsafe(settle, None, error)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name="token-validation", daemon=True).start()
    return future


async def authenticate(
    auth: BotFrameworkAuthentication, activity: Activity, auth_header: str
) -> AuthenticateRequestResult:
    """The SDK's authentication, made safe to call with anything a client sends.

    Validating a token may fetch OpenID metadata with a blocking ``requests.get``
    without a timeout (and again on every request while the fetch fails), which
    would stall every conversation of this process: it runs off the event loop,
    bounded by a timeout. Without a header nothing is fetched."""
    if not auth_header:
        return await auth.authenticate_request(activity, auth_header)
    return await asyncio.wait_for(
        _on_daemon_thread(auth.authenticate_request(activity, auth_header)), AUTH_TIMEOUT_SECONDS
    )
