"""The turn runner through the SDK's TestAdapter, on the memory store and on SQLite.

A "rival" stands in for another bot instance: it changes the conversation's
record between our read and our save, which is exactly how a conflict happens
when two instances serve one conversation.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional

import pytest
from botbuilder.core import ActivityHandler, ConversationState, TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount

from state_engine.turns.runner import (
    BUSY_MESSAGE,
    UNAVAILABLE_MESSAGE,
    RetryPolicy,
    TurnRunner,
    TurnScopedStorage,
)
from data_models import PizzaOrder
from state_engine.stores import CREATE_ONLY, StorageUnavailableError
from state_engine.stores.json_storage import JsonStorage
from state_engine.stores import memory_storage
from state_engine.stores.sqlite import SqliteStorage
from tests.bot_harness import activity_template, build_bot

CONVERSATION = "test/conversations/conversation-1"


@pytest.fixture(params=["memory", "sqlite"])
async def store(request, tmp_path):
    backend = memory_storage() if request.param == "memory" else SqliteStorage(tmp_path / "s.sqlite3")
    yield backend
    await backend.close()


class Interfering(JsonStorage):
    """Delegates to a real store; ``before_write`` runs before each write reaches it
    (a rival instance saving first, an outage...) and ``before_read`` before each read."""

    def __init__(self, inner: JsonStorage) -> None:
        self.inner = inner
        self.before_write: Optional[Callable[[Dict[str, Any]], Awaitable[None]]] = None
        self.before_read: Optional[Callable[[List[str]], Awaitable[None]]] = None

    async def read(self, keys: List[str]) -> Dict[str, Any]:
        if self.before_read:
            await self.before_read(keys)
        return await self.inner.read(keys)

    async def write(self, changes: Dict[str, Any]) -> None:
        if self.before_write:
            await self.before_write(changes)
        await self.inner.write(changes)

    async def delete(self, keys: List[str]) -> None:
        await self.inner.delete(keys)

    async def _read_documents(self, keys):  # the inner store does the work
        raise NotImplementedError

    _write_documents = _delete_documents = _read_documents


def rival_adds(store: JsonStorage, budget: int) -> Callable[[Dict[str, Any]], Awaitable[None]]:
    """Before our save of the conversation (at most ``budget`` times), another
    instance adds a topping and saves first."""
    count = 0

    async def interfere(changes: Dict[str, Any]) -> None:
        nonlocal count
        if CONVERSATION in changes and count < budget:
            count += 1
            record = (await store.read([CONVERSATION]))[CONVERSATION]
            record["PizzaOrder"].toppings.append(f"rival-{count}")
            await store.write({CONVERSATION: record})

    return interfere


class OrderBot(ActivityHandler):
    """A minimal bot on conversation state only: each message is a topping;
    ``start over`` uses ``clear_state``, which drops the cached e_tag with the state."""

    def __init__(self, conversation_state: ConversationState) -> None:
        self.state = conversation_state
        self.order = conversation_state.create_property("PizzaOrder")

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        if turn_context.activity.text == "start over":
            await self.state.clear_state(turn_context)
            await turn_context.send_activity("Cleared.")
            return
        order = await self.order.get(turn_context, PizzaOrder)
        order.toppings.append(turn_context.activity.text)
        await turn_context.send_activity(order.describe())


def runner_on(storage: JsonStorage, policy: RetryPolicy = RetryPolicy(base_delay_seconds=0)) -> TurnRunner:
    bot = build_bot(storage)
    return TurnRunner(bot, bot.states, storage, policy)


def texts(adapter: TestAdapter) -> List[str]:
    sent = [a.text for a in adapter.activity_buffer if a.type == ActivityTypes.message]
    adapter.activity_buffer.clear()
    return sent


async def documents(store: JsonStorage, prefix: str = "test/") -> Dict[str, tuple[str, str]]:
    """Every stored record as raw (JSON, e_tag), to compare before and after."""
    keys = await store.keys(prefix) if isinstance(store, SqliteStorage) else store.keys()
    return await store._read_documents(list(keys))


async def test_a_conflict_is_retried_and_only_the_saved_attempt_replies(store):
    shared = Interfering(store)
    adapter = TestAdapter(runner_on(shared).on_turn, activity_template())
    await adapter.send("add cheese")
    texts(adapter)

    shared.before_write = rival_adds(store, budget=1)
    await adapter.send("add ham")

    # The first attempt's "Added ham. Order: cheese, ham" was never sent.
    assert texts(adapter) == ["Added ham. Order: cheese, rival-1, ham"]
    assert (await store.read([CONVERSATION]))[CONVERSATION]["PizzaOrder"].toppings == [
        "cheese",
        "rival-1",
        "ham",
    ]


async def test_exhausted_retries_send_only_the_busy_message_and_change_no_state(store):
    shared = Interfering(store)
    runner = runner_on(shared, RetryPolicy(max_retries=2, base_delay_seconds=0))
    adapter = TestAdapter(runner.on_turn, activity_template())
    await adapter.send("add cheese")
    texts(adapter)
    before = await documents(store)

    shared.before_write = rival_adds(store, budget=100)
    await adapter.send("add ham")

    assert texts(adapter) == [BUSY_MESSAGE]
    after = await documents(store)
    order = (await store.read([CONVERSATION]))[CONVERSATION]["PizzaOrder"].toppings
    assert order == ["cheese", "rival-1", "rival-2", "rival-3"]  # 3 attempts, no ham
    # User and private conversation state are exactly as they were. (The utterance
    # log is written by the bot itself mid-turn, outside the runner's save.)
    scopes = [key for key in after if key != CONVERSATION and not key.endswith("/log")]
    assert scopes and all(after[key] == before[key] for key in scopes)


async def test_two_first_turns_cannot_both_create_the_conversation(store):
    """Two instances, a new conversation: both read "nothing there", both save.
    The save is create-only, so one fails and is retried on top of the other."""
    both_saving = asyncio.Barrier(2)
    expected_etags: List[str] = []

    def first_save_waits_for_the_other() -> Callable[[Dict[str, Any]], Awaitable[None]]:
        waited = False

        async def before_write(changes: Dict[str, Any]) -> None:
            nonlocal waited
            expected_etags.append(changes[CONVERSATION]["e_tag"])
            if not waited:
                waited = True
                await asyncio.wait_for(both_saving.wait(), 5)

        return before_write

    adapters = []
    for user in ("user-a", "user-b"):
        shared = Interfering(store)
        shared.before_write = first_save_waits_for_the_other()
        state = ConversationState(TurnScopedStorage(shared))
        runner = TurnRunner(OrderBot(state), [state], shared, RetryPolicy(base_delay_seconds=0))
        adapters.append(TestAdapter(runner.on_turn, activity_template(user_id=user)))

    await asyncio.gather(adapters[0].send("mushrooms"), adapters[1].send("cheese"))

    # Both first saves were create-only; the loser's retry saved over the winner's record.
    assert expected_etags[:2] == [CREATE_ONLY, CREATE_ONLY]
    assert len(expected_etags) == 3 and expected_etags[2] != CREATE_ONLY
    replies = sorted(texts(adapters[0]) + texts(adapters[1]), key=len)
    assert replies in (
        ["Order: cheese", "Order: cheese, mushrooms"],
        ["Order: mushrooms", "Order: mushrooms, cheese"],
    )
    order = (await store.read([CONVERSATION]))[CONVERSATION]["PizzaOrder"].toppings
    assert replies[1] == f"Order: {', '.join(order)}"


async def test_store_down_while_loading_says_so_and_sends_nothing_else(store):
    shared = Interfering(store)

    async def down(_: List[str]) -> None:
        raise StorageUnavailableError("connection refused")

    shared.before_read = down
    adapter = TestAdapter(runner_on(shared).on_turn, activity_template())
    await adapter.send("add ham")
    assert texts(adapter) == [UNAVAILABLE_MESSAGE]
    assert await documents(store) == {}


async def test_store_down_while_saving_withholds_the_reply_and_saves_nothing(store):
    shared = Interfering(store)
    adapter = TestAdapter(runner_on(shared).on_turn, activity_template())
    await adapter.send("add cheese")
    texts(adapter)
    before = await documents(store)

    async def down(changes: Dict[str, Any]) -> None:
        if CONVERSATION in changes:
            raise StorageUnavailableError("database is locked")

    shared.before_write = down
    await adapter.send("add ham")
    assert texts(adapter) == [UNAVAILABLE_MESSAGE]  # never "Added ham"
    after = await documents(store)
    assert {k: v for k, v in after.items() if not k.endswith("/log")} == {
        k: v for k, v in before.items() if not k.endswith("/log")
    }

    shared.before_write = None
    await adapter.send("add ham")
    assert texts(adapter) == ["Added ham. Order: cheese, ham"]


async def test_clear_state_saves_over_the_record_it_read(store):
    state = ConversationState(TurnScopedStorage(store))
    adapter = TestAdapter(
        TurnRunner(OrderBot(state), [state], store, RetryPolicy(base_delay_seconds=0)).on_turn,
        activity_template(),
    )
    await adapter.send("ham")
    await adapter.send("start over")
    await adapter.send("cheese")
    # Not "busy": the save used the e_tag read before clear_state, not create-only.
    assert texts(adapter) == ["Order: ham", "Cleared.", "Order: cheese"]


async def test_a_bot_exception_sends_nothing_saves_nothing_and_frees_the_lock(store):
    runner = runner_on(store)
    bot = runner._bot
    real = bot.on_message_activity

    async def buggy(turn_context: TurnContext) -> None:
        if turn_context.activity.text == "boom":
            order = await bot.order_accessor.get(turn_context, PizzaOrder)
            order.toppings.append("half-done")
            await turn_context.send_activity("this must not be sent")
            raise RuntimeError("a bug in the bot")
        await real(turn_context)

    bot.on_message_activity = buggy
    adapter = TestAdapter(runner.on_turn, activity_template())
    await adapter.send("add cheese")
    texts(adapter)
    before = await documents(store)

    with pytest.raises(RuntimeError, match="a bug in the bot"):
        await adapter.send("boom")
    assert texts(adapter) == []
    assert {k: v for k, v in (await documents(store)).items() if not k.endswith("/log")} == {
        k: v for k, v in before.items() if not k.endswith("/log")
    }
    # The conversation's lock was released: the next turn runs at once.
    await asyncio.wait_for(adapter.send("order"), 5)
    assert texts(adapter) == ["Order: cheese"]


async def test_turns_of_one_conversation_in_one_process_queue_instead_of_conflicting(store, caplog):
    runner = runner_on(store)
    adapter = TestAdapter(runner.on_turn, activity_template())
    await adapter.send("order")
    with caplog.at_level(logging.INFO, logger="adapter.turn_runner"):
        await asyncio.gather(
            *(
                adapter.process_activity(
                    Activity(
                        type=ActivityTypes.message,
                        text=f"add t{i}",
                        from_property=ChannelAccount(id=f"user-{i}"),
                    ),
                    runner.on_turn,
                )
                for i in range(10)
            )
        )
    order = (await store.read([CONVERSATION]))[CONVERSATION]["PizzaOrder"].toppings
    assert sorted(order) == sorted(f"t{i}" for i in range(10))
    assert "turn conflict" not in caplog.text
    # Idle locks are not kept: the table does not grow with the conversations seen.
    gc.collect()
    assert len(runner._conversation_locks) == 0


def test_retry_policy_is_bounded_and_validated():
    policy = RetryPolicy(max_retries=1000, base_delay_seconds=0.02, max_delay_seconds=0.5)
    assert max(policy.delay(attempt) for attempt in range(1, 1000)) <= 0.5
    with pytest.raises(ValueError, match="TURN_MAX_RETRIES"):
        RetryPolicy(max_retries=-1)
