"""The turn runner through the SDK's TestAdapter, on every backend (the cloud stores have no
atomic write across partitions: the commit protocol). Each bot instance has its own
StateStorage over the same real items; ``Tapped`` runs a rival's write or a fault at a precise
point of a read or a write, so every interleaving is deterministic."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple

import pytest
from botbuilder.core import ActivityHandler, TurnContext
from botbuilder.core.adapters import TestAdapter
from botbuilder.dialogs import DialogContext, DialogSet, DialogState
from botbuilder.dialogs.memory import DialogStateManager, DialogStateManagerConfiguration
from botbuilder.schema import Activity, ActivityTypes, ChannelAccount, ConversationAccount

from state_engine import keys
from state_engine.codec import register_dataclass
from state_engine.conditions import ABSENT, Expect
from state_engine.errors import ItemTooLargeError, StorageUnavailableError, WriteOutcomeUnknownError
from state_engine.forget import forget_user
from state_engine.state import ConversationState, PrivateConversationState, UserState
from state_engine.stores import BACKENDS, StateStorage, open_items, read_backend_settings, transactions
from state_engine.stores.state_storage import Change
from state_engine.stores.items import Item, ItemStore, Put
from state_engine.stores.memory import MemoryItems
from state_engine.stores.partition import Record, parse
from state_engine.stores import partitions as partitions_module
from state_engine.stores.transactions import settle
from state_engine.turns import RetryPolicy, TurnMessages, TurnRunner, TurnScopedStorage

MESSAGES = TurnMessages()
FAST_RETRIES = RetryPolicy(base_delay_seconds=0)
CHANNEL = "test"
CONVERSATION = keys.conversation_state(CHANNEL, "conversation-1")
RUNNER_LOG = "state_engine.turns.runner"


@register_dataclass
@dataclass
class RunnerOrder:
    toppings: List[str] = field(default_factory=list)

    def describe(self) -> str:
        return "Order: " + ", ".join(self.toppings)


@register_dataclass
@dataclass
class RunnerVisits:
    """User state: every conversation the user wrote in, and how many messages."""

    conversations: List[str] = field(default_factory=list)
    messages: int = 0


class OrderBot(ActivityHandler):
    """Each message is a topping for the conversation's order (``order`` only shows it,
    ``start over`` uses ``clear_state``, ``forget me`` forgets the user); every turn also
    changes user state (unless ``counts_visits`` is off) and private state, so a turn
    touches all three scopes. ``after_reply`` lets a test misbehave."""

    def __init__(
        self,
        storage: TurnScopedStorage,
        conversation: ConversationState,
        user: UserState,
        private: PrivateConversationState,
    ) -> None:
        self.storage = storage
        self.order = conversation.create_property("RunnerOrder")
        self.visits = user.create_property("RunnerVisits")
        self.last_text = private.create_property("last_text")
        self.conversation_state = conversation
        self.counts_visits = True
        self.after_reply: Optional[Callable[[TurnContext], Awaitable[None]]] = None

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        text = turn_context.activity.text
        if text == "forget me":
            report = await self.storage.forget_user(turn_context.activity)
            await turn_context.send_activity(f"Forgot {report.records} records in {report.conversations}.")
            return
        # A default through the accessor: for a new user the SDK calls ``set``, which loads again.
        if self.counts_visits:
            visits = await self.visits.get(turn_context, RunnerVisits)
            if turn_context.activity.conversation.id not in visits.conversations:
                visits.conversations.append(turn_context.activity.conversation.id)
            visits.messages += 1
        await self.last_text.set(turn_context, text)
        if text == "start over":
            await self.conversation_state.clear_state(turn_context)
            await turn_context.send_activity("Cleared.")
            return
        order = await self.order.get(turn_context, RunnerOrder)
        if text != "order":
            order.toppings.append(text)
        await turn_context.send_activity(order.describe())
        if self.after_reply is not None:
            await self.after_reply(turn_context)


Hook = Callable[[Sequence[str]], Awaitable[None]]
PutHook = Callable[[Sequence[Put]], Awaitable[None]]


class Tapped(ItemStore):
    """A real ItemStore, counted, with hooks: ``after_get`` runs once a read was answered
    by the store and before the answer reaches the caller; ``before_put`` runs before a
    write reaches the store (a rival saving first, an outage, a hang)."""

    def __init__(self, inner: ItemStore) -> None:
        self.inner = inner
        self.atomic_batch = inner.atomic_batch
        self.max_item_bytes = inner.max_item_bytes
        self.gets: List[List[str]] = []
        self.writes: List[List[Put]] = []
        self.after_get: Optional[Hook] = None
        self.before_put: Optional[PutHook] = None

    async def get(self, item_ids: Sequence[str]) -> Dict[str, Item]:
        self.gets.append(list(item_ids))
        found = await self.inner.get(item_ids)
        if self.after_get is not None:
            await self.after_get(item_ids)
        return found

    async def put(self, put: Put) -> Optional[str]:
        await self._before([put])
        return await self.inner.put(put)

    async def put_all(self, puts: Sequence[Put]) -> Dict[str, Optional[str]]:
        await self._before(puts)
        return await self.inner.put_all(puts)

    async def _before(self, puts: Sequence[Put]) -> None:
        self.writes.append(list(puts))
        if self.before_put is not None:
            await self.before_put(puts)

    async def list_ids(self, prefix: str) -> List[str]:
        return await self.inner.list_ids(prefix)

    async def ping(self) -> None:
        await self.inner.ping()


class Shared:
    """One store's data, opened by several bot instances: the memory backend is one object,
    every other backend gets a client of its own per instance on the same file or container."""

    def __init__(self, backend: str, env: Dict[str, str]) -> None:
        self.backend = backend
        self._settings = read_backend_settings(backend, env)
        self._memory = MemoryItems() if backend == "memory" else None
        self._opened: List[ItemStore] = []
        #: The test's own view of the data, as any other process would see it.
        self.outside = self.handle()

    def handle(self) -> ItemStore:
        if self._memory is not None:
            return self._memory
        items = open_items(self.backend, self._settings)
        self._opened.append(items)
        return items

    async def close(self) -> None:
        for items in self._opened:
            await items.close()


@pytest.fixture(params=list(BACKENDS))
async def shared(
    request: pytest.FixtureRequest, backend_env: Callable[[str], Dict[str, str]]
) -> AsyncIterator[Shared]:
    store = Shared(request.param, backend_env(request.param))
    await store.outside.ping()  # creates the file, container or table
    yield store
    await store.close()


@dataclass
class Instance:
    """One bot instance: its own StateStorage (and partition cache) over the shared items."""

    items: Tapped
    turn_storage: TurnScopedStorage
    bot: OrderBot
    runner: TurnRunner

    def adapter(self, conversation: str = "conversation-1", user: str = "user-1") -> TestAdapter:
        return TestAdapter(self.runner.on_turn, template(conversation, user))


def instance(
    shared: Shared, policy: RetryPolicy = FAST_RETRIES, deadline_seconds: float = 10.0
) -> Instance:
    items = Tapped(shared.handle())
    turn_storage = TurnScopedStorage(StateStorage(items))
    states = [
        ConversationState(turn_storage), UserState(turn_storage), PrivateConversationState(turn_storage)
    ]
    bot = OrderBot(turn_storage, *states)
    runner = TurnRunner(bot, states, turn_storage, policy, deadline_seconds=deadline_seconds)
    return Instance(items, turn_storage, bot, runner)


def template(conversation: str, user: str) -> Activity:
    return Activity(
        channel_id=CHANNEL,
        service_url="https://test.invalid",
        from_property=ChannelAccount(id=user, name="User"),
        recipient=ChannelAccount(id="bot", name="Bot"),
        conversation=ConversationAccount(id=conversation),
    )


def texts(adapter: TestAdapter) -> List[str]:
    sent = [a.text for a in adapter.activity_buffer if a.type == ActivityTypes.message]
    adapter.activity_buffer.clear()
    return sent


async def stored(items: ItemStore) -> Dict[str, Record]:
    """Every stored record with its e_tag, straight from the items (to compare before and after),
    once the roll-forwards of earlier commits have landed."""
    await transactions.settle()
    item_ids = await items.list_ids("")
    found = await items.get(item_ids)
    records: Dict[str, Record] = {}
    for item_id in item_ids:
        records.update(parse(item_id, found.get(item_id)).records)
    return records


async def after_one_turn(ours: Instance) -> Tuple[TestAdapter, Dict[str, Record]]:
    """An adapter whose conversation has had one turn ("cheese"), and what was stored by then."""
    adapter = ours.adapter()
    await adapter.send("cheese")
    texts(adapter)
    return adapter, await stored(ours.items.inner)


def without(records: Dict[str, Record], *left_out: str) -> Dict[str, Record]:
    return {key: record for key, record in records.items() if key not in left_out}


async def toppings(shared: Shared) -> List[str]:
    found = await StateStorage(shared.outside).read([CONVERSATION])
    return found[CONVERSATION]["RunnerOrder"].toppings


def rival_adds(shared: Shared, budget: int) -> PutHook:
    """Before our save of the conversation (at most ``budget`` times), another instance
    adds a topping and saves first."""
    rival = StateStorage(shared.handle())
    count = 0

    async def interfere(puts: Sequence[Put]) -> None:
        nonlocal count
        if CONVERSATION in (put.item_id for put in puts) and count < budget:
            count += 1
            record = (await rival.read([CONVERSATION]))[CONVERSATION]
            record["RunnerOrder"].toppings.append(f"rival-{count}")
            await rival.write({CONVERSATION: record})

    return interfere


async def down(_: Sequence[object]) -> None:
    raise StorageUnavailableError("connection refused")


# --- conflicts -------------------------------------------------------------------------


async def test_a_conflict_is_retried_and_only_the_saved_attempt_replies(shared: Shared) -> None:
    ours = instance(shared)
    adapter, _ = await after_one_turn(ours)

    ours.items.before_put = rival_adds(shared, budget=1)
    await adapter.send("ham")

    # The first attempt's "Order: cheese, ham" was never sent.
    assert texts(adapter) == ["Order: cheese, rival-1, ham"]
    assert await toppings(shared) == ["cheese", "rival-1", "ham"]


async def test_exhausted_retries_send_only_the_busy_message_and_change_no_state(shared: Shared) -> None:
    ours = instance(shared, RetryPolicy(max_retries=2, base_delay_seconds=0))
    adapter, before = await after_one_turn(ours)

    ours.items.before_put = rival_adds(shared, budget=100)
    await adapter.send("ham")

    assert texts(adapter) == [MESSAGES.busy]
    assert await toppings(shared) == ["cheese", "rival-1", "rival-2", "rival-3"]  # 3 attempts, no ham
    # User state, private state and the rest are exactly as they were.
    after = await stored(shared.outside)
    assert len(before) > 1 and without(after, CONVERSATION) == without(before, CONVERSATION)


async def test_two_first_turns_cannot_both_create_the_conversation(shared: Shared) -> None:
    """Two instances, a new conversation: both read "nothing there", both save. The save
    is create-only, so one fails and is retried on top of the other."""
    both_saving = asyncio.Barrier(2)
    instances = [instance(shared), instance(shared)]

    for each in instances:

        async def first_save_waits_for_the_other(_: Sequence[Put], items: Tapped = each.items) -> None:
            if len(items.writes) == 1:
                await asyncio.wait_for(both_saving.wait(), 5)

        each.items.before_put = first_save_waits_for_the_other

    adapters = [instances[0].adapter(user="user-a"), instances[1].adapter(user="user-b")]
    await asyncio.gather(adapters[0].send("mushrooms"), adapters[1].send("cheese"))

    # Both first saves were create-only; the loser's retry saved over the winner's record.
    expected = [
        [put.condition.expect for batch in each.items.writes for put in batch
         if put.item_id == CONVERSATION]
        for each in instances
    ]
    assert sorted(expected, key=len) == [[Expect.ABSENT], [Expect.ABSENT, Expect.MATCH]]
    replies = sorted(texts(adapters[0]) + texts(adapters[1]), key=len)
    assert replies in (
        ["Order: cheese", "Order: cheese, mushrooms"],
        ["Order: mushrooms", "Order: mushrooms, cheese"],
    )
    assert replies[1] == f"Order: {', '.join(await toppings(shared))}"


@pytest.mark.parametrize("instances", [1, 2], ids=["one instance", "two instances"])
async def test_a_new_users_two_interleaved_turns_both_land(
    shared: Shared, instances: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Turn A (conversation a) reads the new user's state: absent. Then turn B (the same
    user in conversation b) creates the user's record and saves. Then A's bot takes its
    default through the accessor and saves.

    The SDK's own scopes lost B's update here: ``get`` with a default calls ``set``,
    whose ``load`` reads again while the scope is empty, so A picked up B's record and
    e_tag, replaced it with a fresh default, and its save (conditional on B's e_tag)
    wrote ``["conversation-a"]`` over B's ``["conversation-b"]``. Now A's save is
    conditional on its *first* read (absent, so create-only): it fails and A runs again."""
    a = instance(shared)
    b = a if instances == 1 else instance(shared)
    turn_a, turn_b = a.adapter("conversation-a"), b.adapter("conversation-b")
    a_partition = keys.conversation_state(CHANNEL, "conversation-a")

    async def b_runs_in_between(item_ids: Sequence[str]) -> None:
        if a_partition in item_ids and a.items.after_get is not None:
            a.items.after_get = None  # A's retry reads undisturbed
            await turn_b.send("tea")

    a.items.after_get = b_runs_in_between
    with caplog.at_level(logging.INFO, logger=RUNNER_LOG):
        await turn_a.send("coffee")

    assert (texts(turn_a), texts(turn_b)) == (["Order: coffee"], ["Order: tea"])
    user_key = keys.user_state(CHANNEL, "user-1")
    visits = (await StateStorage(shared.outside).read([user_key]))[user_key]["RunnerVisits"]
    assert (visits.conversations, visits.messages) == (["conversation-b", "conversation-a"], 2)
    conflicts = [r.getMessage() for r in caplog.records if "turn conflict" in r.getMessage()]
    assert len(conflicts) == 1 and repr(user_key) in conflicts[0] and ABSENT.failure() in conflicts[0]


# --- forget me, raced --------------------------------------------------------------------


async def test_a_turn_saved_while_forget_me_runs_stays_findable_by_the_next_one(shared: Shared) -> None:
    """``forget me`` (one instance) has emptied the conversation and is about to delete the
    user's index entry for it; just then a message of theirs is saved there (another
    instance). Their new records must stay in the index, so the next ``forget me`` finds them."""
    forgetting, theirs = instance(shared), instance(shared)
    adapter = theirs.adapter()
    await adapter.send("cheese")
    texts(adapter)
    membership = keys.membership(CHANNEL, "user-1", "conversation-1")
    private = keys.private_state(CHANNEL, "conversation-1", "user-1")

    async def a_message_is_saved_first(puts: Sequence[Put]) -> None:
        if any(put.item_id == membership and put.text is None for put in puts):
            forgetting.items.before_put = None
            await adapter.send("ham")

    forgetting.items.before_put = a_message_is_saved_first
    await forget_user(forgetting.turn_storage.storage, CHANNEL, "user-1")
    assert texts(adapter) == ["Order: ham"]  # the conversation was theirs alone: it went whole
    assert {private, membership} <= set(await stored(shared.outside))

    report = await forget_user(forgetting.turn_storage.storage, CHANNEL, "user-1")
    assert report.conversations == 1
    left = set(await stored(shared.outside))
    assert not left & {private, membership, keys.user_state(CHANNEL, "user-1")}, left


async def test_a_participant_without_private_state_saving_while_forget_me_runs_stays_findable(
    shared: Shared,
) -> None:
    """A group: user-1 is among the participants but has no private state there (it was
    cleared after an error), and their next message changes no record ``forget me`` edits.
    It is held at its save while ``forget me`` (another instance) takes them out of the
    conversation and deletes their index entry. Its save must then fail and run again, so
    that what it saves is indexed and the next ``forget me`` removes it."""
    forgetting, theirs = instance(shared), instance(shared)
    others, adapter = theirs.adapter(user="user-2"), theirs.adapter()
    await others.send("cheese")
    await adapter.send("ham")
    private = keys.private_state(CHANNEL, "conversation-1", "user-1")
    await StateStorage(shared.outside).delete([private])
    theirs.bot.counts_visits = False  # user state untouched: only the conversation's records

    async def forget_me_runs_first(_: Sequence[Put]) -> None:
        theirs.items.before_put = None
        await forget_user(forgetting.turn_storage.storage, CHANNEL, "user-1")

    theirs.items.before_put = forget_me_runs_first
    await adapter.send("olives")
    assert texts(adapter) == ["Order: cheese, ham", "Order: cheese, ham, olives"]

    report = await forget_user(forgetting.turn_storage.storage, CHANNEL, "user-1")
    assert report.conversations == 1 and report.records >= 2  # their private state and index entry
    left = await stored(shared.outside)
    assert not set(left) & {private, keys.membership(CHANNEL, "user-1", "conversation-1")}, set(left)
    participants = StateStorage(shared.outside).read([keys.PARTICIPANTS.key(CHANNEL, "conversation-1")])
    assert (await participants)[keys.PARTICIPANTS.key(CHANNEL, "conversation-1")]["users"] == ["user-2"]


async def test_forget_me_in_many_conversations_on_a_slow_store_answers_with_its_report(
    shared: Shared,
) -> None:
    """Each store call of the forgetting instance takes 80 ms more (a far-away store), and
    the user has records in 60 conversations: ``forget me`` takes them all within the
    turn's deadline and says what it deleted (its conversations and its index entries are
    each taken several at a time)."""
    theirs, forgetting = instance(shared), instance(shared, deadline_seconds=10.0)
    conversations = [f"many-{n:02d}" for n in range(60)]
    for conversation in conversations:
        await theirs.adapter(conversation).send("cheese")

    async def far_away(_: Sequence[object]) -> None:
        await asyncio.sleep(0.08)

    forgetting.items.after_get = forgetting.items.before_put = far_away
    adapter = forgetting.adapter(conversations[0])
    await adapter.send("forget me")
    # Each conversation was theirs alone, so it went whole (its order, their private state,
    # its participants), with their index entry for it; and their user state: 4 × 60 + 1.
    assert texts(adapter) == ["Forgot 241 records in 60."]
    left = await stored(shared.outside)
    assert not [key for key in left if "user-1" in key], sorted(left)[:5]


async def test_a_turn_with_nothing_to_save_answers_though_it_used_the_save_reserve(shared: Shared) -> None:
    """The last part of the deadline is kept for saving; a turn that has nothing to save
    (here ``order`` again, user state untouched) still answers after using it."""
    ours = instance(shared, deadline_seconds=3.0)
    ours.bot.counts_visits = False
    adapter, _ = await after_one_turn(ours)
    await adapter.send("order")
    before = await stored(shared.outside)

    async def dawdle(_: TurnContext) -> None:
        await asyncio.sleep(2.3)  # past the save reserve (at 2.1 s), within the deadline

    ours.bot.after_reply = dawdle
    await adapter.send("order")
    assert texts(adapter) == ["Order: cheese", "Order: cheese"]
    assert await stored(shared.outside) == before


class SavesEarly(ActivityHandler):
    """Saves its conversation state mid-turn with the SDK's ``save_changes`` (as samples
    do before a long call), then changes it again."""

    def __init__(self, conversation: ConversationState) -> None:
        self.conversation = conversation
        self.before = conversation.create_property("before")
        self.after = conversation.create_property("after")

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        await self.before.set(turn_context, turn_context.activity.text)
        await self.conversation.save_changes(turn_context)
        await self.after.set(turn_context, turn_context.activity.text)
        await turn_context.send_activity(f"saved {turn_context.activity.text} twice")


async def test_a_scope_saved_mid_turn_and_changed_again_is_saved_as_it_ends(shared: Shared) -> None:
    turn_storage = TurnScopedStorage(StateStorage(shared.handle()))
    conversation = ConversationState(turn_storage)
    runner = TurnRunner(SavesEarly(conversation), [conversation], turn_storage, FAST_RETRIES)
    adapter = TestAdapter(runner.on_turn, template("conversation-1", "user-1"))
    await adapter.send("one")
    assert texts(adapter) == ["saved one twice"]
    found = (await StateStorage(shared.outside).read([CONVERSATION]))[CONVERSATION]
    assert (found.get("before"), found.get("after")) == ("one", "one")


class Skewed(Tapped):
    """A store whose several-item read may be served item by item: once ``between`` is set,
    the next read that names ``last`` serves every other item first, runs ``between``,
    then serves ``last`` (as gathered point reads may be answered)."""

    def __init__(self, inner: ItemStore, last: str) -> None:
        super().__init__(inner)
        self.last = last
        self.between: Optional[Callable[[], Awaitable[None]]] = None

    async def get(self, item_ids: Sequence[str]) -> Dict[str, Item]:
        between, self.between = self.between, None
        if between is None or self.last not in item_ids:
            self.between = between
            return await super().get(item_ids)
        found = dict(await self.inner.get([i for i in item_ids if i != self.last]))
        await between()
        found.update(await self.inner.get([self.last]))
        return found


async def test_forget_me_keeps_the_index_entry_of_a_message_saved_between_its_reads(shared: Shared) -> None:
    """``forget me`` has emptied the conversation and reads the user's index entry with the
    conversation, to delete the entry unless the user is back. A message of theirs is saved
    (and rolled forward) after the conversation was read and before the entry was: the
    entry must stay, so that the next ``forget me`` finds the new records."""
    theirs = instance(shared)
    adapter = theirs.adapter()
    await adapter.send("cheese")
    texts(adapter)
    membership = keys.membership(CHANNEL, "user-1", "conversation-1")
    skewed = Skewed(shared.handle(), last=membership)
    forgetting = StateStorage(skewed)

    async def a_message_is_saved() -> None:
        await adapter.send("ham")
        await settle()

    async def arm_on_the_entry(puts: Sequence[Put]) -> None:
        if any(put.item_id == CONVERSATION for put in puts):  # the conversation is emptied
            skewed.before_put = None
            skewed.between = a_message_is_saved

    skewed.before_put = arm_on_the_entry
    await forget_user(forgetting, CHANNEL, "user-1")
    assert texts(adapter) == ["Order: ham"]
    await forget_user(StateStorage(shared.outside), CHANNEL, "user-1")
    left = set(await stored(shared.outside))
    assert not [key for key in left if "user-1" in key], sorted(left)


async def test_a_commit_whose_marker_would_not_fit_is_refused_before_anything_is_written(
    shared: Shared,
) -> None:
    """A partition at 60 % of the store's item limit, rewritten as large, with another
    partition: where the store has no atomic batch, its marker holds both versions (120 %),
    which no reader would take. The commit is refused whole, before any write; with a batch
    it lands."""
    storage = StateStorage(shared.handle())
    user = keys.user_state(CHANNEL, "user-1")
    await storage.write({user: {"notes": "n" * int(storage.max_item_bytes * 0.6)}})
    before = await stored(shared.outside)
    # The conversation first, as the runner orders a turn's changes: it is the home.
    rewritten = "r" * int(storage.max_item_bytes * 0.6)
    changes = [Change(CONVERSATION, {"order": ["cheese"]}), Change(user, {"notes": rewritten})]
    if storage.items.atomic_batch:
        await storage.commit(changes)
        assert (await storage.read([user]))[user]["notes"] == rewritten
        return
    with pytest.raises(ItemTooLargeError):
        await storage.commit(changes)
    assert await stored(shared.outside) == before


# --- one read round, one write -------------------------------------------------------------


async def test_a_turn_reads_once_before_the_bot_runs_and_writes_once(shared: Shared) -> None:
    """One write where the backend has atomic batches; elsewhere the commit protocol's:
    a marker on each other partition and the home partition's swap during the turn, each
    marker rolled forward after it (off the turn's path)."""
    ours = instance(shared)
    calls_during_the_bot: List[tuple[int, int]] = []

    async def count(_: TurnContext) -> None:
        calls_during_the_bot.append((len(ours.items.gets), len(ours.items.writes)))

    ours.bot.after_reply = count
    adapter = ours.adapter()
    for text in ("cheese", "ham"):  # a new conversation, then a usual turn
        ours.items.gets.clear()
        ours.items.writes.clear()
        await adapter.send(text)
        # Every scope was loaded and changed by then, from the one read round.
        assert calls_during_the_bot.pop() == (1, 0)
        partitions = {put.item_id for batch in ours.items.writes for put in batch}
        assert (len(ours.items.gets), len(ours.items.writes)) == (1, 1 if ours.items.atomic_batch else len(partitions))
        await settle()
        rolled = 1 if ours.items.atomic_batch else 2 * len(partitions) - 1
        assert len(ours.items.writes) == rolled
    assert texts(adapter) == ["Order: cheese", "Order: cheese, ham"]


# --- the store fails --------------------------------------------------------------------------


async def test_store_down_while_loading_says_so_and_sends_nothing_else(shared: Shared) -> None:
    ours = instance(shared)
    ours.items.after_get = down
    adapter = ours.adapter()
    await adapter.send("ham")
    assert texts(adapter) == [MESSAGES.unavailable]
    assert await stored(shared.outside) == {}


async def test_store_down_while_saving_withholds_the_reply_and_saves_nothing(shared: Shared) -> None:
    ours = instance(shared)
    adapter, before = await after_one_turn(ours)

    ours.items.before_put = down
    await adapter.send("ham")
    assert texts(adapter) == [MESSAGES.unavailable]  # never "Order: cheese, ham"
    assert await stored(shared.outside) == before

    ours.items.before_put = None
    await adapter.send("ham")
    assert texts(adapter) == ["Order: cheese, ham"]


async def test_a_write_that_hangs_is_unsure_within_the_deadline(shared: Shared) -> None:
    ours = instance(shared, deadline_seconds=1.0)
    adapter, before = await after_one_turn(ours)
    never = asyncio.Event()

    async def hang(_: Sequence[Put]) -> None:
        await never.wait()

    ours.items.before_put = hang
    started = time.perf_counter()
    await adapter.send("ham")
    assert time.perf_counter() - started < 1.5
    assert texts(adapter) == [MESSAGES.unsure]
    never.set()  # the store answers again: the cut-off commit is settled
    assert await stored(shared.outside) == before

    ours.items.before_put = None
    await asyncio.wait_for(adapter.send("ham"), 1)
    assert texts(adapter) == ["Order: cheese, ham"]


async def test_a_commit_cut_off_by_the_deadline_leaves_no_marker_in_the_next_turns_way(shared: Shared) -> None:
    """The deadline cancels a save while its home partition's write hangs (on the cloud
    stores, after the markers on the user's partitions were written). The user hears it
    may not have been saved; the markers are taken back at once, so their next message is
    saved (it got "busy" until the markers expired)."""
    ours = instance(shared, deadline_seconds=1.0)
    adapter, before = await after_one_turn(ours)
    never = asyncio.Event()

    async def hang_the_home(puts: Sequence[Put]) -> None:
        if any(put.item_id == CONVERSATION for put in puts):
            ours.items.before_put = None
            await never.wait()

    ours.items.before_put = hang_the_home
    await adapter.send("ham")
    assert texts(adapter) == [MESSAGES.unsure]
    await settle()
    assert await stored(shared.outside) == before
    await asyncio.wait_for(adapter.send("olives"), 1)
    assert texts(adapter) == ["Order: cheese, olives"]


def answer_lost(ours: Instance, shared: Shared, lands: bool) -> PutHook:
    """Our save of the conversation gets no answer (it ``lands``, or not), and before it
    is settled another instance adds a topping and saves."""
    rival = rival_adds(shared, budget=1)
    lost = False

    async def lose(puts: Sequence[Put]) -> None:
        nonlocal lost
        if lost or CONVERSATION not in (put.item_id for put in puts):
            return
        lost = True
        if lands:
            await ours.items.inner.put_all(puts) if len(puts) > 1 else await ours.items.inner.put(puts[0])
        await rival(puts)
        raise WriteOutcomeUnknownError("the connection closed before the answer")

    return lose


async def test_a_save_whose_answer_was_lost_counts_once_though_another_instance_saved_since(
    shared: Shared,
) -> None:
    """Read back, the conversation has moved on, but it keeps records only our save wrote:
    it landed. Its replies go out, and nothing is saved twice."""
    ours = instance(shared)
    adapter, _ = await after_one_turn(ours)

    ours.items.before_put = answer_lost(ours, shared, lands=True)
    await adapter.send("ham")
    assert texts(adapter) == ["Order: cheese, ham"]
    assert await toppings(shared) == ["cheese", "ham", "rival-1"]


async def test_a_save_whose_answer_was_lost_and_that_another_save_overtook_is_not_confirmed(
    shared: Shared,
) -> None:
    """Read back, the conversation has moved on and holds nothing of our save: it did not
    land, or was overwritten whole. The user is told that it cannot be confirmed, and it
    is not sent again."""
    ours = instance(shared)
    adapter, _ = await after_one_turn(ours)

    ours.items.before_put = answer_lost(ours, shared, lands=False)
    await adapter.send("ham")
    assert texts(adapter) == [MESSAGES.unsure]
    assert await toppings(shared) == ["cheese", "rival-1"]


# --- the bot misbehaves -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds", [0.8, 1.5], ids=["into the time kept for saving", "past the deadline"]
)
async def test_a_bot_too_slow_for_the_deadline_saves_nothing_and_frees_the_conversation(
    shared: Shared, seconds: float
) -> None:
    ours = instance(shared, deadline_seconds=1.0)
    adapter, before = await after_one_turn(ours)

    async def dawdle(_: TurnContext) -> None:
        await asyncio.sleep(seconds)

    ours.bot.after_reply = dawdle
    started = time.perf_counter()
    await adapter.send("ham")
    assert time.perf_counter() - started < 1.2
    assert texts(adapter) == [MESSAGES.too_slow]
    assert await stored(shared.outside) == before

    ours.bot.after_reply = None
    started = time.perf_counter()
    await adapter.send("order")
    assert time.perf_counter() - started < 0.3, "the next turn waited"
    assert texts(adapter) == ["Order: cheese"]


async def test_clear_state_saves_over_the_record_it_read(shared: Shared) -> None:
    adapter = instance(shared).adapter()
    await adapter.send("ham")
    await adapter.send("start over")
    await adapter.send("cheese")
    # Not "busy": the save used the e_tag read before clear_state, not create-only.
    assert texts(adapter) == ["Order: ham", "Cleared.", "Order: cheese"]


async def test_a_bot_exception_sends_nothing_saves_nothing_and_frees_the_lock(shared: Shared) -> None:
    ours = instance(shared)
    adapter, before = await after_one_turn(ours)

    async def bug(_: TurnContext) -> None:
        raise RuntimeError("a bug in the bot")

    ours.bot.after_reply = bug  # after changing every scope and replying
    with pytest.raises(RuntimeError, match="a bug in the bot"):
        await adapter.send("half-done")
    assert texts(adapter) == []
    assert await stored(shared.outside) == before

    ours.bot.after_reply = None
    # The conversation's lock was released: the next turn runs at once.
    await asyncio.wait_for(adapter.send("order"), 5)
    assert texts(adapter) == ["Order: cheese"]


# --- direct writes -------------------------------------------------------------------------


async def test_a_staged_delete_and_write_are_saved_together(shared: Shared) -> None:
    """The bot moves a draft to its notes (a direct write and a direct delete, in two
    other partitions): both land with the turn's state, or neither does."""
    draft_key, notes_key = f"{CHANNEL}/drafts/user-1", f"{CHANNEL}/notes/user-1"
    admin = StateStorage(shared.outside)
    await admin.write({draft_key: {"text": "first draft"}})
    ours = instance(shared, RetryPolicy(max_retries=0))
    edit_meanwhile: List[str] = []

    async def archive(_: TurnContext) -> None:
        draft = (await ours.turn_storage.read([draft_key]))[draft_key]
        await ours.turn_storage.write({notes_key: {"text": draft["text"]}})
        await ours.turn_storage.delete([draft_key])
        for text in edit_meanwhile:  # another instance edits the draft before we save
            await admin.write({draft_key: {**(await admin.read([draft_key]))[draft_key], "text": text}})
        edit_meanwhile.clear()

    ours.bot.after_reply = archive
    adapter = ours.adapter()
    ours.items.before_put = down
    await adapter.send("cheese")
    ours.items.before_put = None
    assert texts(adapter) == [MESSAGES.unavailable]
    assert set(await stored(shared.outside)) == {draft_key}

    # The delete is conditional on the draft the turn read: it fails, so the notes
    # (written unconditionally) are not saved either.
    edit_meanwhile.append("second draft")
    await adapter.send("cheese")
    assert texts(adapter) == [MESSAGES.busy]
    found = await admin.read([draft_key, notes_key])
    assert (found[draft_key]["text"], notes_key in found) == ("second draft", False)

    await adapter.send("cheese")
    assert texts(adapter) == ["Order: cheese"]
    found = await admin.read([draft_key, notes_key, CONVERSATION])
    assert (draft_key in found, found[notes_key]["text"]) == (False, "second draft")
    assert found[CONVERSATION]["RunnerOrder"].toppings == ["cheese"]


# --- one process --------------------------------------------------------------------------------


async def test_turns_of_one_conversation_in_one_process_queue_instead_of_conflicting(
    shared: Shared, caplog: pytest.LogCaptureFixture
) -> None:
    ours = instance(shared)
    adapter = ours.adapter()
    await adapter.send("order")
    with caplog.at_level(logging.INFO, logger=RUNNER_LOG):
        await asyncio.gather(
            *(
                adapter.process_activity(
                    Activity(type=ActivityTypes.message, text=f"t{i}"), ours.runner.on_turn
                )
                for i in range(10)
            )
        )
    assert sorted(await toppings(shared)) == sorted(f"t{i}" for i in range(10))
    assert "turn conflict" not in caplog.text
    # Idle locks are not kept: the table does not grow with the conversations seen.
    gc.collect()
    assert len(ours.runner._conversation_locks) == 0


async def test_every_turns_dialog_context_gets_the_memory_scopes_built_once() -> None:
    """The SDK would build its memory scopes for each DialogContext; the runner hands every
    turn one set, the same scopes in the same order as the SDK's own."""
    storage = TurnScopedStorage(StateStorage(MemoryItems()))
    states = [ConversationState(storage), UserState(storage), PrivateConversationState(storage)]
    dialogs = DialogSet(states[2].create_property("DialogState"))
    seen: List[DialogStateManagerConfiguration] = []

    class DialogBot(ActivityHandler):
        async def on_message_activity(self, turn_context: TurnContext) -> None:
            dialog_context = await dialogs.create_context(turn_context)
            seen.append(dialog_context.state.configuration)
            await turn_context.send_activity(f"{len(dialog_context.state)} scopes")

    runner = TurnRunner(DialogBot(), states, storage, FAST_RETRIES)
    adapter = TestAdapter(runner.on_turn, template("conversation-1", "user-1"))
    await adapter.send("one")
    await adapter.send("two")
    assert texts(adapter) == ["9 scopes", "9 scopes"]
    assert seen[0] is seen[1]

    sdk_built = DialogStateManager(DialogContext(dialogs, TurnContext(adapter, template("c", "u")), DialogState()))
    assert [type(scope) for scope in seen[0].memory_scopes] == [
        type(scope) for scope in sdk_built.configuration.memory_scopes
    ]
    assert [type(resolver) for resolver in seen[0].path_resolvers] == [
        type(resolver) for resolver in sdk_built.configuration.path_resolvers
    ]


def test_retry_policy_is_bounded() -> None:
    policy = RetryPolicy(max_retries=1000, base_delay_seconds=0.02, max_delay_seconds=0.5)
    delays = [policy.delay(attempt) for attempt in range(1, 1000)]
    assert max(delays) <= 0.5 and min(delays) >= 0


async def test_the_cache_of_last_versions_is_bounded_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """A partition whose item is large is read again rather than kept; all that is kept
    stays under the size budget, oldest out first (one large item each in 1,024
    conversations would otherwise have held gigabytes)."""
    monkeypatch.setattr(partitions_module, "CACHE_TOTAL_CHARS", 20_000)
    storage = StateStorage(MemoryItems())
    cache = storage._partitions
    big = keys.conversation_state(CHANNEL, "big")
    await storage.write({big: {"text": "x" * (partitions_module.CACHE_ITEM_CHARS + 1)}})
    assert cache.known(big) is None
    small = [keys.conversation_state(CHANNEL, f"small-{n}") for n in range(40)]
    for key in small:
        await storage.write({key: {"text": "y" * 1000}})
    kept = [key for key in small if cache.known(key) is not None]
    assert kept == small[-len(kept):] and 0 < len(kept) < len(small)
    assert cache._cached_chars <= 20_000
