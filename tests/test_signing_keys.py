"""SigningKeys (hosting/authentication.py) against real local servers, in this process:
one shared fetch within its time limit, a cap on the requests waiting for it, no fetch
again for a while after one failed, and keys kept once fetched."""

from __future__ import annotations

import asyncio
import time
from typing import Iterator

import pytest
from botframework.connector.auth import (
    AuthenticationConstants,
    GovernmentConstants,
    JwtTokenExtractor,
)

from state_engine.hosting.authentication import (
    KeysBusy,
    KeysUnavailable,
    SigningKeys,
    use_openid_metadata,
)
from state_engine.testing.blackhole import Blackhole
from state_engine.testing.openid import OpenIdIssuer


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    with Blackhole() as server:
        yield server


@pytest.fixture(scope="module")
def issuer() -> Iterator[OpenIdIssuer]:
    with OpenIdIssuer(endorsements=["msteams", "emulator"]) as server:
        yield server


async def test_waiters_share_one_fetch_and_those_beyond_the_cap_are_refused_at_once(blackhole):
    keys = SigningKeys(f"{blackhole.url}/openid", fetch_timeout=2, max_waiting=3)
    started = time.monotonic()

    async def attempt() -> tuple[str, float]:
        try:
            await keys.get("some-key")
        except (KeysBusy, KeysUnavailable) as error:
            return type(error).__name__, time.monotonic() - started
        return "accepted", time.monotonic() - started

    outcomes = await asyncio.gather(*(attempt() for _ in range(6)))
    busy = [seconds for name, seconds in outcomes if name == "KeysBusy"]
    unavailable = [seconds for name, seconds in outcomes if name == "KeysUnavailable"]
    assert len(busy) == 3 and len(unavailable) == 3, outcomes
    assert max(busy) < 1, "refused without waiting"
    assert all(1.5 < seconds < 10 for seconds in unavailable), "waited for the fetch's time limit"
    assert blackhole.accepted == 1, "one fetch for every waiter"


async def test_after_a_failed_fetch_none_is_tried_until_the_pause_is_over(blackhole):
    keys = SigningKeys(f"{blackhole.url}/openid", fetch_timeout=0.5, retry_after_failure=1.5)
    with pytest.raises(KeysUnavailable, match="no answer in time"):
        await keys.get("some-key")
    started = time.monotonic()
    with pytest.raises(KeysUnavailable, match="failed 0 s ago"):
        await keys.get("some-key")
    assert time.monotonic() - started < 0.3
    assert blackhole.accepted == 1
    await asyncio.sleep(1.6)
    with pytest.raises(KeysUnavailable, match="no answer in time"):
        await keys.get("some-key")
    assert blackhole.accepted == 2


async def test_keys_are_fetched_once_and_an_unknown_key_id_does_not_fetch_again(issuer):
    keys = SigningKeys(issuer.metadata_url)
    before = issuer.fetches
    first = await keys.get(issuer.key_id)
    assert await keys.get(issuer.key_id) is first
    assert first.endorsements == ["msteams", "emulator"]
    with pytest.raises(PermissionError, match="not-published"):
        await keys.get("not-published")
    with pytest.raises(PermissionError):
        await keys.get(None)
    assert issuer.fetches - before == 2, "the metadata, then its keys, once"


async def test_an_endpoint_answering_with_an_error_or_not_json_is_unavailable(issuer):
    for url in (f"{issuer.url}/no-such-path", f"{issuer.url}/v1/.well-known/keys"):
        keys = SigningKeys(url)
        with pytest.raises(KeysUnavailable):
            await keys.get(issuer.key_id)


def test_every_metadata_url_the_sdk_may_use_is_served_by_signing_keys():
    use_openid_metadata()
    for url in (
        AuthenticationConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
        AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
        GovernmentConstants.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL,
        GovernmentConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL,
    ):
        assert isinstance(JwtTokenExtractor.get_open_id_metadata(url), SigningKeys), url
