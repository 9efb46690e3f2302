"""The reply calls a connector makes (send, reply, update, delete) over the one pooled
HTTP client, in the SDK's JSON and with the bot's token, retried as msrest
retries but within a time budget per reply, so that a channel that never answers
cannot hold a turn for long."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import quote, urljoin, urlsplit

from botbuilder.schema import Activity, ResourceResponse
from botframework.connector.aio import ConnectorClient

from ...activity_json import activity_to_json
from ...outbound import HttpClient, NoAnswer, NotSent
from .bot_token import BotToken, SignInBusy

# msrest's ClientRetryPolicy: 3 retries on connection errors and 5xx except 501/505,
# waits as urllib3 computes them for backoff_factor 0.8; here only those that fit the budget.
_RETRY_WAITS = (0.0, 1.6, 3.2)
_NO_RETRY_STATUSES = (501, 505)
#: How long one attempt to send a reply may take (msrest's is 100 s).
ATTEMPT_TIMEOUT_SECONDS = 5.0
#: How long sending one reply may take, every attempt and wait included.
SEND_BUDGET_SECONDS = 6.0
# An attempt with less time than this left is not worth starting.
_MIN_ATTEMPT_SECONDS = 0.1


@dataclass(frozen=True)
class SendLimits:
    """How long sending one reply may take: each attempt, and all of them with their waits."""

    attempt_seconds: float = ATTEMPT_TIMEOUT_SECONDS
    budget_seconds: float = SEND_BUDGET_SECONDS


class ChannelRequestError(Exception):
    """The channel refused or never answered a request the bot made to it."""

    def __init__(self, method: str, url: str, status: Optional[int], detail: str) -> None:
        answer = f"answered {status}" if status is not None else "could not be reached"
        super().__init__(f"{method} {url}: the channel {answer}: {detail}")
        self.method = method
        self.url = url
        self.status = status
        #: What went wrong, without the conversation's path or a refusal's body: for /healthz.
        self.summary = _trouble(url, answer if status is not None else detail)


def _trouble(url: str, what: str) -> str:
    """A reply's failure as /healthz shows it: the channel's host and port, never the
    conversation or any credentials in the URL."""
    return f"replies to {urlsplit(url).netloc.rpartition('@')[2]}: {what}"


@dataclass
class ReplyHealth:
    """How this process's replies are going, for /healthz: a channel or sign-in service
    that fails them shows there, not only in the log. The last failure stands until a
    reply goes through again."""

    problem: Optional[str] = None
    since: float = 0.0

    def went_through(self) -> None:
        self.problem = None

    def failed(self, problem: str) -> None:
        if self.problem is None:
            self.since = time.monotonic()
        self.problem = problem


class PooledConversations:
    """``ConnectorClient.conversations`` with the reply calls sent over the pooled
    client; any other operation, or a call with msrest options, is the SDK's."""

    def __init__(
        self,
        sdk_client: ConnectorClient,
        client: Callable[[], HttpClient],
        token: Optional[BotToken],
        limits: SendLimits,
        health: ReplyHealth,
    ) -> None:
        self._sdk = sdk_client.conversations
        self._base_url = sdk_client.config.base_url.rstrip("/") + "/"
        self._conversations_url = urljoin(self._base_url, "v3/conversations/")
        self._user_agent = sdk_client.config.user_agent
        self._client = client
        self._token = token
        self._limits = limits
        self._health = health

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sdk, name)

    async def send_to_conversation(
        self, conversation_id: str, activity: Activity, **options: Any
    ) -> Optional[ResourceResponse]:
        if options:
            return await self._sdk.send_to_conversation(conversation_id, activity, **options)
        return await self._send("POST", self._path(conversation_id), activity)

    async def reply_to_activity(
        self, conversation_id: str, activity_id: str, activity: Activity, **options: Any
    ) -> Optional[ResourceResponse]:
        if options:
            return await self._sdk.reply_to_activity(
                conversation_id, activity_id, activity, **options
            )
        return await self._send(
            "POST",
            self._path(conversation_id, activity_id),
            activity,
            {"x-ms-conversation-id": conversation_id},
        )

    async def update_activity(
        self, conversation_id: str, activity_id: str, activity: Activity, **options: Any
    ) -> Optional[ResourceResponse]:
        if options:
            return await self._sdk.update_activity(
                conversation_id, activity_id, activity, **options
            )
        return await self._send("PUT", self._path(conversation_id, activity_id), activity)

    async def delete_activity(self, conversation_id: str, activity_id: str, **options: Any) -> None:
        if options:
            return await self._sdk.delete_activity(conversation_id, activity_id, **options)
        await self._send("DELETE", self._path(conversation_id, activity_id), None)
        return None

    def _path(self, conversation_id: str, activity_id: Optional[str] = None) -> str:
        # The SDK quotes path parts with nothing safe, then joins them to the service URL;
        # the join is needed only for the parts quoting leaves as "." or "..".
        parts = [quote(str(conversation_id), safe=""), "activities"]
        if activity_id is not None:
            parts.append(quote(str(activity_id), safe=""))
        path = "/".join(parts)
        if parts[0] in (".", "..") or parts[-1] in (".", ".."):
            return urljoin(self._base_url, f"v3/conversations/{path}")
        return f"{self._conversations_url}{path}"

    async def _send(
        self,
        method: str,
        url: str,
        activity: Optional[Activity],
        extra_headers: Optional[Dict[str, str]] = None,
    ) -> Optional[ResourceResponse]:
        """One reply call, every attempt within the budget; ChannelRequestError if it fails."""
        headers, body = self._request(activity, extra_headers)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._limits.budget_seconds
        waiting_for = "the bot's token"
        try:
            if self._token is not None:
                headers["Authorization"] = await self._authorization(method, url, deadline)
            waiting_for = "the channel"
            sent = await self._attempts(method, url, body, headers, deadline)
        except ChannelRequestError as error:
            self._health.failed(error.summary)
            raise
        except asyncio.CancelledError:  # the turn's deadline, most often: it came first
            cut_off = f"cut off after {loop.time() - started:.1f} s waiting for {waiting_for}"
            self._health.failed(_trouble(url, cut_off))
            raise
        self._health.went_through()
        return sent

    def _request(
        self, activity: Optional[Activity], extra_headers: Optional[Dict[str, str]]
    ) -> Tuple[Dict[str, str], Optional[bytes]]:
        """The headers (but the token) and body of a reply call."""
        headers = {"Accept": "application/json", "User-Agent": self._user_agent}
        body: Optional[bytes] = None
        if activity is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
            # The same JSON as the SDK's serializer, a fraction of its cost.
            body = json.dumps(activity_to_json(activity)).encode("utf-8")
        if extra_headers:
            headers.update(extra_headers)
        return headers, body

    async def _authorization(self, method: str, url: str, deadline: float) -> str:
        """The bot's token header, had before the deadline."""
        try:
            async with asyncio.timeout_at(deadline):
                return await self._token.header()
        except TimeoutError:
            detail = f"no token for the bot within {self._limits.budget_seconds:g} s"
            raise ChannelRequestError(method, url, None, detail) from None
        except SignInBusy as busy:
            raise ChannelRequestError(method, url, None, f"no token for the bot: {busy}") from None

    async def _attempts(
        self,
        method: str,
        url: str,
        body: Optional[bytes],
        headers: Dict[str, str],
        deadline: float,
    ) -> Optional[ResourceResponse]:
        """Send until the channel accepts, refuses for good, or the budget is spent."""
        loop = asyncio.get_running_loop()
        for wait in _RETRY_WAITS + (None,):
            remaining = max(deadline - loop.time(), _MIN_ATTEMPT_SECONDS)
            attempt = min(self._limits.attempt_seconds, remaining)
            try:
                response = await self._client().request(method, url, headers, body, timeout=attempt)
            except TimeoutError:
                failure: Tuple[Optional[int], str] = (None, f"no answer within {attempt:g} s")
            except (NotSent, NoAnswer) as error:
                failure = (None, str(error))
            except ValueError as error:  # not a URL a request can go to: no attempt would do
                detail = f"not a URL replies can go to ({error})"
                raise ChannelRequestError(method, url, None, detail) from None
            else:
                if response.status in (200, 201, 202):
                    return _resource_response(method, url, response.status, response.body)
                failure = (response.status, response.body[:300].decode("utf-8", "replace") or "no body")
                if response.status < 500 or response.status in _NO_RETRY_STATUSES:
                    raise ChannelRequestError(method, url, *failure)
            # Retry only when the wait leaves time for another attempt.
            if wait is None or deadline - loop.time() - wait < _MIN_ATTEMPT_SECONDS:
                raise ChannelRequestError(method, url, *failure)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")


def _resource_response(
    method: str, url: str, status: int, content: bytes
) -> Optional[ResourceResponse]:
    """What the SDK's operation returns: the ResourceResponse, or None without a body."""
    if not content.strip():
        return None
    try:
        data = json.loads(content)
    except ValueError as error:
        raise ChannelRequestError(method, url, status, f"the body is not JSON ({error})") from error
    # ResourceResponse has one field; msrest's generic deserializer costs more than a reply.
    return ResourceResponse(id=data.get("id")) if isinstance(data, dict) else None
