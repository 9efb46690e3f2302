"""GET /dev/state: what the bot stored for one user in one conversation, as stored.

Development only: app.py adds this route only when ``DEV_STATE_ENDPOINT`` is on,
and config.py turns that off whenever an app id is configured (in Azure). It is
what the state panel of ``make chat`` shows, so a learner sees the records that
"Managing state" describes, under the keys the SDK's state classes build:

* user state                  ``{channel}/users/{user}``
* conversation state          ``{channel}/conversations/{conversation}``
* private conversation state  ``{channel}/conversations/{conversation}/users/{user}/``
* utterance log (written directly to storage)  ``{channel}/conversations/{conversation}/log``

Each record is read through the store and shown as the store keeps it: the
JSON document (with the codec's ``$type`` tags) and its e_tag. Only stored bot
state is returned, never a setting.

    GET /dev/state?channel=emulator&conversation=<id>&user=<id>
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Dict, Optional, Tuple

from aiohttp import web
from botbuilder.core import Storage

from state_engine.errors import StorageError
from state_engine.codec import encode_value

logger = logging.getLogger(__name__)

QUERY_PARAMETERS = ("channel", "conversation", "user")
MAX_ID_LENGTH = 256
# Hosts a browser on this machine uses to reach the bot. Checking Host as well as
# the peer address stops "DNS rebinding": a web page whose own hostname was made
# to resolve to 127.0.0.1 reaches this port from the learner's browser.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def state_keys(channel: str, conversation: str, user: str) -> Dict[str, str]:
    """The storage key of each record, built as UserState, ConversationState and
    PrivateConversationState (app.py uses the default, empty, namespace) build them."""
    return {
        "user state": f"{channel}/users/{user}",
        "conversation state": f"{channel}/conversations/{conversation}",
        "private conversation state": f"{channel}/conversations/{conversation}/users/{user}/",
        "utterance log": f"{channel}/conversations/{conversation}/log",
    }


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
    as JsonStorage writes it. A state scope is a dict, the log a dataclass."""
    if item is None:
        return None, None
    if isinstance(item, dict):
        document = {key: value for key, value in item.items() if key != "e_tag"}
        return item.get("e_tag"), encode_value(document)
    return getattr(item, "e_tag", None), encode_value(item)


def make_dev_state_handler(storage: Storage):
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

        keys = state_keys(ids["channel"], ids["conversation"], ids["user"])
        try:
            stored = await storage.read(list(keys.values()))
        except StorageError as error:
            logger.warning("dev state read failed: %s", type(error).__name__)
            return web.json_response({"error": type(error).__name__}, status=503)

        records = []
        for scope, key in keys.items():
            e_tag, document = _as_stored(stored.get(key))
            records.append({"scope": scope, "key": key, "e_tag": e_tag, "document": document})
        return web.json_response({**ids, "records": records})

    return dev_state
