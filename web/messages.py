"""POST /api/messages: check the request, then hand the activity to the adapter.

The SDK's handler answers most bad requests with a 500 and a stack trace (or
tries to reach the public Bot Framework service for an activity without a
``serviceUrl``). Here every bad request gets a 4xx with a one-line reason.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Optional
from urllib.parse import urlparse

from aiohttp import web
from botbuilder.core import Bot, serializer_helper
from botbuilder.core.cloud_adapter_base import CloudAdapterBase
from botbuilder.schema import Activity
from msrest.exceptions import DeserializationError

logger = logging.getLogger(__name__)


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def activity_problem(body: Any) -> Optional[str]:
    """Why this JSON is not an activity the bot can answer, or None if it is."""
    if not isinstance(body, dict):
        return "the body must be a JSON object (an activity)"
    if not isinstance(body.get("type"), str) or not body["type"].strip():
        return "the activity has no 'type'"
    if not isinstance(body.get("channelId"), str) or not body["channelId"].strip():
        return "the activity has no 'channelId'"
    for field in ("conversation", "from"):
        value = body.get(field)
        if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
            return f"the activity has no '{field}.id'"
    service_url = body.get("serviceUrl")
    if not isinstance(service_url, str):
        return "the activity has no 'serviceUrl' to send replies to"
    parsed = urlparse(service_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return "the activity's 'serviceUrl' is not an http(s) URL"
    return None


def make_messages_handler(adapter: CloudAdapterBase, bot: Bot, max_request_bytes: int):
    async def messages(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return _error(415, "Content-Type must be application/json")
        if request.content_length is not None and request.content_length > max_request_bytes:
            return _error(413, f"the body is over {max_request_bytes} bytes")
        try:
            raw = await request.content.read(max_request_bytes + 1)
        except (ConnectionError, web.HTTPException):
            return _error(400, "the body could not be read")
        if len(raw) > max_request_bytes:
            return _error(413, f"the body is over {max_request_bytes} bytes")
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, ValueError):
            return _error(400, "the body is not valid JSON")
        problem = activity_problem(body)
        if problem:
            return _error(400, problem)
        try:
            activity = Activity().deserialize(body)
        except (DeserializationError, TypeError, ValueError, AttributeError) as error:
            return _error(400, f"the activity could not be read: {type(error).__name__}")

        auth_header = request.headers.get("Authorization", "")
        try:
            invoke_response = await adapter.process_activity(auth_header, activity, bot.on_turn)
        except PermissionError:
            return _error(401, "a valid Bot Framework token is required")
        if invoke_response is None:
            return web.Response(status=201)
        # The SDK hands expectReplies back already serialized and then serializes it
        # again (a 500 in 4.17.1): serialize a model once, pass plain data through.
        response_body = invoke_response.body
        if response_body is not None and not isinstance(response_body, (dict, list)):
            response_body = serializer_helper(response_body)
        if response_body is None:
            return web.Response(status=invoke_response.status)
        return web.json_response(response_body, status=invoke_response.status)

    return messages
