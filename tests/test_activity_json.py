"""Our fast activity JSON is the SDK's JSON, for every kind of reply the bot sends."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botbuilder.core import MessageFactory
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    CardAction,
    ChannelAccount,
    ConversationAccount,
    Mention,
)
from botbuilder.dialogs.choices import ChoiceFactory

from adapter.activity_json import activity_to_json


def _addressed(activity: Activity) -> Activity:
    """Fields TurnContext adds to every reply."""
    activity.from_property = ChannelAccount(id="bot", name="Bot", role="bot")
    activity.recipient = ChannelAccount(id="user-1", name="User", role="user")
    activity.conversation = ConversationAccount(id="conversation-1", is_group=False)
    activity.service_url = "http://127.0.0.1:9/"
    activity.channel_id = "emulator"
    activity.reply_to_id = "activity-1"
    activity.locale = "en-US"
    return activity


REPLIES = {
    "text": MessageFactory.text("Ada sent: <b>hi</b> 😀 \u0007"),
    "suggested actions (ConfirmPrompt on the Emulator)": ChoiceFactory.suggested_action(
        ["Yes", "No"], "Save this profile?"
    ),
    "trace (on_turn_error)": Activity(
        type=ActivityTypes.trace,
        label="TurnError",
        name="on_turn_error Trace",
        timestamp=dt.datetime(2026, 11, 25, 12, 0, 1, 123456, tzinfo=dt.timezone.utc),
        value="RuntimeError: a bug",
        value_type="https://www.botframework.com/schemas/error",
    ),
    "attachments, entities, channel data": Activity(
        type="message",
        attachments=[Attachment(content_type="application/json", content={"a": [1, {"b": None}]})],
        entities=[Mention(text="@Ada", mentioned=ChannelAccount(id="user-1"))],
        channel_data={"nested": {"list": [True, 2.5]}},
        members_added=[],
    ),
    "card action with an object value": MessageFactory.suggested_actions(
        [CardAction(type="postBack", title="Go", value={"command": "profile"})], "Pick"
    ),
    "an object value msrest must handle (falls back)": Activity(
        type="event", name="when", value={"at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)}
    ),
}


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_same_json_as_the_sdk(name):
    activity = _addressed(REPLIES[name])
    assert json.dumps(activity_to_json(activity), sort_keys=True) == json.dumps(
        activity.serialize(), sort_keys=True
    )
