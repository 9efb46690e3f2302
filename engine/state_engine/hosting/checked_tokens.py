"""Channel tokens the SDK accepted, taken again until they expire (at most a few minutes).

A channel sends one token with many requests, and the SDK decodes it several times per
request to accept it; refused tokens are never kept, so each is checked in full.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable, Optional, Tuple

from botbuilder.schema import Activity
from botframework.connector.auth.authenticate_request_result import AuthenticateRequestResult

#: How long a channel's token, once the SDK accepted it, is taken again for the same
#: channel and service URL without checking it again (never past its own expiry).
TOKEN_REUSE_SECONDS = 300.0


class CheckedTokens:
    """Authorization headers the SDK accepted, by (header, channel id, service URL).

    A channel sends one token with many requests; the SDK decodes it several times per
    request to accept it (PyJWT checks each segment character by character). A
    header accepted for this channel and service URL is accepted again, as the same
    claims, until its token's ``exp`` or ``reuse_seconds``, whichever is first.
    Refused headers are never kept: each is checked in full."""

    def __init__(
        self,
        reuse_seconds: float = TOKEN_REUSE_SECONDS,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._reuse = reuse_seconds
        self._max = max_entries
        self._clock = clock
        self._accepted: "OrderedDict[Tuple[str, str, str], Tuple[float, AuthenticateRequestResult]]" = OrderedDict()

    @staticmethod
    def _key(header: str, activity: Activity) -> Tuple[str, str, str]:
        return header, activity.channel_id or "", activity.service_url or ""

    def get(self, header: str, activity: Activity) -> Optional[AuthenticateRequestResult]:
        """A copy of the result the SDK gave for this header, if it still holds."""
        if not header:
            return None
        key = self._key(header, activity)
        found = self._accepted.get(key)
        if found is None:
            return None
        until, result = found
        if self._clock() >= until:
            del self._accepted[key]
            return None
        self._accepted.move_to_end(key)
        copied = AuthenticateRequestResult()
        copied.__dict__.update(result.__dict__)
        return copied

    def remember(self, header: str, activity: Activity, result: AuthenticateRequestResult) -> None:
        identity = result.claims_identity
        expires = identity.claims.get("exp") if identity is not None and identity.is_authenticated else None
        if not header or isinstance(expires, bool) or not isinstance(expires, (int, float)):
            return  # no token (no app id), or one without an expiry: check every time
        until = min(float(expires), self._clock() + self._reuse)
        if until <= self._clock():
            return
        key = self._key(header, activity)
        self._accepted[key] = (until, result)
        self._accepted.move_to_end(key)
        while len(self._accepted) > self._max:
            self._accepted.popitem(last=False)
