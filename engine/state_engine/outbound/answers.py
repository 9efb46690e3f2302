"""One HTTP/1.1 answer read off a connection, strictly: its status line, its headers, and
a body framed by Content-Length, the chunked coding or the connection's end, each bounded
in size. Whatever does not parse is ``NoAnswer``, never a guess."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

#: The longest status line and headers taken (the StreamReader's own limit, 64 KiB).
MAX_HEAD_BYTES = 2**16
#: The largest body taken (Cosmos DB items are at most 2 MB; replies answer a few bytes).
MAX_BODY_BYTES = 32 * 2**20
_MAX_TRAILER_LINES = 64
_STATUS_LINE = re.compile(rb"(HTTP/1\.[01]) ([0-9]{3})(?: [^\r\n\0]*)?")
_HEADER_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n\0]*)")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_NO_BODY_STATUSES = (204, 304)


class NoAnswer(ConnectionError):
    """The request went out, but no complete, well-formed answer came back: it may or
    may not have been carried out."""


class Headers(dict):
    """Response headers under lower-case names, looked up in any case; a header sent
    more than once holds its values joined by ", "."""

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:  # type: ignore[override]
        return super().get(name.lower(), default)


@dataclass(frozen=True)
class Response:
    """What the server answered: status, headers and the whole body."""

    status: int
    headers: Headers
    body: bytes


async def read_answer(reader: asyncio.StreamReader, method: str) -> Tuple[Response, bool]:
    """The answer to ``method``, and whether the connection may carry another request."""
    version, status, headers = await _head(reader)
    while 100 <= status < 200:  # interim answers (100 Continue, 103 Early Hints) come first
        if status == 101:
            raise NoAnswer("the server switched protocols")
        version, status, headers = await _head(reader)
    tokens = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    reusable = version == b"HTTP/1.1" and "close" not in tokens
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise NoAnswer(f"a body in {encoding!r}, which was not asked for")
    if method == "HEAD" or status in _NO_BODY_STATUSES or (method == "CONNECT" and status == 200):
        body = b""
    elif "transfer-encoding" in headers:
        if "content-length" in headers:  # RFC 9112 6.3: a sign of response splitting
            raise NoAnswer("both Transfer-Encoding and Content-Length")
        if headers["transfer-encoding"].strip().lower() != "chunked":
            raise NoAnswer(f"transfer coding {headers['transfer-encoding']!r}")
        body = await _chunked(reader)
    elif "content-length" in headers:
        body = await _exactly(reader, _content_length(headers["content-length"]))
    else:
        body, reusable = await _until_closed(reader), False
    return Response(status, Headers(headers), body), reusable


async def _head(reader: asyncio.StreamReader) -> Tuple[bytes, int, Dict[str, str]]:
    """The status line and headers, the headers under lower-case names."""
    try:
        block = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        raise NoAnswer("the connection closed " + ("mid-answer" if error.partial else "with no answer")) from None
    except asyncio.LimitOverrunError:
        raise NoAnswer(f"an answer's head over {MAX_HEAD_BYTES} bytes") from None
    status_line, *lines = block[:-4].split(b"\r\n")
    matched = _STATUS_LINE.fullmatch(status_line)
    if matched is None:
        raise NoAnswer(f"not an HTTP/1.1 status line: {status_line[:80]!r}")
    headers: Dict[str, str] = {}
    for line in lines:
        field = _HEADER_LINE.fullmatch(line)
        if field is None:
            raise NoAnswer(f"a malformed header line: {line[:80]!r}")
        name = field[1].decode("ascii").lower()
        value = field[2].rstrip(b" \t").decode("utf-8", "surrogateescape")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return matched[1], int(matched[2]), headers


def _content_length(value: str) -> int:
    lengths = {part.strip() for part in value.split(",")}
    length = lengths.pop() if len(lengths) == 1 else ""
    if not length.isdigit() or not length.isascii():
        raise NoAnswer(f"Content-Length {value!r}")
    if int(length) > MAX_BODY_BYTES:
        raise NoAnswer(f"a body of {length} bytes, over {MAX_BODY_BYTES}")
    return int(length)


async def _exactly(reader: asyncio.StreamReader, count: int) -> bytes:
    try:
        return await reader.readexactly(count)
    except asyncio.IncompleteReadError:
        raise NoAnswer("the connection closed mid-body") from None


async def _line(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n")
    except asyncio.IncompleteReadError:
        raise NoAnswer("the connection closed mid-body") from None
    except asyncio.LimitOverrunError:
        raise NoAnswer("a chunk line over the limit") from None


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    parts: List[bytes] = []
    size = 0
    while True:
        size_text = (await _line(reader))[:-2].split(b";", 1)[0].strip(b" \t")
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise NoAnswer(f"a malformed chunk size: {size_text[:20]!r}")
        count = int(size_text, 16)
        if count == 0:
            break
        size += count
        if size > MAX_BODY_BYTES:
            raise NoAnswer(f"a body over {MAX_BODY_BYTES} bytes")
        chunk = await _exactly(reader, count + 2)
        if chunk[-2:] != b"\r\n":
            raise NoAnswer("a chunk not ended by CRLF")
        parts.append(chunk[:-2])
    for _ in range(_MAX_TRAILER_LINES):
        if await _line(reader) == b"\r\n":
            return b"".join(parts)
    raise NoAnswer(f"more than {_MAX_TRAILER_LINES} trailer lines")


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    parts: List[bytes] = []
    size = 0
    while chunk := await reader.read(2**16):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise NoAnswer(f"a body over {MAX_BODY_BYTES} bytes")
        parts.append(chunk)
    return b"".join(parts)
