"""The development state endpoint: there only when asked for, never with an app id,
answering only on 127.0.0.1, and showing records as stored and readably."""

from __future__ import annotations

import dataclasses
import json
from typing import Dict, Optional
from unittest import mock

import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from botbuilder.dialogs import DialogInstance, DialogState
from botbuilder.dialogs.prompts import PromptOptions
from botbuilder.schema import Activity

from app import create_app
from config import DefaultConfig
from data_models import PizzaOrder, UserProfile, Utterance, UtteranceLog
from state_engine.codec import encode_value
from state_engine.stores import StateStorage, memory_storage
from state_engine.hosting.dev_state import make_dev_state_handler, readable

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


def test_the_engine_refuses_the_endpoint_with_an_app_id_whatever_the_config_says() -> None:
    config = DefaultConfig.from_env({"STORAGE": "memory", "MicrosoftAppId": "an-app-id"})
    with pytest.raises(ValueError, match="never served with an app id"):
        create_app(dataclasses.replace(config, DEV_STATE_ENDPOINT=True))


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


async def read_records(store: StateStorage) -> Dict[str, dict]:
    response = await make_dev_state_handler(store)(mocked_get(QUERY, peer="::1", host="[::1]:3978"))
    assert response.status == 200
    return {record["scope"]: record for record in json.loads(response.body)["records"]}


async def test_records_are_shown_as_stored_under_their_keys() -> None:
    store = memory_storage()
    log = UtteranceLog([Utterance("user-1", "hi")], turn_number=1)
    await store.write(
        {
            "emulator/users/user-1": {"UserProfile": UserProfile(name="Ada")},
            "emulator/conversations/conversation-1/log": log,
        }
    )
    records = await read_records(store)

    assert list(records) == [
        "user state",
        "conversation state",
        "private conversation state",
        "utterance log",
    ]
    user = records["user state"]
    assert user["key"] == "emulator/users/user-1"
    assert user["e_tag"]
    # As stored: the codec's JSON, type tags and all.
    assert user["document"] == {"UserProfile": encode_value(UserProfile(name="Ada"))}
    # Readably: each type tag inside the object it names.
    assert user["view"] == {"UserProfile": {"$type": "UserProfile", "name": "Ada", "age": None}}
    assert records["utterance log"]["view"] == {
        "$type": "UtteranceLog",
        "utterances": [{"$type": "Utterance", "user_id": "user-1", "text": "hi"}],
        "turn_number": 1,
    }
    assert records["private conversation state"] == {
        "scope": "private conversation state",
        "key": "emulator/conversations/conversation-1/users/user-1/",
        "e_tag": None,
        "document": None,
        "view": None,
        "summaries": {},
    }


def test_the_view_reads_both_shapes_of_type_tags() -> None:
    """Tags around the object (``$value``) and inside it read the same; a tagged
    value that is no object (a datetime) is shown as that value."""
    around = {
        "PizzaOrder": {"$type": "PizzaOrder", "$value": {"toppings": ["mushrooms"]}},
        "seen": {"$type": "datetime", "$value": "2026-11-25T12:00:00"},
        "stack": [{"$type": "DialogInstance", "$value": {"id": "ProfileDialog", "state": {}}}],
    }
    inside = {
        "PizzaOrder": {"$type": "PizzaOrder", "toppings": ["mushrooms"]},
        "seen": {"$type": "datetime", "$value": "2026-11-25T12:00:00"},
        "stack": [{"$type": "DialogInstance", "id": "ProfileDialog", "state": {}}],
    }
    expected = {
        "PizzaOrder": {"$type": "PizzaOrder", "toppings": ["mushrooms"]},
        "seen": "2026-11-25T12:00:00",
        "stack": [{"$type": "DialogInstance", "id": "ProfileDialog", "state": {}}],
    }
    assert readable(around) == readable(inside) == expected


def profile_dialog_waiting_for_the_age() -> DialogState:
    """The stack ProfileDialog leaves after "profile", "Ada": its waterfall at the
    second step, a NumberPrompt on top of it (the SDK keeps the top at index 0)."""
    prompt = PromptOptions(prompt=Activity(type="message", text="How old are you?"))
    inner = DialogState(
        [
            DialogInstance("NumberPrompt", {"options": prompt, "state": {}}),
            DialogInstance(
                "WaterfallDialog",
                {"options": None, "values": {"name": "Ada"}, "instanceId": "i-1", "stepIndex": 1},
            ),
        ]
    )
    return DialogState([DialogInstance("ProfileDialog", {"dialogs": inner})])


@pytest.mark.parametrize(
    "dialog_state, summary",
    [
        pytest.param(
            profile_dialog_waiting_for_the_age(),
            "ProfileDialog › step 2 › waiting in NumberPrompt: How old are you?",
            id="waiting",
        ),
        pytest.param(DialogState(), "no dialog running", id="empty"),
    ],
)
async def test_a_dialog_stack_is_summed_up_in_one_line(
    dialog_state: DialogState, summary: str
) -> None:
    store = memory_storage()
    await store.write(
        {
            "emulator/conversations/conversation-1": {
                "DialogState": dialog_state,
                "PizzaOrder": PizzaOrder(["mushrooms"]),
            }
        }
    )
    record = (await read_records(store))["conversation state"]
    assert record["summaries"] == {"DialogState": summary}
    assert record["view"]["PizzaOrder"] == {"$type": "PizzaOrder", "toppings": ["mushrooms"]}
