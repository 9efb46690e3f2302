"""A TCP delay line on 127.0.0.1: forwards each connection to a target, every byte late.

Each direction holds what it reads for half the round trip before passing it on, so a
request and its answer take ``round_trip_ms`` longer, as over a network to a cloud store.

    python -m state_engine.testing.delay_proxy --target 127.0.0.1:10000 --round-trip-ms 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Optional

_READY = re.compile(r"delay proxy listening on 127\.0\.0\.1:(\d+)")
_CHUNK = 256 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy ``reader`` to ``writer``, each chunk written ``delay`` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue: "asyncio.Queue[tuple[float, bytes]]" = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    delivery = loop.create_task(deliver())
    try:
        while chunk := await reader.read(_CHUNK):
            queue.put_nowait((loop.time() + delay, chunk))
    except OSError:
        pass
    finally:
        queue.put_nowait((loop.time() + delay, b""))
        with contextlib.suppress(OSError, asyncio.CancelledError):
            await delivery


async def serve(target_host: str, target_port: int, round_trip_ms: float, port: int = 0) -> None:
    delay = round_trip_ms / 2000.0

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()
            return
        try:
            await asyncio.gather(
                _pump(client_reader, upstream_writer, delay),
                _pump(upstream_reader, client_writer, delay),
            )
        finally:
            for writer in (client_writer, upstream_writer):
                writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"delay proxy listening on 127.0.0.1:{bound} -> {target_host}:{target_port}", flush=True)
    async with server:
        await server.serve_forever()


@dataclass
class DelayProxy:
    """A delay proxy in a process of its own (so its work never runs on a measured loop)."""

    process: subprocess.Popen
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_delay_proxy(target_port: int, round_trip_ms: float, target_host: str = "127.0.0.1",
                      timeout: float = 15.0) -> DelayProxy:
    """Start a proxy to ``target_host:target_port`` adding ``round_trip_ms`` per round trip."""
    process = subprocess.Popen(
        [sys.executable, "-m", "state_engine.testing.delay_proxy", "--target",
         f"{target_host}:{target_port}", "--round-trip-ms", str(round_trip_ms)],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    line: Optional[str] = None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        match = _READY.search(line or "")
        if match:
            return DelayProxy(process, int(match.group(1)))
        if process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"the delay proxy did not start (last line: {line!r})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="host:port to forward to")
    parser.add_argument("--round-trip-ms", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(host or "127.0.0.1", int(port), args.round_trip_ms, args.port))


if __name__ == "__main__":
    main()
