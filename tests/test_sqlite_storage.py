"""What only the SQLite store must show: several processes on one file, and an
event loop that never waits for it (locks are waited for on its thread)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from pathlib import Path

import pytest

from data_models import PizzaOrder
from state_engine.stores import PreconditionFailedError, StorageConfigurationError, StorageUnavailableError
from state_engine.stores.sqlite import SqliteStorage
from state_engine.testing.loop_lag import max_loop_lag
from state_engine.testing.sqlite_lock import WriteLock

ROUNDS = 15


def _writer(path: str, name: str, barrier, ready, results) -> None:
    """In its own process: each round, read the item, wait for the other writer,
    then write back with the e_tag both read. Report who won each round."""

    async def main() -> None:
        store = SqliteStorage(path)
        for round_number in range(ROUNDS):
            item = (await store.read(["order"]))["order"]
            ready.wait()
            barrier.wait()
            item.toppings.append(f"{name}-{round_number}")
            try:
                await store.write({"order": item})
                results.put((round_number, name, "won"))
            except PreconditionFailedError:
                results.put((round_number, name, "lost"))
            ready.wait()
        await store.close()

    asyncio.run(main())


def test_two_processes_same_etag_exactly_one_wins(tmp_path: Path):
    path = str(tmp_path / "shared.sqlite3")

    async def seed() -> None:
        store = SqliteStorage(path)
        await store.write({"order": PizzaOrder()})
        await store.close()

    asyncio.run(seed())
    ctx = mp.get_context("spawn")
    barrier, ready, results = ctx.Barrier(2), ctx.Barrier(2), ctx.Queue()
    writers = [
        ctx.Process(target=_writer, args=(path, name, barrier, ready, results))
        for name in ("a", "b")
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

    async def final() -> PizzaOrder:
        store = SqliteStorage(path)
        try:
            return (await store.read(["order"]))["order"]
        finally:
            await store.close()

    winners = [f"{o[1]}-{o[0]}" for o in sorted(outcomes) if o[2] == "won"]
    assert asyncio.run(final()).toppings == winners


async def test_state_survives_reopening_the_file(tmp_path: Path):
    path = tmp_path / "state.sqlite3"
    first = SqliteStorage(path)
    await first.write({"order": PizzaOrder(["ham"])})
    await first.close()
    second = SqliteStorage(path)
    assert (await second.read(["order"]))["order"].toppings == ["ham"]
    await second.close()


async def test_unusable_path_names_the_setting(tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a folder should be")
    store = SqliteStorage(blocker / "state.sqlite3")
    with pytest.raises(StorageConfigurationError, match="SQLITE_PATH"):
        await store.read(["anything"])
    await store.close()


# --- the event loop never waits on SQLite ------------------------------------------------


@pytest.fixture
async def opened(tmp_path: Path):
    store = SqliteStorage(tmp_path / "state.sqlite3", busy_timeout_seconds=5)
    await store.write({"order": PizzaOrder(toppings=["olives"])})
    other = WriteLock(store.path)
    yield store, other
    other.close()
    await store.close()


async def test_a_write_waits_for_a_locked_file_without_stalling_the_loop(opened):
    store, other = opened
    other.take()
    asyncio.get_running_loop().call_later(0.3, other.release)

    order = (await store.read(["order"]))["order"]
    order.toppings.append("basil")
    lag, seconds = await max_loop_lag(store.write({"order": order}))

    assert seconds >= 0.25, "the write did not wait for the lock"
    assert lag < 0.05, f"event loop blocked for {lag * 1000:.1f} ms"
    assert (await store.read(["order"]))["order"].toppings == ["olives", "basil"]


async def test_reads_answer_while_another_connection_holds_the_write_lock(opened):
    store, other = opened
    other.take()
    other.connection.execute("UPDATE store_items SET document = '{}' WHERE key = 'order'")

    lag, seconds = await max_loop_lag(store.read(["order"]))

    assert seconds < 0.1 and lag < 0.05
    assert (await store.read(["order"]))["order"].toppings == ["olives"]  # committed data only


async def test_a_lock_held_past_the_busy_timeout_is_unavailable_and_changes_nothing(tmp_path: Path):
    store = SqliteStorage(tmp_path / "state.sqlite3", busy_timeout_seconds=0.2)
    await store.write({"order": PizzaOrder(toppings=["olives"])})
    other = WriteLock(store.path)
    other.take()
    try:
        order = (await store.read(["order"]))["order"]
        order.toppings.append("basil")
        lag, _ = await max_loop_lag(_expect_unavailable(store.write({"order": order})))
        assert lag < 0.05, f"event loop blocked for {lag * 1000:.1f} ms"
    finally:
        other.close()
    assert (await store.read(["order"]))["order"].toppings == ["olives"]
    await store.close()


async def _expect_unavailable(work) -> None:
    with pytest.raises(StorageUnavailableError, match="locked"):
        await work


def _wal_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


async def _wal_after_commits(path: Path, commits_per_checkpoint: int, commits: int = 600) -> int:
    store = SqliteStorage(path)
    store.commits_per_checkpoint = commits_per_checkpoint
    for number in range(commits):
        await store.write({"log": {"number": number, "text": "x" * 3000}})
        await asyncio.sleep(0.001)  # as between turns: the store's thread gets to run
    await asyncio.sleep(0.2)
    wal = _wal_bytes(store.path)
    await store.close()
    return wal


async def test_the_wal_is_checkpointed_on_the_thread(tmp_path: Path):
    """The fast connection never checkpoints (that would sync on the loop); the
    store's thread does, so the WAL keeps being rewound. Without that it grows
    with every commit (about 4 kB each here)."""
    checkpointed = await _wal_after_commits(tmp_path / "checkpointed.sqlite3", 20)
    never = await _wal_after_commits(tmp_path / "never.sqlite3", 1_000_000)

    assert never > 2_000_000, f"the test wrote too little to tell: {never} bytes of WAL"
    assert checkpointed * 4 < never, f"WAL {checkpointed} bytes with checkpoints, {never} without"
