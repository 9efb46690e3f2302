"""POST /api/messages: check the request, authenticate it, hand the activity to the adapter.

The SDK's own handler answers most bad requests with a 500 (a garbage token, a
body that is not an activity, a reply the channel refused), accepts JSON that
msrest then bends into strings (``"text": {"a": 1}`` becomes ``"{'a': 1}"``),
and for an activity without ``serviceUrl`` tries the public Bot Framework
service. Here every bad request gets a 4xx with a one-line reason, before any
turn runs and before anything is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import threading
from typing import Any, Coroutine, Dict, List, Optional, Tuple, TypeVar
from urllib.parse import urlparse

import botbuilder.schema as schema
from aiohttp import web
from botbuilder.core import Bot, serializer_helper
from botbuilder.core.cloud_adapter_base import CloudAdapterBase
from botbuilder.schema import Activity, AdaptiveCardInvokeResponse
from botframework.connector.auth import BotFrameworkAuthentication
from botframework.connector.auth.authenticate_request_result import AuthenticateRequestResult
from msrest.exceptions import ClientRequestError, DeserializationError, HttpOperationError
from msrest.serialization import Deserializer, Model

from adapter.connector_factory import ChannelRequestError

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: Deeper JSON than any channel sends; recursive code after us (msrest, the codec) stays safe.
MAX_NESTING = 64
#: Ids become storage keys, URL paths and the SDK's x-ms-conversation-id header.
MAX_ID_LENGTH = 1024
_ID_FIELDS = (
    ("id",),
    ("channelId",),
    ("replyToId",),
    ("conversation", "id"),
    ("from", "id"),
    ("recipient", "id"),
)
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")
#: How long a token may take to validate (the SDK may fetch OpenID metadata to do it).
AUTH_TIMEOUT_SECONDS = 10.0

# "\ud800" is valid JSON but not Unicode text: it could be neither stored nor logged as UTF-8.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_MODELS: Dict[str, type] = {
    name: cls
    for name, cls in vars(schema).items()
    if isinstance(cls, type) and issubclass(cls, Model)
}
_JSON_TYPES: Dict[str, Tuple[type, ...]] = {
    "str": (str,),
    "bool": (bool,),
    "int": (int,),
    "iso-8601": (str,),
}


class BadRequest(Exception):
    """The body is not an activity this endpoint accepts; the message says why."""


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number too large for a float")
    return value


def parse_json(raw: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no overflowing floats, no lone surrogates, bounded depth."""
    try:
        body = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadRequest(f"the JSON is nested deeper than {MAX_NESTING} levels") from None
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the body is not valid JSON") from None
    stack: List[Tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            raise BadRequest(f"the JSON is nested deeper than {MAX_NESTING} levels")
        if isinstance(value, dict):
            stack.extend((key, depth) for key in value)
            stack.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and _LONE_SURROGATE.search(value):
            raise BadRequest("the JSON holds a lone UTF-16 surrogate, which is not text")
    return body


def _check_wire_type(value: Any, type_name: str, path: str) -> None:
    """Check JSON against the schema's msrest type, which msrest itself would coerce."""
    if type_name.startswith("[") or type_name.startswith("{"):
        container = list if type_name.startswith("[") else dict
        if not isinstance(value, container):
            kind = "array" if container is list else "object"
            raise BadRequest(f"'{path}' must be a JSON {kind}")
        items = enumerate(value) if container is list else value.items()
        for index, item in items:
            if item is None:
                raise BadRequest(f"'{path}[{index}]' must not be null")
            _check_wire_type(item, type_name[1:-1], f"{path}[{index}]")
    elif type_name in _MODELS:
        if not isinstance(value, dict):
            raise BadRequest(f"'{path}' must be a JSON object")
        for attribute in _MODELS[type_name]._attribute_map.values():
            field = value.get(attribute["key"])
            if field is not None:
                _check_wire_type(field, attribute["type"], f"{path}.{attribute['key']}")
    elif type_name in _JSON_TYPES:
        expected = _JSON_TYPES[type_name]
        if not isinstance(value, expected) or (type_name == "int" and isinstance(value, bool)):
            kind = "string" if expected == (str,) else type_name
            raise BadRequest(f"'{path}' must be a JSON {kind}")
        if type_name == "iso-8601":
            try:
                Deserializer.deserialize_iso(value)
            except DeserializationError:
                raise BadRequest(f"'{path}' is not an ISO 8601 date and time") from None


def _check_ids(body: Dict[str, Any]) -> None:
    """No channel issues ids with control characters or of kilobytes; a bot that took
    them would put CR/LF into a request header and bloat every record keyed by them."""
    for path in _ID_FIELDS:
        value: Any = body
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        if isinstance(value, str):
            if len(value) > MAX_ID_LENGTH:
                raise BadRequest(f"'{'.'.join(path)}' is over {MAX_ID_LENGTH} characters")
            if _CONTROL_CHARACTER.search(value):
                raise BadRequest(f"'{'.'.join(path)}' holds a control character")
    # State is stored under "{channel}/users/{user}", "{channel}/conversations/{conversation}",
    # "…/{conversation}/users/{user}/" and "…/{conversation}/log" (bots/state_bot.py). These
    # ids would name another conversation's record: read it as theirs, overwrite or delete it.
    conversation_id = body["conversation"]["id"]
    if "/" in body["channelId"]:
        raise BadRequest("'channelId' holds a '/'")
    if "/users/" in conversation_id or conversation_id.endswith(("/log", "/")):
        raise BadRequest("'conversation.id' would name another conversation's stored state")


def parse_activity(body: Any) -> Activity:
    """The activity in this JSON, or BadRequest saying why it is not one the bot can answer."""
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object (an activity)")
    for name in ("type", "channelId"):
        if not isinstance(body.get(name), str) or not body[name].strip():
            raise BadRequest(f"the activity has no '{name}'")
    for name in ("conversation", "from"):
        value = body.get(name)
        if not isinstance(value, dict) or not isinstance(value.get("id"), str) or not value["id"]:
            raise BadRequest(f"the activity has no '{name}.id'")
    service_url = body.get("serviceUrl")
    if not isinstance(service_url, str):
        raise BadRequest("the activity has no 'serviceUrl' to send replies to")
    parsed = urlparse(service_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise BadRequest("the activity's 'serviceUrl' is not an http(s) URL")
    _check_wire_type(body, "Activity", "activity")
    _check_ids(body)
    try:
        return Activity().deserialize(body)
    except (DeserializationError, TypeError, ValueError, AttributeError) as error:
        raise BadRequest(f"the activity could not be read: {type(error).__name__}") from None


async def read_body(request: web.Request, limit: int) -> Optional[bytes]:
    """The whole body, or None once it passes ``limit`` bytes (chunked or not,
    after any Content-Encoding is undone, so a small gzip bomb is stopped too)."""
    body = bytearray()
    while chunk := await request.content.readany():
        body.extend(chunk)
        if len(body) > limit:
            return None
    return bytes(body)


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
