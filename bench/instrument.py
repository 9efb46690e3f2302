"""Bench-only probes that run inside a bot process: nothing here is product code.

* ``count_storage``: counts the reads and writes a store receives, per state
  scope, by wrapping the instance's ``read``/``write``/``delete`` methods (the
  store's class and type stay what the product made, so nothing else changes).
* ``LoopLagMonitor``: a task that asks to wake every few milliseconds and
  records how late it wakes up: the time a callback waits for the event loop.
* ``ConflictCounter``: counts the turn runner's ``turn conflict`` log records.
* ``attach``: adds ``GET /bench/stats`` and ``POST /bench/reset`` to an app and
  starts the monitor with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any, Dict, List, Optional

from aiohttp import web


def scope_of(key: str) -> str:
    """Which state scope a storage key belongs to (the SDK's key layouts)."""
    if key.endswith("/log"):
        return "log"
    if "/conversations/" in key:
        return "private" if "/users/" in key else "conversation"
    if "/users/" in key:
        return "user"
    return "other"


class StorageCounts:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def reset(self) -> None:
        self.counts.clear()

    def note(self, operation: str, keys: List[str]) -> None:
        if not keys:
            return  # our stores return at once on an empty call: no I/O to count
        self.counts[f"{operation}_calls"] += 1
        for key in keys:
            self.counts[f"{operation}_keys"] += 1
            self.counts[f"{operation}:{scope_of(key)}"] += 1


STORAGE_COUNTS = StorageCounts()


def count_storage(storage: Any) -> Any:
    """Wrap this store instance's read/write/delete with counters; returns it."""
    read, write, delete = storage.read, storage.write, storage.delete

    async def counted_read(keys: List[str]) -> Dict[str, Any]:
        STORAGE_COUNTS.note("read", list(keys))
        return await read(keys)

    async def counted_write(changes: Dict[str, Any]) -> None:
        STORAGE_COUNTS.note("write", list(changes))
        await write(changes)

    async def counted_delete(keys: List[str]) -> None:
        STORAGE_COUNTS.note("delete", list(keys))
        await delete(keys)

    storage.read, storage.write, storage.delete = counted_read, counted_write, counted_delete
    return storage


class LoopLagMonitor:
    """Records how late the event loop runs a timer that should fire every ``interval``."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.lags: List[float] = []
        self._task: Optional[asyncio.Task] = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval)
            self.lags.append(max(0.0, loop.time() - start - self.interval))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def summary(self) -> Dict[str, float]:
        lags = sorted(self.lags)
        if not lags:
            return {"samples": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
        pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))] * 1000  # noqa: E731
        return {"samples": len(lags), "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": lags[-1] * 1000}


class ConflictCounter(logging.Handler):
    """Counts the turn runner's INFO ``turn conflict`` and WARNING ``turn gave up`` lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.conflicts = 0
        self.gave_up = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = str(record.msg)
        if message.startswith("turn conflict"):
            self.conflicts += 1
        elif message.startswith("turn gave up"):
            self.gave_up += 1


def attach(app: web.Application) -> None:
    """Serve the probes' numbers on ``/bench/stats``; ``/bench/reset`` starts a new window."""
    monitor = LoopLagMonitor()
    conflicts = ConflictCounter()
    runner_logger = logging.getLogger("state_engine.turns.runner")
    runner_logger.addHandler(conflicts)
    runner_logger.setLevel(logging.INFO)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "storage": dict(STORAGE_COUNTS.counts),
                "loop_lag": monitor.summary(),
                "conflicts": conflicts.conflicts,
                "gave_up": conflicts.gave_up,
            }
        )

    async def reset(_: web.Request) -> web.Response:
        STORAGE_COUNTS.reset()
        monitor.lags.clear()
        conflicts.conflicts = conflicts.gave_up = 0
        return web.json_response({})

    async def start_monitor(_: web.Application) -> None:
        monitor.start()

    async def stop_monitor(_: web.Application) -> None:
        await monitor.stop()

    app.router.add_get("/bench/stats", stats)
    app.router.add_post("/bench/reset", reset)
    app.on_startup.append(start_monitor)
    app.on_cleanup.append(stop_monitor)
