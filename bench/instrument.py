"""Bench-only probes that run inside a bot process: nothing here is product code.

``count_items`` wraps a ``StateStorage``'s ``ItemStore`` (calls, items, bytes, and each
request's storage rounds on its critical path); ``LoopLagMonitor``, ``GcPauses`` and
``ConflictCounter`` watch the process; ``attach`` serves them on ``/bench/stats``.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple

from aiohttp import web


class TurnTrace:
    """The storage calls made while one request was handled: (start, end) per call."""

    def __init__(self) -> None:
        self.calls: List[Tuple[float, float]] = []
        #: When the turn's save returned: a call still running then is off the critical path.
        self.saved_at = float("inf")

    def rounds(self) -> int:
        """How many storage waits the turn sat through one after another: overlapping
        calls count once, calls that ended after its save returned not at all."""
        count, busy_until = 0, float("-inf")
        for start, end in sorted(c for c in self.calls if c[1] <= self.saved_at):
            if start >= busy_until:
                count += 1
            busy_until = max(busy_until, end)
        return count


_IN_PUT: contextvars.ContextVar[bool] = contextvars.ContextVar("bench_in_put", default=False)
_TRACE: contextvars.ContextVar[Optional[TurnTrace]] = contextvars.ContextVar("bench_trace", default=None)


class StorageCounts:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.rounds: Counter[int] = Counter()

        self.cpu_started = process_cpu()

    def reset(self) -> None:
        self.counts.clear()
        self.rounds.clear()
        self.cpu_started = process_cpu()

    def note(self, operation: str, items: int, size: int, started: float) -> None:
        self.counts[f"{operation}_calls"] += 1
        self.counts[f"{operation}_items"] += items
        self.counts[f"{operation}_bytes"] += size
        trace = _TRACE.get()
        if trace is not None:
            trace.calls.append((started, time.perf_counter()))

    def snapshot(self) -> Dict[str, Any]:
        return {
            **self.counts,
            "rounds": {str(k): v for k, v in sorted(self.rounds.items())},
            "turns": sum(self.rounds.values()),
            # The whole process's CPU (every thread, and its workers) since the window began.
            "cpu_seconds": process_cpu() - self.cpu_started,
        }


def process_cpu() -> float:
    """CPU seconds of this process and of its live child processes (the SQLite store's
    worker does the store's work there), read from /proc where there is one."""
    total = time.process_time()
    try:
        children = Path(f"/proc/self/task/{os.getpid()}/children").read_text().split()
    except OSError:
        return total
    for child in children:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it has just ended
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


STORAGE_COUNTS = StorageCounts()


def item_kind(item_id: str) -> str:
    """What an item holds: a conversation's partition, a user's state, or a membership entry."""
    if "/users/" in item_id:
        return "membership" if "/conversations/" in item_id else "user"
    return "conversation" if "/conversations/" in item_id else "other"


def count_items(storage: Any) -> Any:
    """Wrap ``storage.items``' get/put/put_all with counters (the instance only); returns ``storage``."""
    items = storage.items
    get, put, put_all = items.get, items.put, items.put_all

    async def counted_get(item_ids: Sequence[str]) -> Dict[str, Any]:
        started = time.perf_counter()
        found = await get(item_ids)
        size = 0
        for item_id, item in found.items():
            size += len(item.text)
            STORAGE_COUNTS.counts[f"get_bytes:{item_kind(item_id)}"] += len(item.text)
        STORAGE_COUNTS.note("get", len(item_ids), size, started)
        return found

    async def counted_put(one: Any) -> Optional[str]:
        started = time.perf_counter()
        token = _IN_PUT.set(True)  # SQLite's and memory's put is a put_all of one
        try:
            e_tag = await put(one)
        finally:
            _IN_PUT.reset(token)
        STORAGE_COUNTS.note("put", 1, len(one.text or ""), started)
        return e_tag

    async def counted_put_all(puts: Sequence[Any]) -> Dict[str, Optional[str]]:
        if _IN_PUT.get():
            return await put_all(puts)
        started = time.perf_counter()
        e_tags = await put_all(puts)
        STORAGE_COUNTS.note("put_all", len(puts), sum(len(p.text or "") for p in puts), started)
        return e_tags

    items.get, items.put = counted_get, counted_put
    if items.atomic_batch:
        items.put_all = counted_put_all
    commit = storage.commit

    async def traced_commit(changes: Sequence[Any]) -> Dict[str, str]:
        try:
            return await commit(changes)
        finally:
            trace = _TRACE.get()
            if trace is not None:
                trace.saved_at = time.perf_counter()

    storage.commit = traced_commit
    return storage


def count_sdk_storage(storage: Any) -> Any:
    """The same counts for an SDK ``Storage`` (the docs' wiring): read/write/delete calls."""
    read, write, delete = storage.read, storage.write, storage.delete

    async def counted_read(keys: List[str]) -> Dict[str, Any]:
        started = time.perf_counter()
        found = await read(keys)
        STORAGE_COUNTS.note("get", len(keys), 0, started)
        return found

    async def counted_write(changes: Dict[str, Any]) -> None:
        started = time.perf_counter()
        await write(changes)
        if changes:
            STORAGE_COUNTS.note("put", len(changes), 0, started)

    async def counted_delete(keys: List[str]) -> None:
        started = time.perf_counter()
        await delete(keys)
        STORAGE_COUNTS.note("put", len(keys), 0, started)

    storage.read, storage.write, storage.delete = counted_read, counted_write, counted_delete
    return storage


@web.middleware
async def trace_turns(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
    """Collect the storage calls of each /api/messages request into its trace."""
    if request.path != "/api/messages":
        return await handler(request)
    trace = TurnTrace()
    token = _TRACE.set(trace)
    try:
        return await handler(request)
    finally:
        _TRACE.reset(token)
        STORAGE_COUNTS.rounds[trace.rounds()] += 1


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
        return _summary(self.lags)


def _summary(values: List[float]) -> Dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"samples": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"samples": len(ordered), "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": ordered[-1] * 1000}


class GcPauses:
    """Times every collection through ``gc.callbacks``, by generation: the loop's pause
    (wall time) and the collector's own CPU (thread time). On a shared machine the two
    differ by the time the process was off the core in between."""

    def __init__(self) -> None:
        self.pauses: Dict[int, List[float]] = {0: [], 1: [], 2: []}
        self.cpu: Dict[int, List[float]] = {0: [], 1: [], 2: []}
        self._started = (0.0, 0.0)

    def __call__(self, phase: str, info: Dict[str, int]) -> None:
        if phase == "start":
            self._started = (time.perf_counter(), time.thread_time())
        else:
            wall, cpu = self._started
            self.pauses[info["generation"]].append(time.perf_counter() - wall)
            self.cpu[info["generation"]].append(time.thread_time() - cpu)

    def install(self) -> None:
        gc.callbacks.append(self)

    def reset(self) -> None:
        for times in (*self.pauses.values(), *self.cpu.values()):
            times.clear()

    def summary(self) -> Dict[str, Any]:
        return {
            str(generation): {**_summary(pauses), "max_cpu_ms": max(self.cpu[generation], default=0.0) * 1000}
            for generation, pauses in self.pauses.items()
        }


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
    gc_pauses = GcPauses()
    gc_pauses.install()
    conflicts = ConflictCounter()
    runner_logger = logging.getLogger("state_engine.turns.runner")
    runner_logger.addHandler(conflicts)
    runner_logger.setLevel(logging.INFO)
    app.middlewares.append(trace_turns)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(
            {
                "storage": STORAGE_COUNTS.snapshot(),
                "loop_lag": monitor.summary(),
                "gc": gc_pauses.summary(),
                "conflicts": conflicts.conflicts,
                "gave_up": conflicts.gave_up,
            }
        )

    async def reset(_: web.Request) -> web.Response:
        STORAGE_COUNTS.reset()
        monitor.lags.clear()
        gc_pauses.reset()
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
