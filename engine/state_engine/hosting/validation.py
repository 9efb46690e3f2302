"""Is this request body an activity the bot can answer? If not, a 400 saying why.

The SDK's handler lets msrest bend wrong types into strings and answers most malformed
bodies with a 500; these checks run before any turn, so nothing bad is ever stored.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, List, Tuple

from botbuilder.schema import Activity
from msrest.exceptions import DeserializationError
from yarl import URL

from state_engine import keys
from state_engine.activity_json import activity_from_json
from state_engine.wire_types import WireTypeError, check_wire_json

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
# "\ud800" is valid JSON but not Unicode text: it could be neither stored nor logged as UTF-8.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# A host name or address a reply can be sent to (IPv6 without its brackets).
_HOST = re.compile(r"[A-Za-z0-9._:-]+")


class BadRequest(Exception):
    """The body is not an activity this endpoint accepts; the message says why."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number too large for a float")
    return value


def _plainly_safe(raw: bytes) -> bool:
    """True when ``raw`` cannot hold what the walk below looks for: JSON nests no deeper
    than it has brackets, and json.loads (surrogatepass) yields a lone surrogate only from
    a backslash escape, from UTF-8 bytes starting 0xED, or from UTF-16/32 (which has zero
    bytes). A usual activity has none of these, so it needs no walk (a few C-speed scans)."""
    return (
        raw.count(b"{") + raw.count(b"[") <= MAX_NESTING
        and b"\\" not in raw
        and b"\xed" not in raw
        and b"\x00" not in raw
    )


def parse_json(raw: bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no overflowing floats, no lone surrogates, bounded depth."""
    try:
        body = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise BadRequest(f"the JSON is nested deeper than {MAX_NESTING} levels") from None
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the body is not valid JSON") from None
    if isinstance(raw, bytes) and _plainly_safe(raw):
        return body
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
    # Ids become storage keys (state_engine.keys); these would name another record.
    problem = keys.id_problem(body["channelId"], body["conversation"]["id"], body["from"]["id"])
    if problem:
        raise BadRequest(problem)


def _check_service_url(value: Any) -> None:
    """Replies go to this URL: it must be one they can be sent to, and name no user or
    password (it shows in the log and in /healthz)."""
    if not isinstance(value, str):
        raise BadRequest("the activity has no 'serviceUrl' to send replies to")
    try:
        url = URL(value)
        host = url.raw_host or ""
        host.encode("idna")  # as the connection will look it up
    except (ValueError, UnicodeError):
        raise BadRequest("the activity's 'serviceUrl' is not a valid URL") from None
    if url.scheme not in ("http", "https") or not _HOST.fullmatch(host):
        raise BadRequest("the activity's 'serviceUrl' is not an http(s) URL with a host")
    if url.user is not None or url.password is not None:
        raise BadRequest("the activity's 'serviceUrl' must not carry a user name or password")


def _check_invoke(body: Dict[str, Any]) -> None:
    """The SDK reads an Adaptive Card action's ``value.action`` as an object whatever it
    is (an AttributeError, taken for a bug in the bot); anything else is refused here."""
    if body["type"] != "invoke" or body.get("name") != "adaptiveCard/action":
        return
    value = body.get("value")
    action = value.get("action") if isinstance(value, dict) else None
    if action is not None and not isinstance(action, dict):
        raise BadRequest("an adaptiveCard/action invoke's 'value.action' must be an object")


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
    _check_service_url(body.get("serviceUrl"))
    try:
        check_wire_json(body, Activity, "activity")
    except WireTypeError as error:
        raise BadRequest(str(error)) from None
    _check_ids(body)
    _check_invoke(body)
    try:
        return activity_from_json(body)
    except (DeserializationError, TypeError, ValueError, AttributeError) as error:
        raise BadRequest(f"the activity could not be read: {type(error).__name__}") from None
