"""state/scopes.py: the SDK's scopes, deciding "changed?" on the JSON we store.

Each test loads a scope in one turn context and saves it with the SDK's own
``save_changes``, on a real SQLite file, then looks at the stored e_tag: it
moves only when something was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from botbuilder.core import TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import ActivityTypes

from data_models import PizzaOrder, UserProfile
from state_engine.state import ConversationState, UserState
from state_engine.state import StoredJsonCache
from state_engine.stores.sqlite import SqliteStorage
from tests.bot_harness import activity_template


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    backend = SqliteStorage(tmp_path / "scopes.sqlite3")
    yield backend
    await backend.close()


def new_context() -> TurnContext:
    """A fresh turn of the same user in the same conversation (empty state caches)."""
    activity = activity_template("conversation-1", "user-1")
    activity.type = ActivityTypes.message
    return TurnContext(TestAdapter(), activity)


async def stored(store: SqliteStorage, key: str) -> Any:
    return (await store.read([key])).get(key)


async def test_a_loaded_scope_is_cached_with_the_stored_json_fingerprint(store):
    state = UserState(store)
    context = new_context()
    await state.load(context)
    assert isinstance(state.get_cached_state(context), StoredJsonCache)


async def test_a_scope_read_and_left_alone_is_not_written(store):
    state = UserState(store)
    profile = state.create_property("UserProfile")
    first = new_context()
    (await profile.get(first, UserProfile)).name = "Ada"
    await state.save_changes(first)
    key = state.get_storage_key(first)
    written = await stored(store, key)

    second = new_context()
    assert (await profile.get(second, UserProfile)).name == "Ada"
    await state.save_changes(second)

    assert (await stored(store, key))["e_tag"] == written["e_tag"]


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda order: order.toppings.append("basil"), ["olives", "basil"]),
        (lambda order: order.toppings.clear(), []),
        (lambda order: order.toppings.__setitem__(0, "capers"), ["capers"]),
    ],
    ids=["append to a nested list", "empty it", "replace an item"],
)
async def test_a_change_inside_a_stored_object_is_written(store, change, expected):
    state = ConversationState(store)
    order_property = state.create_property("PizzaOrder")
    first = new_context()
    (await order_property.get(first, PizzaOrder)).toppings.append("olives")
    await state.save_changes(first)

    second = new_context()
    change(await order_property.get(second, PizzaOrder))
    await state.save_changes(second)

    third = new_context()
    assert (await order_property.get(third, PizzaOrder)).toppings == expected


async def test_a_value_that_only_compares_equal_is_still_a_change(store):
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


async def test_an_object_the_store_cannot_hold_is_refused_by_name_at_save(store):
    state = ConversationState(store)
    context = new_context()
    await state.create_property("opaque").set(context, object())
    with pytest.raises(TypeError, match="cannot store a builtins.object"):
        await state.save_changes(context)
