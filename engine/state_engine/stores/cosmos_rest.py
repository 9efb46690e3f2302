"""A container's items over Cosmos DB's REST API: each point read or conditional write one
call (``rest_calls``), signed with the account key as a master-key token.

Setup, queries and health checks stay on azure-cosmos' async client (``cosmos.py``).
"""

from __future__ import annotations

import base64
import json
from email.utils import formatdate
from typing import Dict, Optional, Tuple
from urllib.parse import quote

from azure.cosmos.http_constants import Versions
from yarl import URL

from ..outbound import Response
from .rest_calls import RestSession, signature

#: Statuses Cosmos DB answers for a call it did not carry out: throttled (429) or asked to
#: retry (449).
_NOT_DONE = (429, 449)


def master_key_token(key: bytes, verb: str, resource_type: str, resource_link: str, date: str) -> str:
    """The ``authorization`` header of a request ("Access control in Azure Cosmos DB":
    HMAC-SHA256 over verb, resource type, link and date), URL-encoded as the SDK sends it."""
    text = f"{verb.lower()}\n{resource_type.lower()}\n{resource_link}\n{date.lower()}\n\n"
    return quote(f"type=master&ver=1.0&sig={signature(key, text)}", safe="-_.!~*'()")


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
    """Reads, creates, upserts, replaces and deletes of one container's items."""

    def __init__(
        self, uri: str, key: str, database: str, container: str, request_timeout: float,
        proxy: Optional[str] = None,
    ) -> None:
        self._base = uri.rstrip("/") + "/"
        self._key = base64.b64decode(key)
        self._collection = f"dbs/{database}/colls/{container}"
        self._session = RestSession(request_timeout, proxy, lambda answer: answer.status in _NOT_DONE)
        self.sessions = SessionTokens()

    async def read(self, item_id: str) -> Response:
        return await self._send("GET", item_id, {})

    async def create(self, item_id: str, body: str, upsert: bool = False) -> Response:
        """Create the item (409 when it exists), or with ``upsert`` create or replace it."""
        headers = {"x-ms-documentdb-is-upsert": "True"} if upsert else {}
        return await self._send("POST", item_id, headers, body, to_container=True)

    async def replace(self, item_id: str, body: str, e_tag: str) -> Response:
        return await self._send("PUT", item_id, {"If-Match": e_tag}, body)

    async def delete(self, item_id: str, e_tag: Optional[str]) -> Response:
        headers = {"If-Match": e_tag} if e_tag is not None else {}
        return await self._send("DELETE", item_id, headers)

    async def close(self) -> None:
        await self._session.close()

    async def _send(
        self, verb: str, item_id: str, extra: Dict[str, str], body: Optional[str] = None,
        to_container: bool = False,
    ) -> Response:
        """A call on the item, or (a create) on the container's documents. The signature
        names the resource by its link, unencoded: the item's, or the container's."""
        if to_container:
            link, path = self._collection, f"{self._collection}/docs"
        else:
            link = path = f"{self._collection}/docs/{item_id}"

        def headers() -> Dict[str, str]:
            date = formatdate(usegmt=True)
            signed = {
                "authorization": master_key_token(self._key, verb, "docs", link, date),
                "x-ms-date": date,
                "x-ms-version": Versions.CurrentVersion,
                "x-ms-documentdb-partitionkey": json.dumps([item_id]),
                "Accept": "application/json",
                **extra,
            }
            if body is not None:
                signed["Content-Type"] = "application/json"
            if self.sessions.header is not None:
                signed["x-ms-session-token"] = self.sessions.header
            return signed

        data = body.encode("utf-8") if body is not None else None
        answer = await self._session.send(verb, URL(self._base + quote(path), encoded=True), headers, data)
        if answer.status < 300:
            self.sessions.update(answer.headers.get("x-ms-session-token"))
        return answer


def sub_status(answer: Response) -> int:
    """Cosmos DB's sub-status of an answer (0 when it gives none)."""
    value = answer.headers.get("x-ms-substatus", "")
    return int(value) if value.isdigit() else 0
