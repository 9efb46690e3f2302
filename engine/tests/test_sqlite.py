"""What only the SQLite backend must show: several processes on one file, transactions
that roll back whole, an event loop that never waits for the file (locks and the disk
are waited for in the store's worker process), a WAL kept short, a full disk reported
before a turn fails on it, and a frozen disk costing each call its timeout at most."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, List, Tuple, TypeVar

import pytest

from state_engine.conditions import ABSENT, ANY, if_match
from state_engine.errors import (
    PreconditionFailedError,
    StorageConfigurationError,
    StorageUnavailableError,
    WriteOutcomeUnknownError,
)
from state_engine.stores import StateStorage, sqlite_storage
from state_engine.stores.items import Put
from state_engine.stores.sqlite import RESTART_SECONDS, SqliteItems, SqliteSettings
from state_engine.testing.loop_lag import max_loop_lag
from state_engine.testing.plugin import FreezableDisk, fill
from state_engine.testing.sqlite_lock import WriteLock

T = TypeVar("T")
ROUNDS = 15
ORDER = {"toppings": ["olives"]}


async def toppings(storage: StateStorage) -> List[str]:
    return (await storage.read(["order"]))["order"]["toppings"]


def _writer(path: str, name: str, barrier: Any, ready: Any, results: Any) -> None:
    """In its own process: each round, read the record, wait for the other writer,
    then write back with the e_tag both read. Report who won each round."""

    async def main() -> None:
        storage = sqlite_storage(path)
        for round_number in range(ROUNDS):
            item = (await storage.read(["order"]))["order"]
            ready.wait()
            barrier.wait()
            item["toppings"].append(f"{name}-{round_number}")
            try:
                await storage.write({"order": item})
                results.put((round_number, name, "won"))
            except PreconditionFailedError:
                results.put((round_number, name, "lost"))
            ready.wait()
        await storage.close()

    asyncio.run(main())


async def _on_file(path: str, work: Callable[[StateStorage], Awaitable[T]]) -> T:
    storage = sqlite_storage(path)
    try:
        return await work(storage)
    finally:
        await storage.close()


def test_two_processes_same_etag_exactly_one_wins(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite3")
    asyncio.run(_on_file(path, lambda storage: storage.write({"order": {"toppings": []}})))
    ctx = mp.get_context("spawn")
    barrier, ready, results = ctx.Barrier(2), ctx.Barrier(2), ctx.Queue()
    writers = [
        ctx.Process(target=_writer, args=(path, name, barrier, ready, results)) for name in ("a", "b")
    ]
    for writer in writers:
        writer.start()
    outcomes = [results.get(timeout=60) for _ in range(2 * ROUNDS)]
    for writer in writers:
        writer.join(30)
        assert writer.exitcode == 0

    for round_number in range(ROUNDS):
        this_round = sorted(o[2] for o in outcomes if o[0] == round_number)
        assert this_round == ["lost", "won"], f"round {round_number}: {this_round}"
    winners = [f"{o[1]}-{o[0]}" for o in sorted(outcomes) if o[2] == "won"]
    assert asyncio.run(_on_file(path, toppings)) == winners


async def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    first = sqlite_storage(path)
    await first.write({"order": {"toppings": ["ham"]}})
    await first.close()
    second = sqlite_storage(path)
    assert await toppings(second) == ["ham"]
    await second.close()


def test_an_unusable_path_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    """Refused when the store is made (at start-up), not at the first turn."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(StorageConfigurationError, match="SQLITE_PATH"):
        sqlite_storage(blocker / "state.sqlite3")


async def test_a_batch_across_partitions_with_one_failed_condition_writes_nothing(
    tmp_path: Path,
) -> None:
    """Every statement before the failing one ran inside the transaction; all roll back."""
    items = SqliteItems(SqliteSettings(str(tmp_path / "state.sqlite3")))
    try:
        tags = await items.put_all(
            [Put("a", '{"v":1}', ABSENT), Put("b", '{"v":1}', ABSENT), Put("e", '{"v":1}', ABSENT)]
        )
        await items.put(Put("b", '{"v":2}', if_match(tags["b"])))
        before = await items.get(["a", "b", "e"])
        with pytest.raises(PreconditionFailedError, match="'b'"):
            await items.put_all(
                [
                    Put("a", '{"v":99}', if_match(tags["a"])),
                    Put("c", '{"v":99}', ANY),
                    Put("d", '{"v":99}', ABSENT),
                    Put("e", None, ANY),
                    Put("b", '{"v":99}', if_match(tags["b"])),  # stale
                ]
            )
        assert await items.get(["a", "b", "c", "d", "e"]) == before
    finally:
        await items.close()


# --- the event loop never waits on SQLite ------------------------------------------------


@pytest.fixture
async def opened(tmp_path: Path) -> AsyncIterator[Tuple[StateStorage, WriteLock]]:
    storage = sqlite_storage(tmp_path / "state.sqlite3", busy_timeout=5)
    await storage.write({"order": ORDER})
    other = WriteLock(tmp_path / "state.sqlite3")
    yield storage, other
    other.close()
    await storage.close()


async def test_a_write_waits_for_a_locked_file_without_stalling_the_loop(
    opened: Tuple[StateStorage, WriteLock],
) -> None:
    storage, other = opened
    other.take()
    asyncio.get_running_loop().call_later(0.3, other.release)

    order = (await storage.read(["order"]))["order"]
    order["toppings"].append("basil")
    lag, seconds = await max_loop_lag(storage.write({"order": order}))

    assert seconds >= 0.25, "the write did not wait for the lock"
    assert lag < 0.05, f"event loop blocked for {lag * 1000:.1f} ms"
    assert await toppings(storage) == ["olives", "basil"]


async def test_reads_answer_while_another_connection_holds_the_write_lock(
    opened: Tuple[StateStorage, WriteLock],
) -> None:
    storage, other = opened
    other.take()
    other.connection.execute("UPDATE store_items SET document = '{}' WHERE key = 'order'")

    lag, seconds = await max_loop_lag(storage.read(["order"]))

    assert seconds < 0.1 and lag < 0.05
    assert await toppings(storage) == ["olives"]  # committed data only


async def test_a_lock_held_past_the_busy_timeout_is_unavailable_and_changes_nothing(
    tmp_path: Path,
) -> None:
    storage = sqlite_storage(tmp_path / "state.sqlite3", busy_timeout=0.2)
    await storage.write({"order": ORDER})
    other = WriteLock(tmp_path / "state.sqlite3")
    other.take()
    try:
        order = (await storage.read(["order"]))["order"]
        order["toppings"].append("basil")
        lag, _ = await max_loop_lag(_expect_unavailable(storage.write({"order": order}), "locked"))
        assert lag < 0.05, f"event loop blocked for {lag * 1000:.1f} ms"
    finally:
        other.close()
    assert await toppings(storage) == ["olives"]
    await storage.close()


async def _expect_unavailable(work: Awaitable[object], says: str) -> StorageUnavailableError:
    with pytest.raises(StorageUnavailableError, match=says) as refused:
        await work
    return refused.value


def _wal_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def _wal_after_commits(path: Path, commits_per_checkpoint: int, commits: int = 600) -> int:
    items = SqliteItems(SqliteSettings(str(path)))
    items.commits_per_checkpoint = commits_per_checkpoint
    storage = StateStorage(items)
    for number in range(commits):
        await storage.write({"log": {"number": number, "text": "x" * 3000}})
        await asyncio.sleep(0.001)  # as between turns
    await asyncio.sleep(0.2)
    wal = _wal_bytes(path)
    await storage.close()
    return wal


async def test_the_wal_is_checkpointed(tmp_path: Path) -> None:
    """Automatic checkpoints are off (they would race the writes); the worker runs one
    every ``commits_per_checkpoint`` commits, so the WAL keeps being rewound. Without
    that it grows with every commit (about 4 kB each here)."""
    checkpointed = await _wal_after_commits(tmp_path / "checkpointed.sqlite3", 20)
    never = await _wal_after_commits(tmp_path / "never.sqlite3", 1_000_000)

    assert never > 2_000_000, f"the test wrote too little to tell: {never} bytes of WAL"
    assert checkpointed * 4 < never, f"WAL {checkpointed} bytes with checkpoints, {never} without"


async def test_a_worker_process_that_ended_is_started_again(tmp_path: Path) -> None:
    """The process SQLite's calls are made in is killed (out of memory, say): the next
    call starts another, and nothing is lost."""
    items = SqliteItems(SqliteSettings(str(tmp_path / "state.sqlite3")))
    storage = StateStorage(items)
    try:
        await storage.write({"order": ORDER})
        first = items.worker_pid
        assert first is not None
        await asyncio.sleep(RESTART_SECONDS)  # it ran a while: not one that cannot run
        os.kill(first, signal.SIGKILL)
        await asyncio.sleep(0.2)  # its end is seen
        assert await toppings(storage) == ["olives"]
        assert items.worker_pid not in (None, first)
    finally:
        await storage.close()


async def test_a_worker_that_cannot_run_is_started_once_a_second_at_most(tmp_path: Path) -> None:
    """Every call fails, as unavailable, without a process started for each."""
    starts = tmp_path / "starts"
    script = tmp_path / "broken_worker.py"
    script.write_text(f"open({str(starts)!r}, 'a').write('x')\nraise SystemExit(1)\n")
    items = SqliteItems(SqliteSettings(str(tmp_path / "state.sqlite3")))
    items.worker_script = script
    try:
        for _ in range(20):
            with pytest.raises(StorageUnavailableError):
                await items.get(["order"])
            await asyncio.sleep(0.02)
    finally:
        await items.close()
    assert 1 <= len(starts.read_text()) <= 2, f"started {len(starts.read_text())} times in 0.4 s"


# --- a full disk ----------------------------------------------------------------------------


async def test_ping_says_the_disk_is_full_and_a_write_on_it_changes_nothing(small_disk: Path) -> None:
    path = small_disk / "state.sqlite3"
    storage = sqlite_storage(path)
    try:
        await storage.write({"order": ORDER})
        await storage.ping()
        fill(small_disk / "filler")

        full = await _expect_unavailable(storage.ping(), "full")
        assert f"SQLITE_PATH={path}" in str(full)
        order = (await storage.read(["order"]))["order"]
        order["toppings"].append("x" * 200_000)
        refused = await _expect_unavailable(storage.write({"order": order}), "full")
        assert f"SQLITE_PATH={path}" in str(refused)

        (small_disk / "filler").unlink()
        await storage.ping()
        assert await toppings(storage) == ["olives"]
        order = (await storage.read(["order"]))["order"]
        order["toppings"].append("basil")
        await storage.write({"order": order})
        assert await toppings(storage) == ["olives", "basil"]
    finally:
        await storage.close()


# --- a frozen disk --------------------------------------------------------------------------


async def test_a_frozen_disk_never_stalls_the_loop_and_each_call_ends_in_time(
    freezable_disk: FreezableDisk,
) -> None:
    """Writes to the file wait until the disk thaws: the write in flight is unknown (it
    lands after the thaw), the health check and later writes are refused at once, a read
    answers or is refused within its timeout; the loop is never blocked for any of it."""
    storage = sqlite_storage(freezable_disk.path / "state.sqlite3", busy_timeout=0.5)
    try:
        await storage.write({"order": ORDER})
        order = (await storage.read(["order"]))["order"]
        order["toppings"].append("basil")
        freezable_disk.freeze()
        try:
            lag, seconds = await max_loop_lag(_expect(storage.write({"order": order}), WriteOutcomeUnknownError))
            assert seconds < 4 and lag < 0.05, (seconds, lag)
            lag, seconds = await max_loop_lag(_expect_unavailable(storage.ping(), "disk"))
            assert seconds < 0.5 and lag < 0.05, (seconds, lag)
            later = {"order": {"toppings": ["ham"]}}
            lag, seconds = await max_loop_lag(_expect_unavailable(storage.write(later), "disk"))
            assert seconds < 0.5 and lag < 0.05, (seconds, lag)
            lag, seconds = await max_loop_lag(_read_or_refused(storage))
            assert seconds < 2 and lag < 0.05, (seconds, lag)
        finally:
            freezable_disk.thaw()
        await _healthy(storage)
        assert await toppings(storage) == ["olives", "basil"]  # "unknown" was the truth
        order = (await storage.read(["order"]))["order"]
        order["toppings"].append("ham")
        await storage.write({"order": order})
        assert await toppings(storage) == ["olives", "basil", "ham"]
    finally:
        await storage.close()


async def _read_or_refused(storage: StateStorage) -> None:
    """What was committed, or the store unavailable (a reader writes to the WAL index)."""
    try:
        assert await toppings(storage) == ["olives"]
    except StorageUnavailableError as refused:
        assert "disk" in str(refused)


async def _expect(work: Awaitable[object], error: type) -> None:
    with pytest.raises(error):
        await work


async def _healthy(storage: StateStorage, within: float = 10.0) -> None:
    """Wait for the store's health check to pass (its worker finishes what it held)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    while True:
        try:
            await storage.ping()
            return
        except StorageUnavailableError:
            if loop.time() > give_up:
                raise
            await asyncio.sleep(0.1)
