"""A write that got no answer, on every cloud store, against the real emulators.

Between the store and the bot a proxy loses the answer to a write the store carried out,
holds a write back until after its caller gave up, or cuts the store off. Whatever
happened, the caller is told the truth: written (once, never sent again), not written
(and then it never lands, even late), or that it cannot be known yet.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable, Dict, List, Tuple

import pytest

from state_engine.conditions import if_match
from state_engine.errors import StorageUnavailableError, WriteOutcomeUnknownError
from state_engine.stores import StateStorage, open_items, read_backend_settings
from state_engine.stores.state_storage import Change
from state_engine.testing.backends import CLOUD
from state_engine.testing.fault_proxy import FaultProxy, through, upstream_of

EnvFor = Callable[[str], Dict[str, str]]
#: Each item call's timeout here; a held write is let through well after it.
CALL_TIMEOUT = 0.5
HOLD = 1.5


@pytest.fixture(params=CLOUD)
async def proxied(request: pytest.FixtureRequest, backend_env: EnvFor) -> AsyncIterator[Tuple[StateStorage, FaultProxy]]:
    """A store on a fresh container behind a fault proxy, already set up (one write made)."""
    env = backend_env(request.param)
    with FaultProxy(upstream_of(env)) as proxy:
        settings = read_backend_settings(request.param, through(env, proxy))
        store = StateStorage(open_items(request.param, settings, request_timeout=CALL_TIMEOUT))
        await store.write({"order": {"n": 1}})
        try:
            yield store, proxy
        finally:
            await store.close()


async def _n(store: StateStorage, key: str = "order") -> int:
    return (await store.read([key]))[key]["n"]


async def _next(store: StateStorage, key: str = "order") -> Dict[str, int]:
    current = (await store.read([key]))[key]
    return {**current, "n": current["n"] + 1}


async def test_a_write_whose_answer_was_lost_is_found_written_and_never_sent_again(proxied) -> None:
    store, proxy = proxied
    proxy.lose_answer()
    sent = len(proxy.writes)
    await store.write({"order": await _next(store)})
    assert await _n(store) == 2
    assert len(proxy.writes) == sent + 1, f"sent again: {proxy.writes[sent:]}"
    await store.write({"order": await _next(store)})  # the store knows the item's version
    assert await _n(store) == 3


async def test_a_write_held_past_its_timeout_is_fenced_off_and_never_lands(proxied) -> None:
    store, proxy = proxied
    proxy.hold_write(HOLD)
    change = await _next(store)
    with pytest.raises(StorageUnavailableError, match="fenced off") as refused:
        await store.write({"order": change})
    assert not isinstance(refused.value, WriteOutcomeUnknownError)
    await asyncio.sleep(HOLD + 0.5)  # the held write has reached the store by now
    assert await _n(store) == 1
    await store.write({"order": await _next(store)})
    assert await _n(store) == 2


async def test_a_lost_answer_with_the_store_then_gone_is_unknown_and_it_did_land(proxied) -> None:
    store, proxy = proxied
    change = await _next(store)
    proxy.lose_answer(then_cut=True)  # the read back cannot tell
    with pytest.raises(WriteOutcomeUnknownError):
        await store.write({"order": change})
    proxy.restore()
    assert await _n(store) == 2  # "unknown" was the truth: it had landed


async def test_a_commit_across_partitions_whose_home_answer_was_lost_counts_whole(proxied) -> None:
    """The commit point is the home's write (the second: after the other's marker)."""
    store, proxy = proxied
    await store.write({"user": {"n": 1}})
    order, user = (await store.read(["order", "user"])).values()
    proxy.lose_answer(skip=1)
    await store.commit(_both(order, user))
    assert await _n(store, "order") == 2 and await _n(store, "user") == 2


async def test_a_commit_across_partitions_whose_home_write_was_held_leaves_nothing(proxied) -> None:
    store, proxy = proxied
    await store.write({"user": {"n": 1}})
    order, user = (await store.read(["order", "user"])).values()
    proxy.hold_write(HOLD, skip=1)
    with pytest.raises(StorageUnavailableError, match="fenced off") as refused:
        await store.commit(_both(order, user))
    assert not isinstance(refused.value, WriteOutcomeUnknownError)
    await asyncio.sleep(HOLD + 0.5)
    assert await _n(store, "order") == 1 and await _n(store, "user") == 1
    order, user = (await store.read(["order", "user"])).values()
    await store.commit(_both(order, user))  # the marker was taken back: nothing waits
    assert await _n(store, "order") == 2 and await _n(store, "user") == 2


def _both(order: Dict[str, int], user: Dict[str, int]) -> List[Change]:
    """One more on each, ``order`` first: its partition is the commit's home."""
    return [
        Change("order", {"n": order["n"] + 1}, if_match(order["e_tag"])),
        Change("user", {"n": user["n"] + 1}, if_match(user["e_tag"])),
    ]
