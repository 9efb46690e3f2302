"""GET /dev/state: what the bot stored for one user in one conversation (development only).

The records ``make chat``'s panel shows, under the keys ``state_engine.keys`` names:
``document`` as stored, ``view`` with the codec's type tags folded in, ``summaries``
(one line per dialog stack). Only on 127.0.0.1, never with an app id, never settings.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Dict, List, Optional, Tuple

from aiohttp import web
from aiohttp.typedefs import Handler
from botbuilder.core import Storage
from botbuilder.dialogs import DialogState

from state_engine import keys
from state_engine.errors import StorageError
from state_engine.codec import TYPE_TAG, VALUE_TAG, encode_value

logger = logging.getLogger(__name__)

QUERY_PARAMETERS = ("channel", "conversation", "user")
MAX_ID_LENGTH = 256
# Hosts a browser on this machine uses to reach the bot. Checking Host as well as
# the peer address stops "DNS rebinding": a web page whose own hostname was made
# to resolve to 127.0.0.1 reaches this port from the learner's browser.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
PATH_SEPARATOR = " › "


def is_loopback(remote: Optional[str]) -> bool:
    """True for a peer address on this machine (127.0.0.0/8 or ::1)."""
    try:
        return remote is not None and ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _addressed_to_loopback(request: web.Request) -> bool:
    """True when the Host header names this machine."""
    try:
        return request.url.host in LOOPBACK_HOSTS
    except ValueError:  # a Host header that is not a host at all
        return False


def _bad_request(reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=400)


def _as_stored(item: Any) -> Tuple[Optional[str], Any]:
    """(e_tag, document) of an item that was read; the document without the e_tag,
    as the store keeps it. A state scope is a dict, the log a dataclass."""
    if item is None:
        return None, None
    if isinstance(item, dict):
        document = {key: value for key, value in item.items() if key != "e_tag"}
        return item.get("e_tag"), encode_value(document)
    return getattr(item, "e_tag", None), encode_value(item)


def readable(document: Any) -> Any:
    """A stored document with every type tag folded into the object it names:
    ``{"$type": T, "$value": {...}}`` and ``{"$type": T, ...}`` both become the
    latter, and a tagged value that is no object (a datetime) becomes that value."""
    if isinstance(document, list):
        return [readable(item) for item in document]
    if not isinstance(document, dict):
        return document
    if TYPE_TAG in document and set(document) == {TYPE_TAG, VALUE_TAG}:
        inner = document[VALUE_TAG]
        if not isinstance(inner, dict):
            return readable(inner)
        document = {TYPE_TAG: document[TYPE_TAG], **inner}
    return {key: readable(value) for key, value in document.items()}


def _describe_instance(instance: Any) -> List[str]:
    """The steps of one dialog on a stack: its id, the waterfall step it is at,
    what its prompt asked, then the dialogs it runs inside it (a component)."""
    state = getattr(instance, "state", None) or {}
    parts = [str(getattr(instance, "id", "?"))]
    if isinstance(state.get("stepIndex"), int):
        parts[-1] = f"step {state['stepIndex'] + 1}"
    prompt = getattr(state.get("options"), "prompt", None)
    text = getattr(prompt, "text", None)
    if text:
        parts[-1] = f"waiting in {parts[-1]}: {text}"
    inner = state.get("dialogs")
    if isinstance(inner, DialogState):
        parts.extend(_describe_stack(inner))
    return parts


def _describe_stack(dialog_state: DialogState) -> List[str]:
    """The dialogs of a stack from the bottom (the first started) to the top (the one
    the next message goes to): the SDK keeps the top at index 0."""
    parts: List[str] = []
    for instance in reversed(dialog_state.dialog_stack or []):
        parts.extend(_describe_instance(instance))
    return parts


def dialog_summary(dialog_state: DialogState) -> str:
    """One line for a dialog stack, e.g. ``ProfileDialog › step 2 › waiting in
    NumberPrompt: How old are you?``, so the panel can show it folded."""
    parts = _describe_stack(dialog_state)
    return PATH_SEPARATOR.join(parts) if parts else "no dialog running"


def _summaries(item: Any) -> Dict[str, str]:
    """A one-line summary for each dialog stack among a record's properties."""
    if not isinstance(item, dict):
        return {}
    return {
        name: dialog_summary(value)
        for name, value in item.items()
        if isinstance(value, DialogState)
    }


def make_dev_state_handler(storage: Storage) -> Handler:
    """GET /dev/state: one user's records in one conversation, as stored and folded for
    reading, answered only on this machine (routes.py mounts it only when enabled)."""

    async def dev_state(request: web.Request) -> web.Response:
        # request.remote is the TCP peer; X-Forwarded-For is not believed.
        if not (is_loopback(request.remote) and _addressed_to_loopback(request)):
            return web.json_response(
                {"error": "the development state endpoint answers only on 127.0.0.1"}, status=403
            )
        ids = {name: request.query.get(name, "").strip() for name in QUERY_PARAMETERS}
        missing = [name for name, value in ids.items() if not value]
        if missing:
            return _bad_request(f"missing query parameter(s): {', '.join(missing)}")
        if any(len(value) > MAX_ID_LENGTH for value in ids.values()):
            return _bad_request(f"ids are at most {MAX_ID_LENGTH} characters")

        records_of = keys.TurnIds(ids["channel"], ids["conversation"], ids["user"]).records(bookkeeping=False)
        try:
            stored = await storage.read(list(records_of.values()))
        except StorageError as error:
            logger.warning("dev state read failed: %s", type(error).__name__)
            return web.json_response({"error": type(error).__name__}, status=503)

        records = []
        for scope, key in records_of.items():
            item = stored.get(key)
            e_tag, document = _as_stored(item)
            records.append(
                {
                    "scope": scope,
                    "key": key,
                    "e_tag": e_tag,
                    "document": document,
                    "view": readable(document),
                    "summaries": _summaries(item),
                }
            )
        return web.json_response({**ids, "records": records})

    return dev_state
