"""The bot's own outgoing calls (its replies to the channel, its stores' item calls) as
plain HTTP/1.1 over kept-alive connections, TLS verified, through a proxy when one is
named. A turn makes eight such calls: a request written out and an answer read back,
with none of the per-call machinery of a general-purpose client."""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
from collections import OrderedDict
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import AsyncIterator, Dict, List, Mapping, Optional, Tuple, Union

from yarl import URL

from .answers import NoAnswer, Response, read_answer

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Headers the client writes itself, from the URL and the body.
_FRAMING = frozenset(("host", "content-length", "transfer-encoding", "connection"))
_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))
_USER_AGENT = "botbuilder-state-engine"
_CLOSE_SECONDS = 1.0

Origin = Tuple[str, str, int]


class NotSent(ConnectionError):
    """No connection could be made in time (refused, unreachable, TLS or the proxy
    failed): the request never left, so sending it again is safe."""


@dataclass(frozen=True)
class Limits:
    """How many connections may be busy at once, every origin together and for one origin
    (a call beyond waits for one: an origin that hangs holds no more than its share), and
    how long one may rest unused before it is closed."""

    connections: int = 100
    per_origin: int = 100
    idle_seconds: float = 15.0


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self, now: float, idle_seconds: float) -> bool:
        """Still open at both ends, and not rested so long the server may drop it."""
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and now - self.idle_since < idle_seconds
        )


@dataclass
class _OriginGate:
    semaphore: asyncio.Semaphore
    users: int = 0


@dataclass
class _Pool:
    """Idle connections by origin, the most recently used origin last."""

    by_origin: "OrderedDict[Origin, List[_Connection]]" = field(default_factory=OrderedDict)
    count: int = 0
    swept_at: float = 0.0


class HttpClient:
    """Calls with their whole answer read, each within its ``timeout``; one client per
    event loop. A call fails as ``NotSent`` (safe to send again), ``NoAnswer`` or
    ``TimeoutError`` (either may have been carried out), or ``ValueError`` for a URL or
    header it must not send."""

    def __init__(
        self, proxy: Optional[str] = None, limits: Limits = Limits(), ssl_context: Optional[ssl.SSLContext] = None
    ) -> None:
        self._limits = limits
        self._gate = asyncio.Semaphore(limits.connections)
        self._origin_gates: Dict[Origin, _OriginGate] = {}
        self._pool = _Pool()
        self._closed = False
        self._ssl_context = ssl_context
        self._proxy: Optional[URL] = None
        self._proxy_authorization: Optional[str] = None
        if proxy:
            self._proxy = URL(proxy)
            if self._proxy.scheme != "http" or not self._proxy.host:
                named = self._proxy.with_password(None)
                raise ValueError(f"the proxy (HTTPS_PROXY, HTTP_PROXY) must be an http:// URL, not {named}")
            if self._proxy.user is not None:
                credentials = f"{self._proxy.user}:{self._proxy.password or ''}".encode("utf-8")
                self._proxy_authorization = "Basic " + base64.b64encode(credentials).decode("ascii")

    async def request(
        self,
        method: str,
        url: Union[str, URL],
        headers: Mapping[str, str],
        body: Optional[bytes] = None,
        *,
        timeout: float,
    ) -> Response:
        """Send ``method`` to ``url`` with ``headers`` and ``body``; the answer, whatever its status."""
        url = url if isinstance(url, URL) else URL(url)
        if url.scheme not in ("http", "https") or not url.raw_host:
            raise ValueError(f"not an http(s) URL: {url.with_query(None)}")
        forwarded = self._proxy is not None and url.scheme == "http"
        data = _request_bytes(method, url, headers, body, forwarded, self._proxy_authorization)
        origin: Origin = (url.scheme, url.raw_host, url.port or 0)
        connection: Optional[_Connection] = None
        sent = False
        try:
            async with asyncio.timeout(timeout):
                async with self._origin_gate(origin), self._gate:
                    connection = self._reuse(origin) or await self._open(url)
                    sent = True
                    connection.writer.write(data)
                    await connection.writer.drain()
                    response, reusable = await read_answer(connection.reader, method)
        except TimeoutError:
            _close(connection)
            if not sent:
                raise NotSent(f"no connection to {_origin_text(origin)} within {timeout:g} s") from None
            raise
        except OSError as error:
            _close(connection)
            if isinstance(error, (NotSent, NoAnswer)):
                raise
            raise NoAnswer(f"{_origin_text(origin)}: {error!r}") from error
        except BaseException:
            _close(connection)
            raise
        if reusable and not self._closed:
            self._rest(origin, connection)
        else:
            _close(connection)
        return response

    async def close(self) -> None:
        """Close the idle connections, and each busy one when its call ends; calls made
        after this still work, each on a connection of its own."""
        self._closed = True
        connections = [c for idle in self._pool.by_origin.values() for c in idle]
        self._pool = _Pool()
        for connection in connections:
            _close(connection)
        with suppress(TimeoutError):
            async with asyncio.timeout(_CLOSE_SECONDS):
                await asyncio.gather(*(c.writer.wait_closed() for c in connections), return_exceptions=True)

    @asynccontextmanager
    async def _origin_gate(self, origin: Origin) -> AsyncIterator[None]:
        """One of ``origin``'s busy connections, kept only while someone holds or awaits it."""
        gate = self._origin_gates.get(origin)
        if gate is None:
            gate = _OriginGate(asyncio.Semaphore(self._limits.per_origin))
            self._origin_gates[origin] = gate
        gate.users += 1
        try:
            async with gate.semaphore:
                yield
        finally:
            gate.users -= 1
            if not gate.users:
                del self._origin_gates[origin]

    def _reuse(self, origin: Origin) -> Optional[_Connection]:
        idle = self._pool.by_origin.get(origin)
        if idle is None:
            return None
        now = asyncio.get_running_loop().time()
        found = None
        while idle and found is None:
            connection = idle.pop()
            self._pool.count -= 1
            if connection.usable(now, self._limits.idle_seconds):
                found = connection
            else:
                _close(connection)
        if not idle:
            del self._pool.by_origin[origin]
        return found

    def _rest(self, origin: Origin, connection: _Connection) -> None:
        """Keep ``connection`` for the next call to ``origin``, within the limits."""
        pool = self._pool
        now = asyncio.get_running_loop().time()
        connection.idle_since = now
        pool.by_origin.setdefault(origin, []).append(connection)
        pool.by_origin.move_to_end(origin)
        pool.count += 1
        if now - pool.swept_at > self._limits.idle_seconds:
            pool.swept_at = now
            for key, idle in list(pool.by_origin.items()):
                for stale in [c for c in idle if not c.usable(now, self._limits.idle_seconds)]:
                    idle.remove(stale)
                    pool.count -= 1
                    _close(stale)
                if not idle:
                    del pool.by_origin[key]
        while pool.count > self._limits.connections:
            key, oldest = next(iter(pool.by_origin.items()))
            _close(oldest.pop(0))
            pool.count -= 1
            if not oldest:
                del pool.by_origin[key]

    async def _open(self, url: URL) -> _Connection:
        """A new connection to ``url``'s origin, tunnelled through the proxy for https."""
        secure = url.scheme == "https"
        writer: Optional[asyncio.StreamWriter] = None
        try:
            if self._proxy is None:
                reader, writer = await asyncio.open_connection(
                    url.raw_host, url.port, ssl=self._tls() if secure else None,
                    server_hostname=url.raw_host if secure else None,
                )
            else:
                reader, writer = await asyncio.open_connection(self._proxy.raw_host, self._proxy.port)
                if secure:
                    await self._tunnel(reader, writer, url)
                    await writer.start_tls(self._tls(), server_hostname=url.raw_host)
        except (OSError, NoAnswer) as error:
            if writer is not None:
                writer.close()
            raise NotSent(f"no connection to {url.origin()}: {error}") from error
        return _Connection(reader, writer)

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: URL) -> None:
        """Ask the proxy for a tunnel to ``url``'s origin (CONNECT)."""
        host = f"[{url.raw_host}]" if ":" in url.raw_host else url.raw_host
        authority = f"{host}:{url.port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if self._proxy_authorization:
            lines.append(f"Proxy-Authorization: {self._proxy_authorization}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
        answer, _ = await read_answer(reader, "CONNECT")
        if answer.status != 200:
            raise NoAnswer(f"the proxy answered CONNECT with {answer.status}")

    def _tls(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context


def _request_bytes(
    method: str, url: URL, headers: Mapping[str, str], body: Optional[bytes],
    forwarded: bool, proxy_authorization: Optional[str],
) -> bytes:
    """The request as it goes on the wire; ``forwarded``: to an http proxy, which takes
    the whole URL as the target."""
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"not an HTTP method: {method!r}")
    target = str(url.with_fragment(None)) if forwarded else url.raw_path_qs
    lines = [f"{method} {target} HTTP/1.1", f"Host: {url.host_port_subcomponent}"]
    agent = False
    for name, value in headers.items():
        if not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"a header that cannot be sent: {name!r}")
        lowered = name.lower()
        if lowered not in _FRAMING:
            lines.append(f"{name}: {value}")
            agent = agent or lowered == "user-agent"
    if not agent:
        lines.append(f"User-Agent: {_USER_AGENT}")
    if body is not None or method in _BODY_METHODS:
        lines.append(f"Content-Length: {len(body or b'')}")
    if forwarded and proxy_authorization:
        lines.append(f"Proxy-Authorization: {proxy_authorization}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("utf-8") + (body or b"")


def _origin_text(origin: Origin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}"


def _close(connection: Optional[_Connection]) -> None:
    if connection is not None:
        connection.writer.close()
