"""A container's items over Cosmos DB's REST API: each point read or conditional write one
HTTP call on one aiohttp session, signed with the account key (a master-key token).

These are the calls every turn makes, and azure-cosmos' async client spends about three
times the CPU of the call itself on each (request options, retry utility, pipeline). Setup,
queries and health checks stay on the SDK (``cosmos.py``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from email.utils import formatdate
from typing import Dict, Optional, Tuple
from urllib.parse import quote

import aiohttp
from azure.cosmos.http_constants import Versions

#: Statuses Cosmos DB answers for a request it did not carry out: throttled (429) or
#: asked to retry (449). Waiting as long as it says (at most this long) and sending again
#: is safe for any call.
_NOT_DONE = (429, 449)
_MAX_RETRY_WAIT = 1.0
_DEFAULT_RETRY_WAIT = 0.1
_NOT_DONE_RETRIES = 2


@dataclass(frozen=True)
class Answer:
    """What Cosmos DB answered: status, sub-status (0 when none), body, the ETag, and how
    long it asked to be left alone before a call it did not carry out is sent again."""

    status: int
    sub_status: int
    body: bytes
    e_tag: Optional[str]
    retry_after: float = 0.0


def master_key_token(key: bytes, verb: str, resource_type: str, resource_link: str, date: str) -> str:
    """The ``authorization`` header of a request ("Access control in Azure Cosmos DB":
    HMAC-SHA256 over verb, resource type, link and date), URL-encoded as the SDK sends it."""
    text = f"{verb.lower()}\n{resource_type.lower()}\n{resource_link}\n{date.lower()}\n\n"
    signature = base64.b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()).decode()
    return quote(f"type=master&ver=1.0&sig={signature}", safe="-_.!~*'()")


class SessionTokens:
    """The newest session token seen for each partition key range of the container. Sent
    with every call, they let an account on session consistency (Azure's default) give
    this client its own writes back, as the SDK's session container does."""

    def __init__(self) -> None:
        self._newest: Dict[str, Tuple[Tuple[int, int], str]] = {}
        self.header: Optional[str] = None

    def update(self, answered: Optional[str]) -> None:
        """Keep each range's token from an answer's ``x-ms-session-token`` if it is newer."""
        changed = False
        for part in (answered or "").split(","):
            range_id, _, token = part.partition(":")
            order = _token_order(token)
            if order is None:
                continue
            kept = self._newest.get(range_id)
            if kept is None or order > kept[0]:
                self._newest[range_id] = (order, token)
                changed = True
        if changed:
            self.header = ",".join(f"{range_id}:{token}" for range_id, (_, token) in self._newest.items())


def _token_order(token: str) -> Optional[Tuple[int, int]]:
    """(version, global LSN) of a session token: "LSN" or "version#globalLSN#region=LSN..."."""
    fields = token.split("#")
    try:
        return (0, int(fields[0])) if len(fields) == 1 else (int(fields[0]), int(fields[1]))
    except ValueError:
        return None


class CosmosRequests:
    """Reads, creates, upserts, replaces and deletes of one container's items.

    A call that could not be sent (no connection) or was throttled is sent again; a read
    is also sent again after a timeout or a server error. A write never is then: it may
    have landed, and only the caller can tell."""

    def __init__(
        self, uri: str, key: str, database: str, container: str, request_timeout: float,
        proxy: Optional[str] = None,
    ) -> None:
        self._base = uri.rstrip("/") + "/"
        self._key = base64.b64decode(key)
        self._collection = f"dbs/{database}/colls/{container}"
        self._timeout = aiohttp.ClientTimeout(sock_connect=request_timeout, sock_read=request_timeout)
        self._proxy = proxy
        self._session: Optional[aiohttp.ClientSession] = None
        self.sessions = SessionTokens()

    async def read(self, item_id: str) -> Answer:
        return await self._send("GET", "docs", f"{self._collection}/docs/{item_id}", item_id, {}, None)

    async def create(self, item_id: str, body: str, upsert: bool = False) -> Answer:
        headers = {"x-ms-documentdb-is-upsert": "True"} if upsert else {}
        return await self._send("POST", "docs", self._collection, item_id, headers, body, path_suffix="/docs")

    async def replace(self, item_id: str, body: str, e_tag: str) -> Answer:
        link = f"{self._collection}/docs/{item_id}"
        return await self._send("PUT", "docs", link, item_id, {"If-Match": e_tag}, body)

    async def delete(self, item_id: str, e_tag: Optional[str]) -> Answer:
        headers = {"If-Match": e_tag} if e_tag is not None else {}
        return await self._send("DELETE", "docs", f"{self._collection}/docs/{item_id}", item_id, headers, None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _send(
        self, verb: str, resource_type: str, link: str, partition: str, extra: Dict[str, str],
        body: Optional[str], path_suffix: str = "",
    ) -> Answer:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, trust_env=False)
        url = self._base + quote(link + path_suffix)
        data = body.encode("utf-8") if body is not None else None
        is_read = verb == "GET"
        sent_again = False
        throttled = 0
        while True:
            headers = self._headers(verb, resource_type, link, partition, extra, data is not None)
            try:
                answer = await self._call(verb, url, headers, data)
            except aiohttp.ClientConnectorError:
                if sent_again:  # no connection: the call never left
                    raise
                sent_again = True
                continue
            except (aiohttp.ClientError, asyncio.TimeoutError):
                if sent_again or not is_read:
                    raise
                sent_again = True
                continue
            if answer.status in _NOT_DONE and throttled < _NOT_DONE_RETRIES:
                throttled += 1
                await asyncio.sleep(answer.retry_after)
            elif answer.status >= 500 and is_read and not sent_again:
                sent_again = True
            else:
                return answer

    def _headers(
        self, verb: str, resource_type: str, link: str, partition: str, extra: Dict[str, str], has_body: bool
    ) -> Dict[str, str]:
        date = formatdate(usegmt=True)
        headers = {
            "authorization": master_key_token(self._key, verb, resource_type, link, date),
            "x-ms-date": date,
            "x-ms-version": Versions.CurrentVersion,
            "x-ms-documentdb-partitionkey": json.dumps([partition]),
            "Accept": "application/json",
            **extra,
        }
        if has_body:
            headers["Content-Type"] = "application/json"
        if self.sessions.header is not None:
            headers["x-ms-session-token"] = self.sessions.header
        return headers

    async def _call(self, verb: str, url: str, headers: Dict[str, str], data: Optional[bytes]) -> Answer:
        assert self._session is not None
        async with self._session.request(verb, url, headers=headers, data=data, proxy=self._proxy) as response:
            body = await response.read()
            answered = response.headers
        if response.status < 300:
            self.sessions.update(answered.get("x-ms-session-token"))
        sub_status = answered.get("x-ms-substatus", "")
        wait_ms = answered.get("x-ms-retry-after-ms", "")
        return Answer(
            response.status,
            int(sub_status) if sub_status.isdigit() else 0,
            body,
            answered.get("etag"),
            min(int(wait_ms) / 1000, _MAX_RETRY_WAIT) if wait_ms.isdigit() else _DEFAULT_RETRY_WAIT,
        )
