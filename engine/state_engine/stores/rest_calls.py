"""Single REST calls to a cloud store over kept-alive connections, sent again only when safe.

The Azure SDKs' request objects, retry loops and pipeline policies cost more than a point
read or write itself (``docs/performance.md``). The Cosmos DB, Blob and Table backends send
those calls here instead; setup and queries stay on the SDKs.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from typing import Callable, Dict, Optional

from azure.core.exceptions import AzureError
from yarl import URL

from ..outbound import HttpClient, NoAnswer, NotSent, Response

#: Longest wait for a call the service did not carry out, whatever it asks for.
MAX_RETRY_WAIT = 1.0
_DEFAULT_RETRY_WAIT = 0.1
_NOT_DONE_RETRIES = 2
#: What a call that never got an answer raises: the SDKs' calls, or these (``NotSent``,
#: ``NoAnswer`` and ``TimeoutError`` are all ``OSError``).
UNREACHABLE = (AzureError, OSError)
#: Answers to a write that leave open whether it was carried out: the service (or a
#: gateway before it) gave up waiting, or failed, after the write may have been applied.
#: A throttled or busy answer (429, 449, 503) means it was not, and is not here.
UNSURE_STATUSES = frozenset({408, 500, 502, 504})


def may_have_landed(error: BaseException) -> bool:
    """Whether a write that failed with ``error`` may still have been carried out: it went
    out and no answer came (``NoAnswer``, ``TimeoutError``), or the answer does not say."""
    if isinstance(error, NotSent):
        return False
    if isinstance(error, (NoAnswer, TimeoutError)):
        return True
    return getattr(error, "status_code", None) in UNSURE_STATUSES


def signature(key: bytes, text: str) -> str:
    """HMAC-SHA256 of ``text`` with the account key, base64: how Cosmos DB's master-key
    tokens and Storage's Shared Key both sign a request (each over its own text)."""
    return base64.b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()).decode()


def retry_after(answer: Response) -> float:
    """How long the service asked to be left alone (Cosmos DB's header, else the
    standard one), at most ``MAX_RETRY_WAIT``."""
    for name, scale in (("x-ms-retry-after-ms", 1000), ("Retry-After", 1)):
        value = answer.headers.get(name, "")
        if value.isdigit():
            return min(int(value) / scale, MAX_RETRY_WAIT)
    return _DEFAULT_RETRY_WAIT


class RestSession:
    """Sends calls, each signed afresh by ``headers()`` (their dates change).

    A call that could not be sent (no connection) is sent again once, and one the service
    says it did not carry out (``not_done``, e.g. throttled) up to twice after the wait it
    asks for. A read is also sent again once after a timeout or a server error. A write
    never is then: it may have landed, and sending it again could apply it twice."""

    def __init__(self, request_timeout: float, proxy: Optional[str], not_done: Callable[[Response], bool]) -> None:
        self._timeout = request_timeout
        self._client = HttpClient(proxy)
        self._not_done = not_done

    async def send(
        self, verb: str, url: URL, headers: Callable[[], Dict[str, str]], data: Optional[bytes] = None
    ) -> Response:
        is_read = verb == "GET"
        sent_again = False
        waited = 0
        while True:
            try:
                answer = await self._client.request(verb, url, headers(), data, timeout=self._timeout)
            except NotSent:
                if sent_again:  # no connection: the call never left
                    raise
                sent_again = True
                continue
            except (NoAnswer, TimeoutError):
                if sent_again or not is_read:
                    raise
                sent_again = True
                continue
            if self._not_done(answer):
                if waited == _NOT_DONE_RETRIES:
                    return answer
                waited += 1
                await asyncio.sleep(retry_after(answer))
            elif answer.status >= 500 and is_read and not sent_again:
                sent_again = True
            else:
                return answer

    async def close(self) -> None:
        await self._client.close()
