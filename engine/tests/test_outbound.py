"""The outbound HTTP/1.1 client (state_engine.outbound) against real sockets: aiohttp
servers, servers that answer exact bytes, TLS with a certificate made for the test, and
proxies (forwarding and CONNECT). Which failures are ``NotSent`` (safe to send again),
which are ``NoAnswer``, and that connections are reused, bounded and let go."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import random
import ssl
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable, List, Tuple

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from state_engine.outbound import HttpClient, Limits, NoAnswer, NotSent, answers
from state_engine.testing.blackhole import Blackhole
from state_engine.testing.live_bot import free_port
from state_engine.testing.local_app import serving

Talk = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_server(talk: Talk, tls: ssl.SSLContext = None) -> AsyncIterator[Tuple[int, List[int]]]:
    """A server whose every connection ``talk`` handles byte by byte; yields its port and
    the client ports it was connected from."""
    peers: List[int] = []
    talks: List[asyncio.Task] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername")[1])
        talks.append(asyncio.current_task())
        with contextlib.suppress(Exception):
            await talk(reader, writer)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1], peers
    finally:
        server.close()
        for task in talks:
            task.cancel()
        await asyncio.gather(*talks, return_exceptions=True)


def answering(*answers: bytes) -> Talk:
    """Read one request head (and its body) per answer, then write the answer."""

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    await reader.readexactly(int(line.split(b":")[1]))
            writer.write(answer)
            await writer.drain()
        await reader.read()  # keep it open until the client goes

    return talk


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient()
    yield http
    await http.close()


async def test_calls_reuse_one_connection_and_send_what_was_asked(client: HttpClient) -> None:
    seen = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.method, request.raw_path, dict(request.headers), await request.read(),
                     request.transport.get_extra_info("peername")[1]))
        return web.json_response({"id": "1"}, headers={"X-Answer": "yes"})

    async with serving(handle) as url:
        for number in range(3):
            response = await client.request(
                "POST", f"{url}/v3/conversations/a%2Fb%20c/activities?x=1", {"X-Thing": f"t{number}"},
                b'{"n": 1}', timeout=5,
            )
            assert (response.status, response.body) == (200, b'{"id": "1"}')
            assert response.headers["x-answer"] == response.headers.get("X-ANSWER") == "yes"
        await client.request("DELETE", f"{url}/thing", {}, timeout=5)
    assert [s[1] for s in seen[:1]] == ["/v3/conversations/a%2Fb%20c/activities?x=1"]
    assert seen[0][2]["X-Thing"] == "t0" and seen[0][2]["Content-Length"] == "8"
    assert seen[0][3] == b'{"n": 1}'
    assert "Content-Length" not in seen[3][2] and "Accept-Encoding" not in seen[3][2]
    assert len({s[4] for s in seen}) == 1, "every call on the one kept-alive connection"


@pytest.mark.parametrize(
    "answer, body",
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n", b"abcde"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", b""),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx", b"x"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nSet: a\r\nset: b\r\n\r\nok", b"ok"),
    ],
)
async def test_answers_framed_every_allowed_way(client: HttpClient, answer: bytes, body: bytes) -> None:
    async with raw_server(answering(answer, OK)) as (port, peers):
        response = await client.request("GET", f"http://127.0.0.1:{port}/", {}, timeout=5)
        assert response.body == body
        assert (await client.request("GET", f"http://127.0.0.1:{port}/", {}, timeout=5)).body == b"ok"
    assert len(peers) == 1


async def test_an_answer_ended_by_closing_is_read_whole_and_the_connection_let_go(client: HttpClient) -> None:
    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 100_000)

    async with raw_server(talk) as (port, peers):
        for _ in range(2):
            assert len((await client.request("GET", f"http://127.0.0.1:{port}/", {}, timeout=5)).body) == 100_000
    assert len(peers) == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded: x\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000 + b"\r\n\r\n",
        b"",
    ],
)
async def test_a_malformed_answer_is_no_answer_and_the_connection_is_dropped(client: HttpClient, answer: bytes) -> None:
    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)

    async with raw_server(talk) as (port, _), raw_server(answering(OK)) as (healthy, _):
        with pytest.raises(NoAnswer):
            await client.request("GET", f"http://127.0.0.1:{port}/", {}, timeout=5)
        assert (await client.request("GET", f"http://127.0.0.1:{healthy}/", {}, timeout=5)).body == b"ok"


async def test_a_body_over_the_limit_is_refused(client: HttpClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(answers, "MAX_BODY_BYTES", 10)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
    for answer in (b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n" + b"x" * 11, chunked, b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 11):
        async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer: bytes = answer) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)

        async with raw_server(talk) as (port, _):
            with pytest.raises(NoAnswer, match="over 10"):
                await client.request("GET", f"http://127.0.0.1:{port}/", {}, timeout=5)


async def test_nothing_listening_is_not_sent(client: HttpClient) -> None:
    with pytest.raises(NotSent):
        await client.request("POST", f"http://127.0.0.1:{free_port()}/", {}, b"x", timeout=5)


async def test_no_answer_in_time_is_a_timeout_and_waiting_for_a_connection_is_not_sent() -> None:
    http = HttpClient(limits=Limits(connections=1))
    with Blackhole() as hole:
        held = asyncio.create_task(http.request("POST", hole.url, {}, b"x", timeout=1.5))
        await asyncio.sleep(0.2)
        with pytest.raises(NotSent, match="within 0.3 s"):
            await http.request("POST", hole.url, {}, b"x", timeout=0.3)
        with pytest.raises(TimeoutError):
            await held
        assert hole.accepted == 1
    await http.close()


async def test_an_origin_that_hangs_holds_only_its_share_of_the_connections() -> None:
    """Calls to a channel that never answers fill that origin's share; a call to another
    origin still gets a connection at once (it waited behind them for its whole timeout)."""
    http = HttpClient(limits=Limits(connections=8, per_origin=4))

    async def handle(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    with Blackhole() as hole:
        async with serving(handle) as url:
            hung = [asyncio.create_task(http.request("POST", hole.url, {}, b"x", timeout=3)) for _ in range(12)]
            await asyncio.sleep(0.3)
            started = asyncio.get_running_loop().time()
            answer = await http.request("GET", f"{url}/", {}, timeout=2)
            assert answer.status == 200 and asyncio.get_running_loop().time() - started < 1
            assert hole.accepted == 4
            await asyncio.gather(*hung, return_exceptions=True)
    assert not http._origin_gates, "no origin's gate outlives its calls"
    await http.close()


async def test_a_connection_the_server_closed_while_idle_is_not_used_again(client: HttpClient) -> None:
    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)  # kept alive by its headers, then closed anyway

    async with raw_server(talk) as (port, peers):
        for _ in range(3):
            assert (await client.request("PUT", f"http://127.0.0.1:{port}/", {}, b"x", timeout=5)).body == b"ok"
            await asyncio.sleep(0.05)
    assert len(peers) == 3


async def test_connection_close_and_long_rests_end_a_connection() -> None:
    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while b"/close" not in await reader.readuntil(b"\r\n\r\n"):
            writer.write(OK)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")

    http = HttpClient(limits=Limits(idle_seconds=0.2))
    async with raw_server(talk) as (port, peers):
        url = f"http://127.0.0.1:{port}"
        await http.request("GET", f"{url}/close", {}, timeout=5)
        await http.request("GET", url, {}, timeout=5)  # a second connection
        await http.request("GET", url, {}, timeout=5)  # the second again
        await asyncio.sleep(0.3)
        await http.request("GET", url, {}, timeout=5)  # a third: the second rested too long
    await http.close()
    assert len(peers) == 3


async def test_busy_connections_are_bounded_and_idle_ones_closed_on_close() -> None:
    busy = 0
    most = 0

    async def handle(request: web.Request) -> web.Response:
        nonlocal busy, most
        busy += 1
        most = max(most, busy)
        await asyncio.sleep(0.05)
        busy -= 1
        return web.Response(text="ok")

    http = HttpClient(limits=Limits(connections=2))
    async with serving(handle) as url:
        await asyncio.gather(*(http.request("GET", f"{url}/", {}, timeout=5) for _ in range(10)))
        idle = [c for pool in http._pool.by_origin.values() for c in pool]
        await http.close()
        assert all(c.writer.is_closing() for c in idle) and len(idle) == 2
    assert most == 2


async def test_a_cancelled_call_leaves_no_half_used_connection(client: HttpClient) -> None:
    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(0.3)
        writer.write(OK)
        await answering(OK)(reader, writer)

    async with raw_server(talk) as (port, peers):
        call = asyncio.create_task(client.request("GET", f"http://127.0.0.1:{port}/", {}, timeout=5))
        await asyncio.sleep(0.1)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.sleep(0.4)
        assert (await client.request("GET", f"http://127.0.0.1:{port}/", {}, timeout=5)).body == b"ok"
    assert len(peers) == 2


@pytest.mark.parametrize(
    "method, url, headers",
    [
        ("POST", "http://127.0.0.1:1/", {"X-Id": "a\r\nInjected: yes"}),
        ("POST", "http://127.0.0.1:1/", {"Bad Name": "x"}),
        ("GET\r\n", "http://127.0.0.1:1/", {}),
        ("GET", "ftp://127.0.0.1/", {}),
        ("GET", "/relative", {}),
    ],
)
async def test_what_must_not_be_sent_is_a_value_error(client: HttpClient, method: str, url: str, headers: dict) -> None:
    with pytest.raises(ValueError):
        await client.request(method, url, headers, timeout=5)


def _certificate(tmp_path: Path) -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1, and a client context trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return server, ssl.create_default_context(cafile=str(cert_file))


async def test_tls_is_verified(tmp_path: Path) -> None:
    server_tls, trusting = _certificate(tmp_path)
    async with raw_server(answering(OK, OK), tls=server_tls) as (port, peers):
        url = f"https://127.0.0.1:{port}/"
        with pytest.raises(NotSent, match="CERTIFICATE_VERIFY_FAILED"):
            await HttpClient().request("GET", url, {}, timeout=5)
        http = HttpClient(ssl_context=trusting)
        for _ in range(2):
            assert (await http.request("GET", url, {}, timeout=5)).body == b"ok"
        await http.close()
    assert len(peers) == 1  # the refused handshake never reached the server's handler


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_through_a_proxy_http_is_forwarded_and_https_tunnelled(tmp_path: Path) -> None:
    heads: List[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        if not head.startswith(b"CONNECT "):
            writer.write(OK)
            return
        host, port = head.split(b" ")[1].decode().rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server_tls, trusting = _certificate(tmp_path)
    async with raw_server(proxy) as (proxy_port, _), raw_server(answering(OK), tls=server_tls) as (port, _):
        http = HttpClient(proxy=f"http://me:p%40ss@127.0.0.1:{proxy_port}", ssl_context=trusting)
        assert (await http.request("GET", "http://example.test/a?b=1", {}, timeout=5)).body == b"ok"
        assert (await http.request("GET", f"https://127.0.0.1:{port}/x", {}, timeout=5)).body == b"ok"
        await http.close()
    assert heads[0].startswith(b"GET http://example.test/a?b=1 HTTP/1.1\r\n")
    assert b"Proxy-Authorization: Basic bWU6cEBzcw==\r\n" in heads[0]  # me:p@ss
    assert heads[1].startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n".encode())
    assert b"Proxy-Authorization: Basic bWU6cEBzcw==\r\n" in heads[1]


async def test_a_proxy_that_refuses_the_tunnel_is_not_sent() -> None:
    refusing = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
    async with raw_server(answering(refusing)) as (proxy_port, _):
        http = HttpClient(proxy=f"http://127.0.0.1:{proxy_port}")
        with pytest.raises(NotSent, match="407"):
            await http.request("GET", "https://example.test/", {}, timeout=5)
        await http.close()


async def test_after_close_calls_still_work_and_keep_no_connection() -> None:
    http = HttpClient()
    async with raw_server(answering(OK, OK)) as (port, peers):
        url = f"http://127.0.0.1:{port}/"
        await http.request("GET", url, {}, timeout=5)
        await http.close()
        await http.request("GET", url, {}, timeout=5)
        await http.request("GET", url, {}, timeout=5)
        assert not http._pool.by_origin
    assert len(peers) == 3


def test_a_proxy_must_be_plain_http_and_its_password_is_never_shown() -> None:
    with pytest.raises(ValueError, match="HTTPS_PROXY") as refused:
        HttpClient(proxy="https://me:secret@proxy.test:443")
    assert "secret" not in str(refused.value)


VALID_ANSWERS = [
    OK,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx",
    b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nbody until the end",
    b"HTTP/1.1 204 No Content\r\nETag: \"1\"\r\n\r\n",
]


def _mutated(chance: random.Random) -> bytes:
    answer = bytearray(chance.choice(VALID_ANSWERS))
    for _ in range(chance.randint(1, 4)):
        at = chance.randrange(len(answer) + 1)
        kind = chance.randrange(4)
        if kind == 0 and answer:
            answer[min(at, len(answer) - 1)] = chance.randrange(256)
        elif kind == 1:
            answer[at:at] = chance.choice([b"\r", b"\n", b"\0", b" ", b":", b"\r\n", b"\r\n\r\n", b"ffffffff", b"-1"])
        elif kind == 2:
            del answer[at:]
        else:
            answer[at:at] = answer[: chance.randrange(len(answer) + 1)]
    return bytes(answer)


async def test_whatever_bytes_come_back_the_answer_is_read_or_refused_as_no_answer() -> None:
    """3,000 mutations of valid answers, each followed by the connection's end: each is a
    Response or NoAnswer, never another error, and never a wait."""
    chance = random.Random(17)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(3000):
        reader = asyncio.StreamReader(limit=answers.MAX_HEAD_BYTES)
        reader.feed_data(_mutated(chance))
        reader.feed_eof()
        try:
            async with asyncio.timeout(1):
                await answers.read_answer(reader, "GET")
        except NoAnswer:
            outcomes["refused"] += 1
        else:
            outcomes["read"] += 1
    assert min(outcomes.values()) > 100, outcomes
