"""state.py: the SDK's scopes, read once per turn and deciding "changed?" on the stored JSON.
Each test loads a scope in a turn context and saves it with the SDK's own ``save_changes``
on a real SQLite file; the stored e_tag moves only when something was written."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Dict, List, Optional

import pytest
from botbuilder.core import Storage, TurnContext
from botbuilder.core import UserState as SdkUserState
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, ConversationAccount

from state_engine.codec import register_dataclass
from state_engine.state import ConversationState, StoredJsonCache, UserState
from state_engine.stores import StateStorage, sqlite_storage


@register_dataclass
@dataclass
class ScopesProfile:
    name: Optional[str] = None


@register_dataclass
@dataclass
class ScopesOrder:
    toppings: List[str] = field(default_factory=list)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStorage]:
    storage = sqlite_storage(tmp_path / "scopes.sqlite3")
    yield storage
    await storage.close()


class CountedReads(Storage):
    """A real store that counts the reads it is asked for."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.reads = 0

    async def read(self, keys: List[str]) -> Dict[str, Any]:
        self.reads += 1
        return await self.inner.read(keys)

    async def write(self, changes: Dict[str, Any]) -> None:
        await self.inner.write(changes)

    async def delete(self, keys: List[str]) -> None:
        await self.inner.delete(keys)


def new_context() -> TurnContext:
    """A fresh turn of the same user in the same conversation (empty state caches)."""
    activity = Activity(
        type=ActivityTypes.message,
        channel_id="test",
        from_property=ChannelAccount(id="user-1"),
        recipient=ChannelAccount(id="bot"),
        conversation=ConversationAccount(id="conversation-1"),
    )
    return TurnContext(TestAdapter(), activity)


async def stored(store: StateStorage, key: str) -> Any:
    return (await store.read([key])).get(key)


async def test_a_loaded_scope_is_cached_with_the_stored_json_fingerprint(store: StateStorage) -> None:
    state = UserState(store)
    context = new_context()
    await state.load(context)
    assert isinstance(state.get_cached_state(context), StoredJsonCache)


async def test_a_scope_read_and_left_alone_is_not_written(store: StateStorage) -> None:
    state = UserState(store)
    profile = state.create_property("ScopesProfile")
    first = new_context()
    (await profile.get(first, ScopesProfile)).name = "Ada"
    await state.save_changes(first)
    key = state.get_storage_key(first)
    written = await stored(store, key)

    second = new_context()
    assert (await profile.get(second, ScopesProfile)).name == "Ada"
    await state.save_changes(second)

    assert (await stored(store, key))["e_tag"] == written["e_tag"]


async def test_an_empty_scope_is_read_from_storage_once_per_turn(store: StateStorage) -> None:
    """The SDK reads again whenever the scope is still empty: each accessor call of a new
    user's turn is a round trip until something is set, and ``get`` with a default reads
    twice (its ``set`` loads too). Ours reads once, and again only when forced."""

    async def turn(make_state: Callable[[Storage], Any]) -> int:
        counted = CountedReads(store)
        state = make_state(counted)
        profile, nickname = state.create_property("ScopesProfile"), state.create_property("nickname")
        context = new_context()
        assert await nickname.get(context) is None  # still empty after this
        await profile.get(context, ScopesProfile)
        await nickname.set(context, "Ada")
        return counted.reads

    assert await turn(SdkUserState) == 3
    assert await turn(UserState) == 1

    counted = CountedReads(store)
    state, context = UserState(counted), new_context()
    await state.load(context)
    await state.load(context, force=True)
    assert counted.reads == 2


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda order: order.toppings.append("basil"), ["olives", "basil"]),
        (lambda order: order.toppings.clear(), []),
        (lambda order: order.toppings.__setitem__(0, "capers"), ["capers"]),
    ],
    ids=["append to a nested list", "empty it", "replace an item"],
)
async def test_a_change_inside_a_stored_object_is_written(
    store: StateStorage, change: Callable[[ScopesOrder], None], expected: List[str]
) -> None:
    state = ConversationState(store)
    order_property = state.create_property("ScopesOrder")
    first = new_context()
    (await order_property.get(first, ScopesOrder)).toppings.append("olives")
    await state.save_changes(first)

    second = new_context()
    change(await order_property.get(second, ScopesOrder))
    await state.save_changes(second)

    third = new_context()
    assert (await order_property.get(third, ScopesOrder)).toppings == expected


async def test_a_value_that_only_compares_equal_is_still_a_change(store: StateStorage) -> None:
    """1 == True in Python; the stored JSON differs, so it is saved."""
    state = ConversationState(store)
    count = state.create_property("count")
    first = new_context()
    await count.set(first, 1)
    await state.save_changes(first)

    second = new_context()
    assert await count.get(second) == 1
    await count.set(second, True)
    await state.save_changes(second)

    assert await count.get(new_context()) is True


async def test_an_object_the_store_cannot_hold_is_refused_by_name_at_save(store: StateStorage) -> None:
    state = ConversationState(store)
    context = new_context()
    await state.create_property("opaque").set(context, object())
    with pytest.raises(TypeError, match="cannot store a builtins.object"):
        await state.save_changes(context)
