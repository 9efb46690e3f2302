"""Calls on one blob container or table of a storage account, each a single REST call
(``rest_calls``): signed with the account key ("Authorize with Shared Key"), or carrying
the SAS token of the connection string. A refusal comes back as the SDK's own error, so
``azure_storage`` judges both the SDK's calls and these alike.
"""

from __future__ import annotations

import base64
import json
from email.utils import formatdate
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from yarl import URL

from ..outbound import Response
from .rest_calls import RestSession, signature

#: The SDK's exception for each refusal an item call can meet, as its own calls raise them.
_REFUSALS = {404: ResourceNotFoundError, 409: ResourceExistsError, 412: ResourceModifiedError}
#: The standard headers a Blob Shared Key signature covers, in its order.
_BLOB_SIGNED = (
    "Content-Encoding", "Content-Language", "Content-Length", "Content-MD5", "Content-Type", "Date",
    "If-Modified-Since", "If-Match", "If-None-Match", "If-Unmodified-Since", "Range",
)


def _blob_string_to_sign(verb: str, headers: Dict[str, str], resource: str) -> str:
    standard = [headers.get(name, "") for name in _BLOB_SIGNED]
    if standard[2] == "0":
        standard[2] = ""  # Content-Length 0 is signed as empty
    ms = sorted((name.lower(), value) for name, value in headers.items() if name.lower().startswith("x-ms-"))
    return "\n".join([verb, *standard]) + "\n" + "".join(f"{name}:{value}\n" for name, value in ms) + resource


def _table_string_to_sign(verb: str, headers: Dict[str, str], resource: str) -> str:
    return "\n".join(
        [verb, headers.get("Content-MD5", ""), headers.get("Content-Type", ""), headers["x-ms-date"], resource]
    )


_STRING_TO_SIGN = {"blob": _blob_string_to_sign, "table": _table_string_to_sign}


class StorageCalls:
    """Calls under ``resource_url`` (a container's URL, or the account's for tables):
    Shared Key signed when ``account`` (its name and key) is given, else carrying the
    URL's query, the SAS token."""

    def __init__(
        self, service: str, resource_url: str, version: str, request_timeout: float,
        account: Optional[Tuple[str, str]] = None, proxy: Optional[str] = None,
    ) -> None:
        url = urlsplit(resource_url)  # a SAS token, if any, is its query
        self._origin = urlunsplit((url.scheme, url.netloc, "", "", ""))
        self._path = url.path.rstrip("/")
        self._query = f"?{url.query}" if url.query else ""
        self._version = version
        self._string_to_sign = _STRING_TO_SIGN[service]
        self._account = account[0] if account else None
        self._key = base64.b64decode(account[1]) if account else None
        # Storage answers 503 (ServerBusy) for a call it turned away unserved.
        self._session = RestSession(request_timeout, proxy, lambda answer: answer.status == 503)

    async def send(
        self, verb: str, path: str, headers: Dict[str, str], ok: Tuple[int, ...], body: Optional[bytes] = None
    ) -> Response:
        """``path`` below the resource URL, percent-encoded; a status not in ``ok`` is
        raised as the SDK's error for it."""
        # The path as yarl sends it (it decodes what needs no escape, as the SDK's aiohttp
        # transport does): that form is the one signed.
        url = URL(f"{self._origin}{self._path}/{path}{self._query}")
        resource = f"/{self._account}{url.raw_path}"

        def signed() -> Dict[str, str]:
            sent = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": self._version, **headers}
            if body is not None:
                sent["Content-Length"] = str(len(body))
            if self._key is not None:
                text = self._string_to_sign(verb, sent, resource)
                sent["Authorization"] = f"SharedKey {self._account}:{signature(self._key, text)}"
            return sent

        answer = await self._session.send(verb, url, signed, body)
        if answer.status not in ok:
            raise refusal(answer)
        return answer

    async def close(self) -> None:
        await self._session.close()


def error_code(answer: Response) -> Optional[str]:
    """The service's error code: Blob's header, or Table's JSON body."""
    code = answer.headers.get("x-ms-error-code")
    if code:
        return code
    try:
        return json.loads(answer.body)["odata.error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def refusal(answer: Response) -> HttpResponseError:
    """The SDK's error for a refused call, carrying the status and error code as its own do."""
    code = error_code(answer)
    error = _REFUSALS.get(answer.status, HttpResponseError)(message=f"answered {answer.status} ({code})")
    error.status_code = answer.status
    error.error_code = code
    return error
