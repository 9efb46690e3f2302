"""POST /api/messages: check the request, authenticate it, hand the activity to the adapter.

A bad request gets a 4xx with a one-line reason before any turn runs: too large,
undecodable or too slow a body, an invalid activity (validation.py), a missing or
invalid token when the bot has an app id (authentication.py; one accepted is reused until it expires).
Past ``max_turns`` turns running at once (an eighth of them for one conversation), a request
is answered 503 at once (``TurnSlots``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.http_exceptions import HttpProcessingError
from botbuilder.core import Bot, serializer_helper
from botbuilder.core.cloud_adapter_base import CloudAdapterBase
from botbuilder.schema import AdaptiveCardInvokeResponse
from msrest.exceptions import ClientRequestError, HttpOperationError

from state_engine.hosting.connectors import ChannelRequestError

from .validation import BadRequest, parse_activity, parse_json
from .authentication import KeysBusy, authenticate
from .checked_tokens import CheckedTokens

logger = logging.getLogger(__name__)

#: A body that has not arrived in full this long after its headers is refused (408):
#: a client trickling it would otherwise hold a connection and a handler for good.
BODY_TIMEOUT_SECONDS = 10.0
#: Turns one process runs at once, unless told otherwise (``TurnSlots``).
MAX_TURNS = 256


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _try_again(reason: str) -> web.Response:
    """503 with Retry-After: nothing is wrong with the request, the bot cannot take it now."""
    response = _error(503, reason)
    response.headers["Retry-After"] = "1"
    return response


class BodyRefused(Exception):
    """The body cannot be read: the answer's status and one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_body(
    request: web.Request, limit: int, timeout: float = BODY_TIMEOUT_SECONDS
) -> bytes:
    """The whole body, refused once it passes ``limit`` bytes (chunked or not, after
    any Content-Encoding is undone, so a small gzip bomb is stopped too), when it
    cannot be decoded, or when it has not all arrived within ``timeout`` seconds."""
    body = bytearray()
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.readany():
                body.extend(chunk)
                if len(body) > limit:
                    raise BodyRefused(413, f"the body is over {limit} bytes")
    except TimeoutError:
        raise BodyRefused(408, f"the body did not arrive within {timeout:g} s") from None
    except (web.RequestPayloadError, HttpProcessingError) as error:
        # aiohttp undoes gzip/deflate and chunking while reading: a broken one ends here.
        cause = error.__cause__ or error
        message = getattr(cause, "message", "") or str(cause)
        raise BodyRefused(400, f"the body could not be decoded: {message.strip()}") from None
    except (ConnectionError, web.HTTPException):
        raise BodyRefused(400, "the body could not be read") from None
    return bytes(body)


@dataclass
class TurnSlots:
    """The turns this process runs at once, up to ``limit``, and at most an eighth of them
    for one conversation. A store or channel that hangs holds each turn until its deadline;
    without a limit, turns arriving meanwhile would pile up (memory, and CPU that the running
    turns need to end in time), and one conversation's turns, which wait for each other,
    could take every slot. A request past either limit gets 503 and Retry-After at once."""

    limit: int
    running: int = 0
    by_conversation: Dict[Tuple[str, str], int] = field(default_factory=dict)
    #: Whether the refusals since the process was last below its limit have been logged.
    told: bool = False

    @property
    def per_conversation(self) -> int:
        return max(1, self.limit // 8)

    def take(self, conversation: Tuple[str, str]) -> Optional[str]:
        """Take a slot for a turn of ``conversation``; if there is none, say why."""
        if self.running >= self.limit:
            if not self.told:
                logger.warning("%d turns running, the limit: requests get 503 until one ends", self.running)
                self.told = True
            return f"the bot is running {self.limit} turns already"
        held = self.by_conversation.get(conversation, 0)
        if held >= self.per_conversation:
            return f"this conversation has {held} turns running or waiting already"
        self.running += 1
        self.by_conversation[conversation] = held + 1
        self.told = False
        return None

    def give_back(self, conversation: Tuple[str, str]) -> None:
        self.running -= 1
        held = self.by_conversation.pop(conversation) - 1
        if held:
            self.by_conversation[conversation] = held


def invoke_body(body: Any) -> Any:
    """The JSON of an invoke response body, working around two SDK 4.17.1 bugs (each a 500):

    * expectReplies comes back already serialized and the SDK serializes it again:
      plain data passes through, a model is serialized once;
    * an Adaptive Card invoke error carries ``Exception(code, message)`` as its
      value, which cannot be serialized: it becomes the ``{code, message}`` error
      object the Bot Framework protocol (and the C# SDK) sends."""
    if body is None or isinstance(body, (dict, list)):
        return body
    if isinstance(body, AdaptiveCardInvokeResponse) and isinstance(body.value, Exception):
        code, message = (list(body.value.args) + ["", ""])[:2]
        return {
            "statusCode": int(body.status_code),
            "type": body.type,
            "value": {"code": str(code), "message": str(message)},
        }
    return serializer_helper(body)


async def _refuse_and_close(request: web.Request, refused: BodyRefused) -> web.StreamResponse:
    """Answer, then close the connection: what is left of a body that cannot be decoded
    or is too slow to arrive is not read (aiohttp would otherwise drain it for 10 s)."""
    response = _error(refused.status, refused.reason)
    response.force_close()
    with contextlib.suppress(ConnectionError):  # the client has gone: nobody to answer
        await response.prepare(request)
        await response.write_eof()
    request.protocol.force_close()
    return response


def make_messages_handler(
    adapter: CloudAdapterBase,
    bot: Bot,
    max_request_bytes: int,
    max_turns: int = MAX_TURNS,
    body_timeout_seconds: float = BODY_TIMEOUT_SECONDS,
    checked_tokens: Optional[CheckedTokens] = None,
) -> Handler:
    """POST /api/messages: the request checked and bounded, then the adapter's turn on
    ``bot`` in one of ``max_turns`` slots; every refusal is a clear 4xx or 503."""
    checked_tokens = checked_tokens if checked_tokens is not None else CheckedTokens()
    slots = TurnSlots(max_turns)

    async def messages(request: web.Request) -> web.StreamResponse:
        if request.content_type != "application/json":
            return _error(415, "Content-Type must be application/json")
        if request.content_length is not None and request.content_length > max_request_bytes:
            return _error(413, f"the body is over {max_request_bytes} bytes")
        try:
            raw = await read_body(request, max_request_bytes, body_timeout_seconds)
        except BodyRefused as refused:
            if refused.status == 413:
                return _error(refused.status, refused.reason)
            return await _refuse_and_close(request, refused)
        try:
            activity = parse_activity(parse_json(raw))
        except BadRequest as problem:
            return _error(400, str(problem))

        header = request.headers.get("Authorization", "")
        try:
            auth_result = checked_tokens.get(header, activity)
            if auth_result is None:
                auth_result = await authenticate(adapter.bot_framework_authentication, activity, header)
                checked_tokens.remember(header, activity, auth_result)
        except PermissionError as error:
            logger.info("request refused: %s", error)
            return _error(401, "a valid Bot Framework token is required")
        except KeysBusy as error:
            logger.warning("request refused: %s", error)
            return _try_again("too many requests are waiting to be authenticated")
        except Exception as error:  # the SDK's bare Exception, jwt errors, KeysUnavailable
            # Whatever went wrong, this request is not authenticated: no turn runs.
            logger.warning("token could not be validated: %s: %s", type(error).__name__, error)
            return _error(401, "a valid Bot Framework token is required")

        conversation = (activity.channel_id, activity.conversation.id)
        refused = slots.take(conversation)
        if refused is not None:
            return _try_again(f"{refused}; send it again shortly")
        try:
            invoke_response = await adapter.process_activity(auth_result, activity, bot.on_turn)
        except (ChannelRequestError, ClientRequestError, HttpOperationError) as error:
            # Even on_turn_error could not reach the channel: the fault is upstream.
            logger.warning("replies not delivered to %s: %s", activity.service_url, error)
            return _error(502, "the bot's replies could not be delivered to the channel")
        finally:
            slots.give_back(conversation)
        if invoke_response is None:
            return web.Response(status=201)
        response_body = invoke_body(invoke_response.body)
        if response_body is None:
            return web.Response(status=invoke_response.status)
        return web.json_response(response_body, status=invoke_response.status)

    return messages
