"""Our fast activity JSON is the SDK's JSON, for every kind of reply a bot sends: the
same wire text out, the same Activity back in (state_engine/activity_json.py)."""

from __future__ import annotations

import copy
import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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

from msrest.serialization import Deserializer, Model

from state_engine.activity_json import activity_from_json, activity_to_json, copy_model
from state_engine.wire_types import read_iso


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


def _shape(value, seen=None):
    """A value's structure, object identity inside it included (which parts are shared)."""
    seen = {} if seen is None else seen
    if isinstance(value, Model):
        if id(value) in seen:
            return ("same as", seen[id(value)])
        seen[id(value)] = len(seen)
        return (type(value).__name__, {k: _shape(v, seen) for k, v in sorted(vars(value).items())})
    if isinstance(value, list):
        return [_shape(item, seen) for item in value]
    if isinstance(value, dict):
        return {k: _shape(v, seen) for k, v in value.items()}
    return (type(value).__name__, value)


def _objects(value, found=None):
    """Every mutable object reachable from ``value``."""
    found = [] if found is None else found
    if isinstance(value, (Model, list, dict)):
        found.append(value)
        items = vars(value).values() if isinstance(value, Model) else (
            value.values() if isinstance(value, dict) else value)
        for item in items:
            _objects(item, found)
    return found


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_copy_model_is_what_deepcopy_makes(name):
    activity = _addressed(REPLIES[name])
    activity.recipient = activity.from_property  # a shared object stays shared in the copy
    copied, reference = copy_model(activity), copy.deepcopy(activity)
    assert type(copied) is Activity
    assert _shape(copied) == _shape(reference)
    assert json.dumps(copied.serialize(), sort_keys=True) == json.dumps(reference.serialize(), sort_keys=True)
    # Nothing mutable is shared with the original.
    originals = {id(obj) for obj in _objects(activity)}
    assert not originals & {id(obj) for obj in _objects(copied)}


@pytest.mark.parametrize("name", sorted(REPLIES))
def test_same_json_as_the_sdk(name):
    activity = _addressed(REPLIES[name])
    assert json.dumps(activity_to_json(activity), sort_keys=True) == json.dumps(
        activity.serialize(), sort_keys=True
    )


def _as_data(value):
    """A model as plain data, every attribute included (additional_properties too)."""
    if isinstance(value, Model):
        return {type(value).__name__: {k: _as_data(v) for k, v in vars(value).items()}}
    if isinstance(value, list):
        return [_as_data(item) for item in value]
    if isinstance(value, dict):
        return {k: _as_data(v) for k, v in value.items()}
    return value


INCOMING = {
    "Emulator message": {
        "type": "message", "id": "a1", "channelId": "emulator", "serviceUrl": "http://127.0.0.1:9",
        "from": {"id": "u", "name": "User", "role": "user"}, "recipient": {"id": "bot", "name": "Bot"},
        "conversation": {"id": "c", "isGroup": False}, "timestamp": "2026-11-25T12:00:00.000Z",
        "localTimestamp": "2026-11-25T13:00:00.123+01:00", "locale": "en-US", "text": "hi",
        "entities": [{"type": "ClientCapabilities", "requiresBotState": True}],
        "channelData": {"clientActivityID": "x", "nested": [1, {"a": None}]},
    },
    "conversationUpdate": {
        "type": "conversationUpdate", "channelId": "emulator", "serviceUrl": "http://127.0.0.1:9",
        "from": {"id": "u"}, "conversation": {"id": "c"},
        "membersAdded": [{"id": "u", "name": "User"}, {"id": "bot"}], "membersRemoved": [],
    },
    "unknown fields and attachments": {
        "type": "message", "channelId": "webchat", "serviceUrl": "https://x.invalid",
        "from": {"id": "u", "extra": 1}, "conversation": {"id": "c"}, "textFormat": "markdown",
        "attachments": [{"contentType": "image/png", "contentUrl": "https://x.invalid/a.png"}],
        "suggestedActions": {"to": ["u"], "actions": [{"type": "imBack", "title": "Yes", "value": "Yes"}]},
        "somethingNew": {"deep": [True]}, "value": {"k": [1, 2.5, "s"]},
    },
    "invoke": {
        "type": "invoke", "name": "adaptiveCard/action", "channelId": "msteams",
        "serviceUrl": "https://x.invalid", "from": {"id": "u"}, "conversation": {"id": "c"},
        "value": {"action": {"type": "Action.Execute", "verb": "go", "data": {}}},
        "relatesTo": {"activityId": "a0", "channelId": "msteams", "serviceUrl": "https://x.invalid"},
    },
}


@pytest.mark.parametrize("name", sorted(INCOMING))
def test_same_activity_as_the_sdk_reads(name):
    body = INCOMING[name]
    assert _as_data(activity_from_json(body)) == _as_data(Activity().deserialize(body))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_account = st.fixed_dictionaries({"id": st.text(min_size=1, max_size=8)}, optional={"name": st.text(max_size=8)})
_activities = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["message", "event", "invoke", "conversationUpdate", "typing"]),
        "channelId": st.text(min_size=1, max_size=8),
        "serviceUrl": st.just("http://127.0.0.1:9"),
        "from": _account,
        "conversation": _account,
    },
    optional={
        "text": st.text(max_size=20),
        "timestamp": st.datetimes(timezones=st.just(dt.timezone.utc)).map(
            lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        ),
        "channelData": _json,
        "value": _json,
        "membersAdded": st.lists(_account, max_size=2),
        "entities": st.lists(st.fixed_dictionaries({"type": st.text(max_size=6)}, optional={"x": _json}), max_size=2),
        "attachments": st.lists(st.fixed_dictionaries({"contentType": st.text(max_size=6)}, optional={"content": _json}), max_size=2),
        "unknownField": _json,
    },
)


@settings(max_examples=300, deadline=None)
@given(_activities)
def test_same_activity_as_the_sdk_reads_for_generated_json(body):
    assert _read(activity_from_json, body) == _read(Activity().deserialize, body)


def _read(reader, body):
    """What reading the body gives: the activity as data, or that it was refused."""
    try:
        return _as_data(reader(body))
    except ValueError:  # msrest's and azure-core's DeserializationError
        return "refused"


def _iso(reader, text):
    """What reading the text as a date gives: the instant (naive or aware), or a refusal."""
    try:
        value = reader(text)
    except ValueError:  # msrest's DeserializationError
        return "refused"
    return (value.replace(tzinfo=None), value.utcoffset())


ISO_TEXTS = [
    "2026-12-02T19:00:00Z", "2026-12-02T19:00:00.1Z", "2026-12-02T19:00:00.1234567Z",
    "2026-12-02T23:59:59.9999999+05:30", "2026-12-02T19:00:00-00:00", "2026-12-02T19:00:00",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-02-30T00:00:00Z",
    "2026-12-02T24:00:00Z", "2026-12-02T19:00:00+24:00", "2026-12-02t19:00:00z",
    "2026-12-02 19:00:00Z", "2026-12-02T19:00Z", "yesterday", "\u0662026-12-02T19:00:00Z",
]


@pytest.mark.parametrize("text", ISO_TEXTS)
def test_dates_read_as_msrest_reads_them(text):
    assert _iso(read_iso, text) == _iso(Deserializer.deserialize_iso, text)


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(timezones=st.none() | st.timezones()),
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
    st.sampled_from(["", "Z", "7"]),
)
def test_generated_dates_read_as_msrest_reads_them(value, timespec, ending):
    text = value.isoformat(timespec=timespec)
    if ending == "Z" and value.tzinfo is None:
        text += "Z"
    elif ending == "7" and timespec == "microseconds":
        text = text[:26] + "7" + text[26:]  # .NET writes 7 digits
    assert _iso(read_iso, text) == _iso(Deserializer.deserialize_iso, text)
