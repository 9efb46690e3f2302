"""The storage contract: what every ``Storage`` must do, as pytest tests to inherit.

Subclass ``StorageContract`` in a test module and give it a ``storage`` fixture (any
SDK ``Storage``); ``StateStorageContract`` adds the engine's guarantees (conditions,
atomic multi-record writes under concurrency) for a ``StateStorage``.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import List

import pytest
from botbuilder.core import Storage
from botbuilder.testing import StorageBaseTests

from ..codec import register_dataclass
from ..conditions import ABSENT, if_match
from ..errors import ItemTooLargeError, PreconditionFailedError
from ..stores.state_storage import Change, StateStorage

AWKWARD_KEYS = [
    "a/b?c#d\\e*f",
    "msteams/conversations/19:abc@thread.v2/users/29:1xyz",
    "with spaces inside and at the end ",
    " leading space",
    "emoji 😀🎉 and ünïcödé 中文",
    "tab\tnewline\nreturn\r",
    "ends with a dot.",
    "percent %2F and quote ' \"",
    "*42",
    "x" * 300,
]
LONG_TWIN_A = "k" * 255 + "-A" + "z" * 40
LONG_TWIN_B = "k" * 255 + "-B" + "z" * 40
SDK_BASE_TESTS = [
    "return_empty_object_when_reading_unknown_key",
    "handle_null_keys_when_reading",
    "handle_null_keys_when_writing",
    "does_not_raise_when_writing_no_items",
    "create_object",
    "handle_crazy_keys",
    "update_object",
    "delete_object",
    "delete_unknown_object",
    "perform_batch_operations",
    "proceeds_through_waterfall",
]


@register_dataclass
@dataclass
class ContractNote:
    """A store item with an ``e_tag`` attribute, as the docs' utterance log is."""

    lines: List[str] = field(default_factory=list)
    e_tag: str = "*"


async def etag_of(storage: Storage, key: str) -> str:
    return (await storage.read([key]))[key]["e_tag"]


class StorageContract:
    """The SDK's ``Storage`` interface: read, write and delete with e_tags."""

    @pytest.mark.parametrize("name", SDK_BASE_TESTS)
    async def test_the_sdks_own_base_tests(self, storage: Storage, name: str) -> None:
        """``StorageBaseTests`` from botbuilder-testing: "base tests that all storage providers should implement"."""
        assert await getattr(StorageBaseTests, name)(storage)

    async def test_missing_keys_are_absent(self, storage: Storage) -> None:
        assert await storage.read(["nobody", "nothing/here"]) == {}
        assert await storage.read([]) == {}

    async def test_plain_nested_and_unicode_data(self, storage: Storage) -> None:
        item = {
            "text": "héllo 😀 中文 \u0000 \n <b>markup</b> `code`",
            "nested": {"list": [1, 2.5, None, True, {"deep": ["x", {"deeper": "y"}]}], "empty": {}},
            "py_like_string": "py/reduce is only text here",
        }
        await storage.write({"plain": item})
        found = (await storage.read(["plain"]))["plain"]
        assert {k: v for k, v in found.items() if k != "e_tag"} == item

    async def test_store_item_with_etag_attribute_round_trips(self, storage: Storage) -> None:
        await storage.write({"note": ContractNote(["hi", "there"])})
        found = (await storage.read(["note"]))["note"]
        assert isinstance(found, ContractNote) and found.lines == ["hi", "there"]
        found.lines.append("again")
        await storage.write({"note": found})  # its e_tag makes this conditional, and current
        assert (await storage.read(["note"]))["note"].lines == ["hi", "there", "again"]

    @pytest.mark.parametrize("key", AWKWARD_KEYS, ids=lambda k: repr(k[:24]))
    async def test_awkward_keys(self, storage: Storage, key: str) -> None:
        await storage.write({key: {"value": key}})
        assert (await storage.read([key]))[key]["value"] == key
        await storage.delete([key])
        assert await storage.read([key]) == {}

    async def test_long_keys_differing_after_255_characters_stay_distinct(self, storage: Storage) -> None:
        await storage.write({LONG_TWIN_A: {"v": "A"}, LONG_TWIN_B: {"v": "B"}})
        found = await storage.read([LONG_TWIN_A, LONG_TWIN_B])
        assert (found[LONG_TWIN_A]["v"], found[LONG_TWIN_B]["v"]) == ("A", "B")

    async def test_delete_present_and_missing(self, storage: Storage) -> None:
        await storage.write({"a": {"v": 1}, "b": {"v": 2}})
        await storage.delete(["a", "never-written"])
        assert list(await storage.read(["a", "b"])) == ["b"]
        await storage.delete([])

    async def test_star_and_missing_etag_write_unconditionally(self, storage: Storage) -> None:
        await storage.write({"k": {"v": 1}})
        await storage.write({"k": {"v": 2, "e_tag": "*"}})
        await storage.write({"k": {"v": 3}})
        assert (await storage.read(["k"]))["k"]["v"] == 3
        with pytest.raises(ValueError):
            await storage.write({"k": {"v": 4, "e_tag": ""}})

    async def test_current_etag_writes_and_changes_the_etag(self, storage: Storage) -> None:
        await storage.write({"k": {"v": 1}})
        first = await etag_of(storage, "k")
        await storage.write({"k": {"v": 2, "e_tag": first}})
        assert await etag_of(storage, "k") != first

    async def test_stale_etag_is_refused(self, storage: Storage) -> None:
        await storage.write({"k": {"v": 1}})
        stale = await etag_of(storage, "k")
        await storage.write({"k": {"v": 2}})
        with pytest.raises(PreconditionFailedError):
            await storage.write({"k": {"v": 3, "e_tag": stale}})
        assert (await storage.read(["k"]))["k"]["v"] == 2

    async def test_etag_of_a_deleted_item_is_refused(self, storage: Storage) -> None:
        await storage.write({"k": {"v": 1}})
        e_tag = await etag_of(storage, "k")
        await storage.delete(["k"])
        with pytest.raises(PreconditionFailedError):
            await storage.write({"k": {"v": 2, "e_tag": e_tag}})

    async def test_concurrent_writers_with_the_same_etag_exactly_one_wins(self, storage: Storage) -> None:
        await storage.write({"order": {"toppings": []}})
        e_tag = await etag_of(storage, "order")
        writers = [f"topping-{n}" for n in range(5)]
        outcomes = await asyncio.gather(
            *(storage.write({"order": {"toppings": [t], "e_tag": e_tag}}) for t in writers),
            return_exceptions=True,
        )
        winners = [t for t, outcome in zip(writers, outcomes) if outcome is None]
        assert len(winners) == 1, outcomes
        assert all(isinstance(o, PreconditionFailedError) for o in outcomes if o is not None), outcomes
        assert (await storage.read(["order"]))["order"]["toppings"] == winners


class StateStorageContract(StorageContract):
    """The engine's guarantees on top: typed conditions and all-or-nothing writes."""

    async def test_create_only(self, storage: StateStorage) -> None:
        await storage.commit([Change("new", {"v": 1}, ABSENT)])
        with pytest.raises(PreconditionFailedError):
            await storage.commit([Change("new", {"v": 2}, ABSENT)])
        assert (await storage.read(["new"]))["new"]["v"] == 1

    async def test_concurrent_create_only_exactly_one_wins(self, storage: StateStorage) -> None:
        outcomes = await asyncio.gather(
            *(storage.commit([Change("first", {"by": n}, ABSENT)]) for n in range(5)),
            return_exceptions=True,
        )
        assert sum(not isinstance(outcome, BaseException) for outcome in outcomes) == 1, outcomes

    @pytest.mark.parametrize("together", [True, False], ids=["one partition", "three partitions"])
    async def test_a_failed_condition_writes_nothing(self, storage: StateStorage, together: bool) -> None:
        keys = ["ch/conversations/c", "ch/conversations/c/users/u/", "ch/conversations/c/log"]
        if not together:
            keys = ["ch/users/a", "ch/users/b", "ch/users/c"]
        a, b, c = keys
        await storage.write({a: {"v": 1}, b: {"v": 1}})
        a_tag, stale_b = await etag_of(storage, a), await etag_of(storage, b)
        await storage.write({b: {"v": 2}})
        with pytest.raises(PreconditionFailedError):
            await storage.commit(
                [Change(a, {"v": 99}, if_match(a_tag)), Change(b, {"v": 99}, if_match(stale_b)),
                 Change(c, {"v": 99}, ABSENT)]
            )
        found = await storage.read([a, b, c])
        assert (found[a]["v"], found[b]["v"], c in found) == (1, 2, False)
        assert found[a]["e_tag"] == a_tag

    async def test_concurrent_transfers_across_partitions_land_whole(self, storage: StateStorage) -> None:
        """Writers each move one unit between a shared record and their own (two
        partitions), retrying on conflict. Afterwards every unit is counted exactly once."""
        writers, rounds = 6, 4
        shared = "ch/users/bank"
        await storage.write({shared: {"units": 0}})

        async def writer(n: int) -> None:
            own = f"ch/users/writer-{n}"
            for _ in range(rounds):
                while True:
                    found = await storage.read([shared, own])
                    mine = found.get(own, {"units": 0})
                    condition = if_match(mine["e_tag"]) if "e_tag" in mine else ABSENT
                    try:
                        await storage.commit([
                            Change(shared, {"units": found[shared]["units"] + 1}, if_match(found[shared]["e_tag"])),
                            Change(own, {"units": mine["units"] + 1}, condition),
                        ])
                        break
                    except PreconditionFailedError:
                        await asyncio.sleep(random.uniform(0, 0.02))

        await asyncio.gather(*(writer(n) for n in range(writers)))
        found = await storage.read([shared] + [f"ch/users/writer-{n}" for n in range(writers)])
        assert found[shared]["units"] == writers * rounds
        assert all(found[f"ch/users/writer-{n}"]["units"] == rounds for n in range(writers))

    async def test_too_large_is_refused_before_anything_is_written(self, storage: StateStorage) -> None:
        await storage.write({"big": {"v": "small"}})
        too_big = "x" * (storage.max_item_bytes + 1)
        with pytest.raises(ItemTooLargeError) as refused:
            await storage.write({"other": {"v": 1}, "big": {"v": too_big}})
        assert refused.value.limit == storage.max_item_bytes
        found = await storage.read(["big", "other"])
        assert (found["big"]["v"], "other" in found) == ("small", False)

    async def test_a_record_just_under_the_limit_is_stored(self, storage: StateStorage) -> None:
        overhead = 200
        text = "é" * ((storage.max_item_bytes - overhead - len(json.dumps({"v": ""}))) // 2)
        await storage.write({"near-limit": {"v": text}})
        assert (await storage.read(["near-limit"]))["near-limit"]["v"] == text

    async def test_keys_are_listed_by_prefix(self, storage: StateStorage) -> None:
        await storage.write({"ch/users/u/conversations/a": {}, "ch/users/u/conversations/b": {}, "ch/users/v": {}})
        assert await storage.list_keys("ch/users/u/conversations/") == [
            "ch/users/u/conversations/a",
            "ch/users/u/conversations/b",
        ]

    async def test_ping_answers(self, storage: StateStorage) -> None:
        await storage.ping()

    async def test_erasing_what_was_deleted_keeps_what_was_not(self, storage: StateStorage) -> None:
        await storage.write({"contract/erase/gone": {"v": 1}, "contract/erase/kept": {"v": 2}})
        await storage.delete(["contract/erase/gone"])
        await storage.items.erase_deleted()
        found = await storage.read(["contract/erase/gone", "contract/erase/kept"])
        assert list(found) == ["contract/erase/kept"] and found["contract/erase/kept"]["v"] == 2
