"""Helpers for the security, privacy and fuzz tests: raw HTTP and the SQLite file as stored.

``RawHttp`` keeps one keep-alive connection (fast enough for thousands of fuzz
requests) and can send what ``urllib`` cannot: any Content-Type, no
Content-Length, chunked bodies. ``drip`` sends bytes one at a time over a raw
socket, as a slow or malicious client does. ``sqlite_documents`` reads the
store's file directly, read-only, so a test compares records byte for byte
without going through the code under test.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Tuple

from state_engine.stores.items import Item
from state_engine.stores.partition import parse

# What a Python stack trace or aiohttp's debug error page looks like in a body.
TRACE_MARKERS = ("Traceback", 'File "', "<h2>Traceback")


class RawHttp:
    """One persistent HTTP/1.1 connection to 127.0.0.1, reopened when the server closes it."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self._port = port
        self._timeout = timeout
        self._connection: Optional[http.client.HTTPConnection] = None
        #: The headers of the last answer.
        self.headers: Dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        body: Optional[bytes | Iterable[bytes]] = None,
        headers: Optional[Mapping[str, str]] = None,
        chunked: bool = False,
    ) -> Tuple[int, bytes]:
        for attempt in (1, 2):
            if self._connection is None:
                self._connection = http.client.HTTPConnection(
                    "127.0.0.1", self._port, timeout=self._timeout
                )
            try:
                self._connection.request(
                    method, path, body=body, headers=dict(headers or {}), encode_chunked=chunked
                )
                response = self._connection.getresponse()
                data = response.read()
                self.headers = dict(response.getheaders())
                if response.will_close:
                    self.close()
                return response.status, data
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def post(
        self, body: bytes, content_type: Optional[str] = "application/json", **kwargs
    ) -> Tuple[int, bytes]:
        headers = dict(kwargs.pop("headers", {}) or {})
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.request("POST", "/api/messages", body, headers, **kwargs)

    def post_json(self, activity: object, **kwargs) -> Tuple[int, bytes]:
        return self.post(json.dumps(activity).encode("utf-8"), **kwargs)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@dataclass
class Dripped:
    """What came of sending bytes slowly: the server's answer (until it closed the
    connection), how many bytes it took first, and after how many seconds it ended."""

    answer: bytes
    sent: int
    closed: bool
    seconds: float

    @property
    def status(self) -> Optional[int]:
        line = self.answer.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 and line[0].startswith(b"HTTP/") else None


def drip(port: int, head: bytes, data: bytes, interval: float, wait: float = 30) -> Dripped:
    """Send ``head`` at once, then ``data`` a byte every ``interval`` seconds, until the
    server answers or closes the connection; then read its answer for up to ``wait`` s."""
    started = time.monotonic()
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(head)
        sent = 0
        while sent < len(data) and not select.select([sock], [], [], interval)[0]:
            try:
                sock.sendall(data[sent : sent + 1])
            except OSError:  # closed by the server
                break
            sent += 1
        closed = False
        while not closed:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:  # still open after `wait` seconds
                break
            except ConnectionResetError:
                chunk = b""
            answer += chunk
            closed = chunk == b""
    return Dripped(answer, sent, closed, time.monotonic() - started)


def error_reason(status: int, body: bytes) -> str:
    """The one-line reason of an error answer; fails if the answer is not the clean JSON kind."""
    assert not any(marker in body.decode("utf-8", "replace") for marker in TRACE_MARKERS), body
    parsed = json.loads(body)
    assert isinstance(parsed, dict) and isinstance(parsed.get("error"), str), (status, body)
    return parsed["error"]


def sqlite_documents(path: Path | str) -> Dict[str, str]:
    """Every stored record as ``{key: document}``: the JSON text exactly as stored."""
    if not Path(path).exists():
        return {}
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = list(connection.execute("SELECT key, document, e_tag FROM store_items ORDER BY key"))
    except sqlite3.OperationalError:  # the bot has not created its table yet
        return {}
    finally:
        connection.close()
    records: Dict[str, str] = {}
    for key, document, e_tag in rows:
        partition = parse(key, Item(document, e_tag))
        if partition.unreadable:
            records[key] = document
        records.update({k: json.dumps(r.value, ensure_ascii=False) for k, r in partition.records.items()})
    return records
