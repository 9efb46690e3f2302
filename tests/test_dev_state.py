"""The development state endpoint: there only when asked for, never with an app id,
answering only on 127.0.0.1, and showing records exactly as stored."""

from __future__ import annotations

import json
from typing import Dict, Optional
from unittest import mock

import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from app import create_app
from config import DefaultConfig
from data_models import UserProfile, UtteranceLog
from state_engine.stores import memory_storage
from state_engine.hosting.dev_state import make_dev_state_handler

QUERY = "/dev/state?channel=emulator&conversation=conversation-1&user=user-1"


async def get_status(config: DefaultConfig) -> int:
    async with TestClient(TestServer(create_app(config), host="127.0.0.1")) as client:
        response = await client.get(QUERY)
        return response.status


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"STORAGE": "memory"}, id="setting-off"),
        pytest.param(
            {"STORAGE": "memory", "DEV_STATE_ENDPOINT": "true", "MicrosoftAppId": "an-app-id"},
            id="app-id-configured",
        ),
    ],
)
async def test_the_endpoint_does_not_exist(env: Dict[str, str]) -> None:
    assert await get_status(DefaultConfig.from_env(env)) == 404


async def test_the_endpoint_exists_when_the_setting_is_on() -> None:
    config = DefaultConfig.from_env({"STORAGE": "memory", "DEV_STATE_ENDPOINT": "true"})
    assert await get_status(config) == 200


def mocked_get(path: str, peer: str, host: Optional[str] = None):
    """A request as if it came from ``peer`` (the TCP peer address aiohttp reports)."""
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 50000) if name == "peername" else default
    )
    return make_mocked_request(
        "GET", path, headers={"Host": host or "127.0.0.1:3978"}, transport=transport
    )


async def test_a_request_from_another_machine_is_refused() -> None:
    handler = make_dev_state_handler(memory_storage())
    response = await handler(mocked_get(QUERY, peer="203.0.113.7"))
    assert response.status == 403


async def test_a_request_for_another_host_name_is_refused() -> None:
    """DNS rebinding: the peer is this machine, but the page asked for evil.example."""
    handler = make_dev_state_handler(memory_storage())
    response = await handler(mocked_get(QUERY, peer="127.0.0.1", host="evil.example:3978"))
    assert response.status == 403


async def test_missing_ids_are_a_bad_request() -> None:
    handler = make_dev_state_handler(memory_storage())
    response = await handler(mocked_get("/dev/state?channel=emulator", peer="127.0.0.1"))
    assert response.status == 400
    assert b"conversation, user" in response.body


async def test_records_are_shown_as_stored_under_their_keys() -> None:
    store = memory_storage()
    await store.write(
        {
            "emulator/users/user-1": {"UserProfile": UserProfile(name="Ada")},
            "emulator/conversations/conversation-1/log": UtteranceLog(["hi"], turn_number=1),
        }
    )
    response = await make_dev_state_handler(store)(mocked_get(QUERY, peer="::1", host="[::1]:3978"))
    assert response.status == 200
    records = {record["scope"]: record for record in json.loads(response.body)["records"]}

    assert list(records) == [
        "user state",
        "conversation state",
        "private conversation state",
        "utterance log",
    ]
    user = records["user state"]
    assert user["key"] == "emulator/users/user-1"
    assert user["e_tag"]
    assert user["document"] == {
        "UserProfile": {"$type": "UserProfile", "$value": {"name": "Ada", "age": None}}
    }
    assert records["utterance log"]["document"]["$value"]["turn_number"] == 1
    assert records["private conversation state"] == {
        "scope": "private conversation state",
        "key": "emulator/conversations/conversation-1/users/user-1/",
        "e_tag": None,
        "document": None,
    }
