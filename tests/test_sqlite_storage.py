"""What only the SQLite store must show: several processes on one file."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from pathlib import Path

import pytest

from data_models import PizzaOrder
from storage import PreconditionFailedError, StorageConfigurationError
from storage.sqlite_storage import SqliteStorage

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
