"""The default backend: one SQLite file, shared safely by several processes (WAL mode).

Every call on the file is made by the store's worker process (``sqlite_worker``), never on
the event loop: a disk that stops answering must not stop every conversation with it. A
turn's partitions are written in one transaction there: all or none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..conditions import Expect
from ..errors import (
    PreconditionFailedError,
    StorageConfigurationError,
    StorageError,
    StorageUnavailableError,
    WriteOutcomeUnknownError,
)
from ..settings import setting
from . import sqlite_worker as worker
from .items import Item, ItemStore, Put

logger = logging.getLogger(__name__)

#: Free space under which the disk counts as full: a turn's write may need this much.
_LOW_DISK_BYTES = 4 * 1024 * 1024
#: How long past the busy timeout a call may take before the disk counts as not answering.
DISK_GRACE_SECONDS = 1.0
#: How long the worker may take to finish its calls when the store closes.
_CLOSE_SECONDS = 2.0
#: A worker that ended sooner than this after it started is not started again before then
#: (one that cannot run must not be started for every call).
RESTART_SECONDS = 1.0


@dataclass(frozen=True)
class SqliteSettings:
    path: str = setting(
        "SQLITE_PATH", str, "data/bot-state.sqlite3",
        "SQLite file (relative to the project folder); several bot processes on one machine may share it.",
    )
    busy_timeout: float = setting(
        "SQLITE_BUSY_TIMEOUT", float, 5.0,
        "Seconds a save waits for another process's lock before the store counts as unavailable.",
        minimum=0, maximum=60,
    )


@dataclass
class _Call:
    future: "asyncio.Future[worker.Fields]"
    lane: str
    started: float


class _Worker:
    """The worker process, and the calls waiting for its answers (kept until answered,
    even once given up on, so that a lane stuck on one of them is known)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.started = time.monotonic()
        self._calls: Dict[str, _Call] = {}
        self._ids = 0
        assert process.stdout is not None
        self._answers = asyncio.get_running_loop().create_task(self._read_answers(process.stdout))

    @property
    def alive(self) -> bool:
        return not self._answers.done()

    @property
    def pid(self) -> int:
        return self._process.pid

    def stuck_for(self, lane: str, timeout: float) -> Optional[float]:
        """How long the oldest unanswered call of ``lane`` has run, once past ``timeout``."""
        started = min((call.started for call in self._calls.values() if call.lane == lane), default=None)
        running = None if started is None else time.monotonic() - started
        return running if running is not None and running > timeout else None

    async def call(self, lane: str, fields: Sequence[Optional[str]], timeout: float) -> worker.Fields:
        """The answer's fields (after the call id); ``TimeoutError`` when it takes longer."""
        assert self._process.stdin is not None
        if not self.alive:
            raise BrokenPipeError("the SQLite worker process ended")
        self._ids += 1
        call_id = str(self._ids)
        loop = asyncio.get_running_loop()
        call = _Call(loop.create_future(), lane, time.monotonic())
        self._calls[call_id] = call
        self._process.stdin.write(worker.pack([call_id, lane, *fields]))
        timer = loop.call_later(timeout, _give_up, call.future)
        try:
            return await call.future
        finally:
            timer.cancel()

    async def _read_answers(self, answers: asyncio.StreamReader) -> None:
        try:
            while True:
                head = await answers.readexactly(worker.HEADER.size)
                fields = worker.unpack(await answers.readexactly(worker.HEADER.unpack(head)[0]))
                call = self._calls.pop(fields[0] or "", None)
                if call is not None and not call.future.done():
                    call.future.set_result(fields[1:])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for call in self._calls.values():  # the worker has ended: nothing more will answer
                if not call.future.done():
                    call.future.set_exception(BrokenPipeError("the SQLite worker process ended"))
            self._calls.clear()

    async def close(self) -> None:
        """Let the worker finish the calls it has, then end (or be ended, if stuck). A
        worker inside a call to a disk that does not answer cannot end even when killed:
        then it is left to the system, and the bot stops all the same."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), _CLOSE_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            try:
                await asyncio.wait_for(self._process.wait(), _CLOSE_SECONDS)
            except TimeoutError:
                logger.warning("SQLite worker %d did not end: its disk is not answering", self.pid)
                self._answers.cancel()
                return
        await self._answers


def _give_up(future: "asyncio.Future[worker.Fields]") -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class SqliteItems(ItemStore):
    """Items as rows of one table in a SQLite file."""

    atomic_batch = True
    #: Commits between two checkpoints (near SQLite's own default, counted in pages).
    commits_per_checkpoint = 300
    #: The worker process's program (tests may run one of their own around it).
    worker_script = Path(worker.__file__)

    def __init__(self, settings: SqliteSettings, request_timeout: float = 3.0) -> None:
        """Waiting for another process's lock is bounded by SQLITE_BUSY_TIMEOUT and by
        ``request_timeout`` (the turn's budget for one storage round trip), whichever is
        less; a call that takes ``DISK_GRACE_SECONDS`` longer than that counts as the disk
        not answering."""
        self._path = Path(settings.path)
        self._busy_timeout = min(settings.busy_timeout, request_timeout)
        self._call_timeout = self._busy_timeout + DISK_GRACE_SECONDS
        self._worker: Optional[_Worker] = None
        self._starting = asyncio.Lock()
        self._check_path()

    def _check_path(self) -> None:
        """A path that cannot work stops start-up, naming SQLITE_PATH (not the first turn)."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            sqlite3.connect(self._path).close()
        except (OSError, sqlite3.Error) as error:
            raise StorageConfigurationError(f"SQLITE_PATH={self._path}: cannot open the database ({error})") from error

    @property
    def path(self) -> Path:
        return self._path

    @property
    def worker_pid(self) -> Optional[int]:
        """The worker process's id while one runs (for operators and tests)."""
        return self._worker.pid if self._worker is not None and self._worker.alive else None

    async def _running(self) -> _Worker:
        """The worker process, started on first use and again if it has ended."""
        if self._worker is not None and self._worker.alive:
            return self._worker
        async with self._starting:
            if self._worker is None or not self._worker.alive:
                if self._worker is not None and time.monotonic() - self._worker.started < RESTART_SECONDS:
                    raise StorageUnavailableError(
                        f"SQLite store {self._path}: its worker process ended as soon as it started"
                    )
                arguments = [str(self._path), str(self._busy_timeout), str(self.commits_per_checkpoint)]
                try:
                    process = await asyncio.create_subprocess_exec(
                        sys.executable, str(self.worker_script), *arguments,
                        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                    )
                except OSError as error:
                    raise StorageUnavailableError(f"SQLite store {self._path}: no worker process ({error})") from error
                self._worker = _Worker(process)
        return self._worker

    async def _call(self, lane: str, operation: str, args: Sequence[Optional[str]]) -> worker.Fields:
        """One call's results, its failures in the engine's vocabulary. A write that got no
        answer (in time, or at all) may still land: ``WriteOutcomeUnknownError``."""
        running = await self._running()
        stuck = running.stuck_for(lane, self._call_timeout)
        if stuck is not None:
            raise StorageUnavailableError(f"SQLITE_PATH={self._path}: the disk has not finished a call for {stuck:.0f} s")
        try:
            kind, *results = await running.call(lane, [operation, *args], self._call_timeout)
        except (TimeoutError, BrokenPipeError) as error:
            detail = (
                f"SQLITE_PATH={self._path}: the disk did not answer within {self._call_timeout:g} s"
                if isinstance(error, TimeoutError) else f"SQLite store {self._path}: {error}"
            )
            if operation == "put":
                raise WriteOutcomeUnknownError(f"{detail}; the write may still land") from None
            raise StorageUnavailableError(detail) from None
        if kind != worker.OK:
            raise self._refusal(kind or "", results)
        return results

    def _refusal(self, kind: str, results: worker.Fields) -> StorageError:
        detail = results[0] if results else ""
        if kind == worker.PRECONDITION:
            return PreconditionFailedError(detail or "")
        if kind == worker.FULL:
            return StorageUnavailableError(f"SQLITE_PATH={self._path}: the disk is full")
        if kind == worker.BUSY:
            return StorageUnavailableError(f"SQLite store {self._path} is locked by another connection: {detail}")
        if kind == worker.CONFIGURATION:
            return StorageConfigurationError(f"SQLITE_PATH={self._path}: {detail}")
        return StorageUnavailableError(f"SQLite store {self._path}: {detail}")

    async def get(self, item_ids: Sequence[str]) -> Dict[str, Item]:
        if not item_ids:
            return {}
        rows = await self._call(worker.READS, "get", item_ids)
        return {rows[at] or "": Item(rows[at + 1] or "", rows[at + 2] or "") for at in range(0, len(rows), 3)}

    async def put(self, put: Put) -> Optional[str]:
        return (await self.put_all([put]))[put.item_id]

    async def put_all(self, puts: Sequence[Put]) -> Dict[str, Optional[str]]:
        e_tags = {put.item_id: None if put.text is None else secrets.token_hex(8) for put in puts}
        fields: List[Optional[str]] = []
        for put in puts:
            if put.text is None and put.condition.expect is Expect.ABSENT:
                raise ValueError("deleting under 'absent' deletes nothing: leave the put out")
            fields += [put.item_id, put.text, put.condition.expect.value, put.condition.e_tag, e_tags[put.item_id]]
        try:
            await self._call(worker.WRITES, "put", fields)
        except PreconditionFailedError as failed:
            lost = next(put for put in puts if put.item_id == failed.key)
            raise PreconditionFailedError(lost.item_id, lost.condition.failure()) from None
        return e_tags

    async def list_ids(self, prefix: str) -> List[str]:
        return [item_id or "" for item_id in await self._call(worker.READS, "list", [prefix])]

    async def ping(self) -> None:
        """Healthy means a turn can be saved: a write commits (another writer holding the
        lock, a read-only or frozen disk would stop it) and the disk has room for a turn's."""
        [free] = await self._call(worker.WRITES, "ping", [])
        if free and int(free) < _LOW_DISK_BYTES:
            raise StorageUnavailableError(
                f"SQLITE_PATH={self._path}: the disk is full ({int(free) // 1024} KiB free)"
            )

    async def erase_deleted(self) -> None:
        """Empty the write-ahead log, whose older frames still hold what was deleted since
        (the file itself overwrites deleted data: ``secure_delete``)."""
        await self._call(worker.WRITES, "erase", [])

    async def close(self) -> None:
        running, self._worker = self._worker, None
        if running is not None:
            await running.close()
