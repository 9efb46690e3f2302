"""POST /api/messages: check the request, authenticate it, hand the activity to the adapter.

Every bad request gets a 4xx with a one-line reason before any turn runs
(web/activity_validation.py); a request without a valid token, when the bot
has an app id, gets a 401 (web/authentication.py).
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from aiohttp import web
from botbuilder.core import Bot, serializer_helper
from botbuilder.core.cloud_adapter_base import CloudAdapterBase
from botbuilder.schema import AdaptiveCardInvokeResponse
from msrest.exceptions import ClientRequestError, HttpOperationError

from state_engine.hosting.connectors import ChannelRequestError

from .validation import BadRequest, parse_activity, parse_json
from .authentication import authenticate

logger = logging.getLogger(__name__)


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


async def read_body(request: web.Request, limit: int) -> Optional[bytes]:
    """The whole body, or None once it passes ``limit`` bytes (chunked or not,
    after any Content-Encoding is undone, so a small gzip bomb is stopped too)."""
    body = bytearray()
    while chunk := await request.content.readany():
        body.extend(chunk)
        if len(body) > limit:
            return None
    return bytes(body)


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


def make_messages_handler(adapter: CloudAdapterBase, bot: Bot, max_request_bytes: int):
    async def messages(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _error(415, "Content-Type must be application/json")
        if request.content_length is not None and request.content_length > max_request_bytes:
            return _error(413, f"the body is over {max_request_bytes} bytes")
        try:
            raw = await read_body(request, max_request_bytes)
        except (ConnectionError, web.HTTPException):
            return _error(400, "the body could not be read")
        if raw is None:
            return _error(413, f"the body is over {max_request_bytes} bytes")
        try:
            activity = parse_activity(parse_json(raw))
        except BadRequest as problem:
            return _error(400, str(problem))

        try:
            auth_result = await authenticate(
                adapter.bot_framework_authentication,
                activity,
                request.headers.get("Authorization", ""),
            )
        except PermissionError as error:
            logger.info("request refused: %s", error)
            return _error(401, "a valid Bot Framework token is required")
        except Exception as error:  # the SDK raises bare Exception, jwt and requests errors
            # Whatever went wrong, this request is not authenticated: no turn runs.
            logger.warning("token could not be validated: %s: %s", type(error).__name__, error)
            return _error(401, "a valid Bot Framework token is required")

        try:
            invoke_response = await adapter.process_activity(auth_result, activity, bot.on_turn)
        except (ChannelRequestError, ClientRequestError, HttpOperationError) as error:
            # Even on_turn_error could not reach the channel: the fault is upstream.
            logger.warning("replies not delivered to %s: %s", activity.service_url, error)
            return _error(502, "the bot's replies could not be delivered to the channel")
        if invoke_response is None:
            return web.Response(status=201)
        response_body = invoke_body(invoke_response.body)
        if response_body is None:
            return web.Response(status=invoke_response.status)
        return web.json_response(response_body, status=invoke_response.status)

    return messages
