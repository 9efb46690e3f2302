"""The safe codec: the shape it stores, the records it still reads, and everything it
refuses (only with UnsafeDocumentError on read, TypeError or ValueError on write)."""

from __future__ import annotations

import datetime as dt
import json
import shlex
import time
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

import pytest
from botbuilder.dialogs import DialogInstance, DialogState
from botbuilder.dialogs.choices import Choice, ListStyle
from botbuilder.dialogs.prompts import PromptOptions
from botbuilder.schema import Activity, ActivityTypes, CardAction, SuggestedActions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonpickle.unpickler import Unpickler

from data_models import (
    ConversationData,
    PizzaOrder,
    PrivateConversationData,
    UserProfile,
    Utterance,
    UtteranceLog,
)
from state_engine.codec import (
    MAX_DEPTH,
    decode_value,
    dumps,
    encode_value,
    loads,
    loads_object,
    register_dataclass,
    register_plain_class,
)
from state_engine.errors import UnsafeDocumentError


@register_dataclass
@dataclass
class UserConversations:
    """A typed list field, as the sample's data models have (an earlier one, kept for the tests)."""

    conversation_ids: List[str] = field(default_factory=list)

WHEN = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)


@register_dataclass
@dataclass
class Annotated:
    """A data model with every annotation the codec checks."""

    text: str = ""
    count: int = 0
    ratio: float = 0.0
    flag: bool = False
    maybe: Optional[int] = None
    names: List[str] = field(default_factory=list)
    scores: Dict[str, int] = field(default_factory=dict)
    profile: Optional[UserProfile] = None
    orders: List[PizzaOrder] = field(default_factory=list)
    when: Optional[dt.datetime] = None
    style: Optional[ListStyle] = None
    anything: Any = None


class Counter:
    """A plain class registered without declared types: its no-argument instance's attributes."""

    def __init__(self) -> None:
        self.count = 0
        self.label = ""


register_plain_class(Counter)


def _choice_prompt_stack() -> DialogState:
    """What a waterfall waiting on a choice prompt leaves in conversation state."""
    prompt = PromptOptions(
        prompt=Activity(
            type=ActivityTypes.message,
            text="Pick one",
            suggested_actions=SuggestedActions(
                actions=[CardAction(type="imBack", title="A", value="A")]
            ),
        ),
        retry_prompt=Activity(type=ActivityTypes.message, text="Again?"),
        choices=[Choice(value="A"), Choice(value="B", synonyms=["bee"])],
        style=ListStyle.suggested_action,
    )
    choice = DialogInstance("ChoicePrompt", {"options": prompt, "state": {}})
    waterfall = DialogInstance(
        "ProfileDialog", {"stepIndex": 1, "values": {"instanceId": "abc"}, "options": None}
    )
    return DialogState([choice, waterfall])


def _check_choice_prompt_stack(back: Any) -> None:
    assert isinstance(back, DialogState)
    assert [d.id for d in back.dialog_stack] == ["ChoicePrompt", "ProfileDialog"]
    restored = back.dialog_stack[0].state["options"]
    assert isinstance(restored, PromptOptions) and isinstance(restored.prompt, Activity)
    assert restored.prompt.text == "Pick one"
    assert restored.prompt.suggested_actions.actions[0].value == "A"
    assert [c.value for c in restored.choices] == ["A", "B"]
    assert restored.choices[1].synonyms == ["bee"]
    assert restored.style is ListStyle.suggested_action
    assert back.dialog_stack[1].state == {
        "stepIndex": 1,
        "values": {"instanceId": "abc"},
        "options": None,
    }


def _refused(document: Any, match: str | None = None) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    with pytest.raises(UnsafeDocumentError, match=match):
        loads(text)


# --- The stored shape -----------------------------------------------------------------------


def test_an_object_is_its_fields_beside_the_tag() -> None:
    assert json.loads(dumps(UserProfile(name="Ada", age=36))) == {
        "$type": "UserProfile",
        "name": "Ada",
        "age": 36,
    }
    assert dumps(UtteranceLog(utterances=[Utterance("u", "a")], turn_number=1, e_tag="old")) == (
        '{"$type":"UtteranceLog","utterances":[{"$type":"Utterance","user_id":"u","text":"a"}],"turn_number":1}'
    )


def test_a_schema_model_is_its_wire_json_beside_the_tag() -> None:
    activity = Activity(type="message", text="hi", input_hint="acceptingInput")
    assert json.loads(dumps(activity)) == {
        "$type": "Activity",
        "type": "message",
        "text": "hi",
        "inputHint": "acceptingInput",
    }


def test_a_datetime_and_an_enum_member_are_compact() -> None:
    assert json.loads(dumps([WHEN, ListStyle.suggested_action])) == [
        {"$type": "datetime", "$value": "2024-05-01T12:30:00+00:00"},
        {"$type": "ListStyle", "$value": "4"},
    ]


def test_a_dialog_stack_mid_prompt_reads_like_the_data_model() -> None:
    stored = json.loads(dumps({"DialogState": _choice_prompt_stack()}))
    assert stored == {
        "DialogState": {
            "$type": "DialogState",
            "_dialog_stack": [
                {
                    "$type": "DialogInstance",
                    "id": "ChoicePrompt",
                    "state": {
                        "options": {
                            "$type": "PromptOptions",
                            "prompt": {
                                "$type": "Activity",
                                "type": "message",
                                "text": "Pick one",
                                "suggestedActions": {
                                    "actions": [{"type": "imBack", "title": "A", "value": "A"}]
                                },
                            },
                            "retry_prompt": {
                                "$type": "Activity",
                                "type": "message",
                                "text": "Again?",
                            },
                            "choices": [
                                {"$type": "Choice", "value": "A", "action": None, "synonyms": None},
                                {
                                    "$type": "Choice",
                                    "value": "B",
                                    "action": None,
                                    "synonyms": ["bee"],
                                },
                            ],
                            "style": {"$type": "ListStyle", "$value": "4"},
                            "validations": None,
                            "number_of_attempts": 0,
                        },
                        "state": {},
                    },
                },
                {
                    "$type": "DialogInstance",
                    "id": "ProfileDialog",
                    "state": {"stepIndex": 1, "values": {"instanceId": "abc"}, "options": None},
                },
            ],
        }
    }
    _check_choice_prompt_stack(loads(dumps({"DialogState": _choice_prompt_stack()}))["DialogState"])


@pytest.mark.parametrize(
    "value",
    [
        {"$type": "UserProfile", "name": "Ada"},
        {"$type": "dict", "$value": {"$type": "x"}},
        {"a": [{"$type": 5}, {"$value": 1}], "$type": None},
        Annotated(scores={"$type": 1, "b": 2}),
        DialogInstance("Waterfall", {"$type": "datetime", "$value": "not a date"}),
    ],
    ids=[
        "looks-like-an-object",
        "looks-like-an-escape",
        "nested",
        "typed-dict-field",
        "dialog-state",
    ],
)
def test_a_dict_with_a_type_key_of_its_own_round_trips(value: Any) -> None:
    text = dumps(value)
    assert dumps(loads(text)) == text
    if isinstance(value, dict):
        assert loads(text) == value
        assert json.loads(text)["$type"] == "dict"  # the dict is wrapped, its keys kept as they are


def test_equal_values_are_stored_as_equal_text_whatever_the_attribute_order() -> None:
    made = DialogInstance("Waterfall", {"stepIndex": 0})
    rebuilt = DialogInstance.__new__(DialogInstance)
    rebuilt.state = {"stepIndex": 0}
    rebuilt.id = "Waterfall"
    assert dumps(made) == dumps(rebuilt) == dumps(loads(dumps(made)))
    assert dumps({"b": 1, "a": 2}) == '{"b":1,"a":2}'  # dict order is kept, as given


def test_data_models_round_trip_without_their_etag() -> None:
    log = UtteranceLog(utterances=[Utterance("u", "a")], turn_number=1, e_tag="old")
    state = {
        "profile": UserProfile(name="Ada", age=36),
        "order": PizzaOrder(toppings=["cheese"]),
        "log": log,
        "when": WHEN,
        "conversation": ConversationData(timestamp="now", channel_id="test", welcomed=True),
        "private": PrivateConversationData(message_count=3),
        "conversations": UserConversations(conversation_ids=["c1"]),
    }
    text = dumps(state)
    assert "old" not in text
    back = loads(text)
    assert back["log"].utterances == [Utterance("u", "a")] and back["log"].e_tag == "*"
    assert {key: value for key, value in back.items() if key != "log"} == {
        key: value for key, value in state.items() if key != "log"
    }


def test_every_annotation_round_trips() -> None:
    value = Annotated(
        text="t",
        count=3,
        ratio=0.5,
        flag=True,
        maybe=4,
        names=["x"],
        scores={"a": 1},
        profile=UserProfile(name="Ada"),
        orders=[PizzaOrder(["ham"])],
        when=WHEN,
        style=ListStyle.hero_card,
        anything={"deep": [DialogInstance("x", {})]},
    )
    back = loads(dumps(value))
    assert dumps(back) == dumps(value)
    assert back.profile == value.profile and back.orders == value.orders and back.when == WHEN
    assert back.style is ListStyle.hero_card


def test_a_plain_class_registered_without_types_round_trips() -> None:
    counter = Counter()
    counter.count, counter.label = 2, {"any": ["thing"]}
    back = loads(dumps(counter))
    assert vars(back) == vars(counter)


def test_a_prompt_given_as_text_round_trips() -> None:
    options = PromptOptions(prompt="What is your name?", choices=["red", Choice("blue")])
    back = loads(dumps(options))
    assert back.prompt == "What is your name?"
    assert back.choices[0] == "red" and back.choices[1].value == "blue"


# --- Records in the shape before ------------------------------------------------------------

OLD_CHOICE_PROMPT_STACK = (
    '{"DialogState":{"$type":"DialogState",'
    '"$value":{"_dialog_stack":[{"$type":"DialogInstance","$value":{"id":"ChoicePrompt",'
    '"state":{"options":{"$type":"PromptOptions","$value":{"prompt":{"$type":"Activity",'
    '"$value":{"type":"message","text":"Pick one",'
    '"suggestedActions":{"actions":[{"type":"imBack","title":"A","value":"A"}]}}},'
    '"retry_prompt":{"$type":"Activity","$value":{"type":"message","text":"Again?"}},'
    '"choices":[{"$type":"Choice","$value":{"value":"A","action":null,"synonyms":null}},'
    '{"$type":"Choice","$value":{"value":"B","action":null,"synonyms":["bee"]}}],"style":"4",'
    '"validations":null,"number_of_attempts":0}},"state":{}}}},{"$type":"DialogInstance",'
    '"$value":{"id":"ProfileDialog","state":{"stepIndex":1,"values":{"instanceId":"abc"},'
    '"options":null}}}]}},"when":{"$type":"datetime","$value":"2024-05-01T12:30:00+00:00"}}'
)


def test_a_dialog_stack_stored_before_reads_and_is_written_in_the_new_shape() -> None:
    back = loads(OLD_CHOICE_PROMPT_STACK)
    _check_choice_prompt_stack(back["DialogState"])  # the bare "4" style is a ListStyle again
    assert back["when"] == WHEN
    assert dumps(back) == dumps({"DialogState": _choice_prompt_stack(), "when": WHEN})
    assert '"$value":{' not in dumps(back)


@pytest.mark.parametrize(
    "old, expected",
    [
        ({"$type": "UserProfile", "$value": {"name": "Ada", "age": 36}}, UserProfile("Ada", 36)),
        (
            {"$type": "UtteranceLog", "$value": {"utterances": [{"$type": "Utterance", "$value": {"user_id": "u", "text": "a"}}], "turn_number": 1}},
            UtteranceLog([Utterance("u", "a")], 1),
        ),
        ({"$type": "ListStyle", "$value": "4"}, ListStyle.suggested_action),
        ({"$type": "datetime", "$value": "2024-05-01T12:30:00+00:00"}, WHEN),
        (
            {"$type": "Activity", "$value": {"type": "message", "text": "hi"}},
            Activity(type="message", text="hi"),
        ),
    ],
    ids=["dataclass", "dataclass-with-etag-field", "enum", "datetime", "msrest-model"],
)
def test_each_kind_stored_before_reads(old: Dict[str, Any], expected: Any) -> None:
    assert loads(json.dumps(old)) == expected
    assert loads(json.dumps({"nested": [old]})) == {"nested": [expected]}


def test_a_plain_class_stored_before_reads() -> None:
    back = loads('{"$type":"DialogInstance","$value":{"id":"x","state":{"stepIndex":2}}}')
    assert isinstance(back, DialogInstance) and vars(back) == {"id": "x", "state": {"stepIndex": 2}}


# --- jsonpickle tags ------------------------------------------------------------------------


def _reduce_payload(marker: Path) -> dict:
    """What a planted document looks like: jsonpickle calls os.system on restore."""
    return {
        "py/reduce": [
            {"py/function": "os.system"},
            {"py/tuple": [f"touch {shlex.quote(str(marker))}"]},
        ]
    }


def test_the_planted_payload_is_live_for_jsonpickle(tmp_path: Path) -> None:
    """The threat is real: botbuilder-azure's stores restore documents like this."""
    marker = tmp_path / "ran"
    Unpickler().restore({"UserProfile": _reduce_payload(marker)})
    assert marker.exists()


@pytest.mark.parametrize(
    "wrap",
    [
        lambda p: p,
        lambda p: {"state": {"deeper": [1, {"x": p}]}},
        lambda p: [p],
        lambda p: {"$type": "UserProfile", "name": p},
        lambda p: {"$type": "UserProfile", "unknown": p},
        lambda p: {"$type": "UserProfile", **p},
        lambda p: {"$type": "Activity", "type": "message", "value": p},
        lambda p: {"$type": "Activity", "type": "message", "unknownKey": [p]},
        lambda p: {"$type": "DialogState", "_dialog_stack": [p]},
        lambda p: {"$type": "DialogInstance", "id": "x", "state": {"a": p}},
        lambda p: {"$type": "dict", "$value": {"$type": p}},
        lambda p: {"$type": "UserProfile", "$value": {"name": p}},
        lambda p: {"$type": "Activity", "$value": {"type": "message", "value": p}},
        lambda p: {"$type": "DialogState", "$value": {"_dialog_stack": [p]}},
        lambda p: {"$type": "datetime", "$value": "2024-01-01", **p},
    ],
    ids=[
        "top",
        "nested",
        "list",
        "dataclass-field",
        "ignored-dataclass-field",
        "beside-the-tag",
        "msrest-model",
        "msrest-unknown-key",
        "plain-class",
        "dialog-state",
        "escaped-dict",
        "old-dataclass-field",
        "old-msrest-model",
        "old-plain-class",
        "compact",
    ],
)
def test_jsonpickle_tags_are_refused_wherever_they_are(wrap, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    _refused(wrap(_reduce_payload(marker)), match="jsonpickle")
    assert not marker.exists()


@pytest.mark.parametrize("tag", ["py/object", "py/type", "py/function", "py/repr", "py/state"])
def test_every_py_tag_is_refused(tag: str) -> None:
    _refused({"a": {tag: "subprocess.Popen"}}, match=tag)


@pytest.mark.parametrize("name", ["Popen", "os.system", "object", "", 42, None, ["UserProfile"]])
def test_unknown_type_is_refused(name) -> None:
    _refused({"x": {"$type": name, "$value": {}}}, match="unknown type")
    _refused({"x": {"$type": name, "name": "Ada"}}, match="unknown type")


# --- Documents that are not what dumps writes -----------------------------------------------


@pytest.mark.parametrize("text", ["[1, 2]", '"text"', "5", "null", "true"])
def test_a_record_must_be_a_json_object(text: str) -> None:
    assert loads(text) == json.loads(text)  # any JSON value decodes...
    with pytest.raises(UnsafeDocumentError, match="must be a JSON object"):
        loads_object(text)  # ...but a stored record is an object


def test_a_record_may_be_a_registered_object() -> None:
    log = UtteranceLog([Utterance("u", "a")], 1)
    assert loads_object(dumps(log)) == log
    assert loads_object('{"UserProfile":{"$type":"UserProfile","name":"Ada"}}') == {
        "UserProfile": UserProfile("Ada")
    }


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "",
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": -Infinity}',
        "1" * 5000,
        b"\xff\xfe\xfa",
    ],
    ids=[
        "broken",
        "empty",
        "nan",
        "infinity",
        "minus-infinity",
        "five-thousand-digits",
        "not-utf-8",
    ],
)
def test_text_that_is_not_json_is_refused(text: str | bytes) -> None:
    with pytest.raises(UnsafeDocumentError, match="not valid JSON"):
        loads(text)


def test_bytes_are_read_as_utf8_json() -> None:
    assert loads(dumps({"name": "Zoë"}).encode("utf-8")) == {"name": "Zoë"}


@pytest.mark.parametrize(
    "value",
    [5, None, "yesterday", "", ["2024-01-01"], {"iso": "2024-01-01"}],
    ids=["number", "null", "not-iso", "empty", "array", "object"],
)
def test_a_datetime_with_a_bad_value_is_refused(value: Any) -> None:
    _refused({"when": {"$type": "datetime", "$value": value}}, match="datetime")


def test_a_datetime_without_its_value_or_with_more_is_refused() -> None:
    _refused({"$type": "datetime"}, match="no '\\$value'")
    _refused({"$type": "datetime", "$value": "2024-01-01", "extra": 1}, match="extra")


@pytest.mark.parametrize(
    "model, fields, message",
    [
        (
            "UserConversations",
            {"conversation_ids": None},
            "conversation_ids: expected an array, got null",
        ),
        (
            "UserConversations",
            {"conversation_ids": 5},
            "conversation_ids: expected an array, got a number",
        ),
        (
            "UserConversations",
            {"conversation_ids": [1]},
            "conversation_ids: expected a string, got a number",
        ),
        ("UserConversations", {"conversation_ids": "c1"}, "expected an array, got a string"),
        (
            "PrivateConversationData",
            {"message_count": "5"},
            "message_count: expected a whole number",
        ),
        (
            "PrivateConversationData",
            {"message_count": 5.0},
            "message_count: expected a whole number",
        ),
        (
            "PrivateConversationData",
            {"message_count": True},
            "expected a whole number, got a boolean",
        ),
        ("ConversationData", {"welcomed": 1}, "welcomed: expected true or false, got a number"),
        ("ConversationData", {"timestamp": ["now"]}, "timestamp: expected a string, got an array"),
        ("UserProfile", {"age": "36"}, "age: expected a whole number"),
        (
            "UserProfile",
            {"name": {"$type": "datetime", "$value": "2024-01-01"}},
            "got a stored datetime",
        ),
        ("PizzaOrder", {"toppings": {"$type": "dict", "$value": {}}}, "expected an array"),
        ("Annotated", {"ratio": True}, "ratio: expected a number, got a boolean"),
        ("Annotated", {"ratio": int("9" * 400)}, "too large for a float"),
        ("Annotated", {"scores": {"a": "1"}}, "scores: expected a whole number"),
        (
            "Annotated",
            {"scores": {"$type": "UserProfile"}},
            "scores: expected an object, got a stored",
        ),
        (
            "Annotated",
            {"profile": {"name": "Ada"}},
            "profile: expected a stored UserProfile, got an object",
        ),
        ("Annotated", {"profile": {"$type": "PizzaOrder"}}, "got a stored PizzaOrder"),
        ("Annotated", {"orders": [{"toppings": []}]}, "orders: expected a stored PizzaOrder"),
        (
            "Annotated",
            {"orders": [{"$type": "PizzaOrder", "toppings": [None]}]},
            "PizzaOrder.toppings",
        ),
        ("Annotated", {"when": "2024-01-01"}, "when: expected a stored datetime, got a string"),
        ("Annotated", {"style": "99"}, "not a stored ListStyle"),
        ("Annotated", {"style": {"$type": "ListStyle", "$value": 4}}, "not a stored ListStyle"),
    ],
)
def test_a_field_not_of_its_declared_type_is_refused(
    model: str, fields: Dict[str, Any], message: str
) -> None:
    _refused({"$type": model, **fields}, match=message)
    _refused({"$type": model, "$value": fields}, match=message)  # the shape before, too


def test_a_whole_number_is_a_float_fields_value() -> None:
    back = loads('{"$type":"Annotated","ratio":2}')
    assert back.ratio == 2.0 and isinstance(back.ratio, float)


def test_a_missing_dataclass_field_takes_its_default() -> None:
    assert loads('{"$type":"UserProfile"}') == UserProfile()
    assert loads('{"$type":"UserProfile","$value":{}}') == UserProfile()


def test_unknown_fields_that_could_be_field_names_are_ignored() -> None:
    """A field dropped from a data model leaves its records readable (and they lose it
    on the next write); the instance never gets the attribute."""
    back = loads('{"$type":"UserProfile","name":"Ada","nickname":"A","e_tag":"x"}')
    assert back == UserProfile("Ada") and not hasattr(back, "nickname")
    assert "nickname" not in dumps(back)
    back = loads('{"$type":"DialogInstance","id":"x","state":{},"retired":[1]}')
    assert vars(back) == {"id": "x", "state": {}}


@pytest.mark.parametrize(
    "key",
    ["__class__", "__dict__", "__init__", "_secret", "not an identifier", "a-b", "$value2", ""],
)
@pytest.mark.parametrize(
    "document",
    [
        lambda key: {"$type": "DialogInstance", "id": "x", "state": {}, key: {"py": 1}},
        lambda key: {"$type": "DialogInstance", "$value": {"id": "x", "state": {}, key: "y"}},
        lambda key: {"$type": "Counter", "count": 1, "label": "", key: "y"},
        lambda key: {"$type": "UserProfile", key: "y"},
    ],
    ids=["plain-class", "old-plain-class", "untyped-plain-class", "dataclass"],
)
def test_keys_that_could_not_be_field_names_are_refused(key: str, document) -> None:
    _refused(document(key), match="cannot have the key")


def test_a_plain_class_missing_an_attribute_is_refused() -> None:
    """Unlike a dataclass field, an SDK attribute has no declared default."""
    _refused({"$type": "DialogInstance", "id": "x"}, match="DialogInstance has no state")
    _refused({"$type": "DialogState"}, match="_dialog_stack")


@pytest.mark.parametrize(
    "document, message",
    [
        ({"$type": "DialogState", "_dialog_stack": 5}, "_dialog_stack: expected an array"),
        (
            {"$type": "DialogState", "_dialog_stack": [{"id": "x", "state": {}}]},
            "expected a stored DialogInstance",
        ),
        ({"$type": "DialogInstance", "id": 5, "state": {}}, "id: expected a string"),
        (
            {"$type": "DialogInstance", "id": "x", "state": None},
            "state: expected an object, got null",
        ),
        ({"$type": "PromptOptions", "prompt": {"type": "message"}}, "prompt: expected .*Activity"),
        (
            {"$type": "Choice", "value": "A", "action": {"type": "imBack"}, "synonyms": None},
            "expected a stored CardAction",
        ),
        (
            {"$type": "Choice", "value": "A", "action": None, "synonyms": "A"},
            "synonyms: expected an array",
        ),
    ],
    ids=[
        "stack-not-a-list",
        "instance-without-tag",
        "id",
        "state",
        "prompt-without-tag",
        "action",
        "synonyms",
    ],
)
def test_sdk_classes_are_checked_against_their_declared_types(
    document: Dict[str, Any], message: str
) -> None:
    if document["$type"] == "PromptOptions":
        document = {**vars(PromptOptions()), **document}
    _refused(document, match=message)


@pytest.mark.parametrize("value", ["99", 4, None, [4], {"a": 1}, True])
def test_a_bad_enum_value_is_refused(value: Any) -> None:
    _refused({"$type": "ListStyle", "$value": value}, match="ListStyle")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"text": {"a": 1}}, "'Activity.text' must be a JSON string"),
        ({"text": 42}, "'Activity.text' must be a JSON string"),
        ({"timestamp": 5}, "'Activity.timestamp' must be a JSON string"),
        ({"timestamp": "yesterday"}, "not an ISO 8601"),
        ({"attachments": "x"}, "'Activity.attachments' must be a JSON array"),
        ({"attachments": [None]}, "must not be null"),
        ({"attachments": [{"contentType": 5}]}, "contentType"),
        ({"from": "user"}, "'Activity.from' must be a JSON object"),
        ({"conversation": {"id": "c", "isGroup": "yes"}}, "isGroup' must be a JSON bool"),
        ({"suggestedActions": {"actions": "A"}}, "actions' must be a JSON array"),
    ],
)
@pytest.mark.parametrize(
    "place",
    [
        lambda activity: activity,
        lambda activity: {
            "$type": "Activity",
            "$value": {k: v for k, v in activity.items() if k != "$type"},
        },
        lambda activity: {**vars(PromptOptions()), "$type": "PromptOptions", "prompt": activity},
        lambda activity: {"$type": "DialogInstance", "id": "x", "state": {"options": activity}},
    ],
    ids=["top", "old-shape", "typed-field", "untyped-state"],
)
def test_an_activity_with_wrong_field_types_is_refused(
    fields: Dict[str, Any], message: str, place
) -> None:
    """msrest would quietly turn these into strings, dates in 1970 or nothing at all."""
    _refused(place({"$type": "Activity", "type": "message", **fields}), match=message)


def test_a_stored_activity_keeps_the_keys_its_model_does_not_know() -> None:
    back = loads('{"$type":"Activity","type":"message","custom":{"a":[1]}}')
    assert back.type == "message" and back.additional_properties == {"custom": {"a": [1]}}


# --- Depth ----------------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    """A list ``depth`` levels deep (the outermost list is level 1)."""
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_a_document_at_the_depth_bound_reads_one_deeper_is_refused() -> None:
    assert loads(json.dumps(_nested(MAX_DEPTH))) == _nested(MAX_DEPTH)
    _refused(_nested(MAX_DEPTH + 1), match=f"deeper than {MAX_DEPTH}")
    inside = {"$type": "DialogInstance", "id": "x", "state": {"a": _nested(MAX_DEPTH - 2)}}
    assert isinstance(loads(json.dumps(inside)), DialogInstance)
    inside["state"]["a"] = _nested(MAX_DEPTH - 1)
    _refused(inside, match="deeper than")
    _refused(
        {"$type": "Activity", "type": "message", "value": _nested(MAX_DEPTH)}, match="deeper than"
    )
    _refused({"$type": "UserProfile", "ignored": _nested(MAX_DEPTH)}, match="deeper than")


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, '{"a":' * 100_000 + "1" + "}" * 100_000, "[" * 100_000],
    ids=["arrays", "objects", "unclosed"],
)
def test_a_hundred_thousand_levels_are_refused_quickly(text: str) -> None:
    started = time.perf_counter()
    with pytest.raises(UnsafeDocumentError):
        loads(text)
    assert time.perf_counter() - started < 1.0


def test_the_same_depth_bound_holds_on_write() -> None:
    assert loads(dumps(_nested(MAX_DEPTH))) == _nested(MAX_DEPTH)
    with pytest.raises(ValueError, match=f"deeper than {MAX_DEPTH}"):
        dumps(_nested(MAX_DEPTH + 1))
    with pytest.raises(ValueError, match="deeper than"):
        dumps(DialogInstance("x", {"a": _nested(MAX_DEPTH - 1)}))
    with pytest.raises(ValueError, match="deeper than"):
        dumps(Activity(type="message", value=_nested(MAX_DEPTH)))
    cycle: List[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="cycle"):
        dumps({"a": cycle})


# --- What cannot be stored ------------------------------------------------------------------


def test_unregistered_types_are_refused_at_write_time() -> None:
    class Secret:
        pass

    with pytest.raises(TypeError, match="register"):
        dumps({"x": Secret()})
    with pytest.raises(TypeError, match="keys must be strings"):
        dumps({1: "non-string key"})
    with pytest.raises(TypeError, match="register"):
        dumps({"x": {1, 2}})


def test_a_field_not_of_its_declared_type_is_refused_at_write_time() -> None:
    """Refused when written, it can never become a record that cannot be read."""
    with pytest.raises(TypeError, match="UserProfile.age: expected int, got str"):
        dumps({"profile": UserProfile(name="Ada", age="36")})
    with pytest.raises(TypeError, match="ConversationData.welcomed: expected bool, got int"):
        dumps(ConversationData(welcomed=1))
    with pytest.raises(TypeError, match="UserConversations.conversation_ids: expected a list"):
        dumps(UserConversations(conversation_ids=None))
    with pytest.raises(TypeError, match="Annotated.orders: PizzaOrder.toppings"):
        dumps(Annotated(orders=[PizzaOrder(toppings=[1])]))
    with pytest.raises(TypeError, match="'Activity.text' must be a JSON string"):
        dumps(
            DialogInstance("x", {"options": PromptOptions(prompt=Activity(type="message", text=5))})
        )


def test_a_plain_object_with_other_attributes_than_declared_is_refused_at_write_time() -> None:
    instance = DialogInstance("x", {})
    instance.extra = 1
    with pytest.raises(TypeError, match="attributes"):
        dumps(instance)
    del instance.state, instance.extra
    with pytest.raises(TypeError, match="attributes"):
        dumps(instance)


@pytest.mark.parametrize(
    "value",
    [{"py/reduce": 1}, float("nan"), float("inf"), Annotated(ratio=float("nan"))],
    ids=["jsonpickle-key", "nan", "infinity", "nan-field"],
)
def test_values_json_cannot_hold_or_that_would_read_as_jsonpickle_are_refused_at_write_time(
    value: Any,
) -> None:
    with pytest.raises(ValueError):
        dumps({"x": value})


def test_registration_refuses_a_second_type_under_one_name_and_undeclarable_fields() -> None:
    for taken in ("UserProfile", "datetime", "dict"):  # "dict" wraps dicts with a "$type" key
        with pytest.raises(TypeError, match="already stored"):
            register_dataclass(make_dataclass(taken, [("name", str, "")]))
    with pytest.raises(TypeError, match="not a dataclass"):
        register_dataclass(Counter)

    register_dataclass(WithASet)
    with pytest.raises(TypeError, match="WithASet.tags: the codec cannot check"):
        dumps(WithASet())


@dataclass
class WithASet:
    tags: Set[str] = field(default_factory=set)


def test_encode_and_decode_value_are_the_stored_json_data() -> None:
    """The dev state page shows encode_value's output: exactly the stored document."""
    state = {"DialogState": _choice_prompt_stack(), "when": WHEN}
    assert encode_value(state) == json.loads(dumps(state))
    _check_choice_prompt_stack(decode_value(encode_value(state))["DialogState"])
    with pytest.raises(UnsafeDocumentError, match="not JSON"):
        decode_value({"a": {1, 2}})
    with pytest.raises(UnsafeDocumentError, match="cannot have the key 1"):
        decode_value({1: "a"})


# --- Properties -----------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
keys = st.text(max_size=8).filter(lambda key: not key.startswith("py/")) | st.sampled_from(
    ["$type", "$value", "dict", "UserProfile", "_dialog_stack"]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["$type", "dict", "datetime", "Activity", "UserProfile", "DialogInstance", "ListStyle", "4"]
    )
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=16,
)
texts = st.text(max_size=12)
timezones = st.sampled_from(
    [None, dt.timezone.utc, dt.timezone(dt.timedelta(hours=-5, minutes=-30))]
)
data_models = st.one_of(
    st.builds(UserProfile, st.none() | texts, st.none() | st.integers()),
    st.builds(PizzaOrder, st.lists(texts, max_size=3)),
    st.builds(UtteranceLog, st.lists(st.builds(Utterance, texts, texts), max_size=3), st.integers()),
    st.builds(ConversationData, st.none() | texts, st.none() | texts, st.booleans()),
    st.builds(
        Annotated,
        texts,
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        scores=st.dictionaries(keys, st.integers(), max_size=3),
        when=st.none() | st.datetimes(timezones=timezones),
        style=st.none() | st.sampled_from(ListStyle),
        anything=json_values,
    ),
)
activities = st.builds(
    Activity,
    type=st.sampled_from(["message", "typing"]),
    text=st.none() | texts,
    value=json_values,
    suggested_actions=st.none()
    | st.builds(
        SuggestedActions,
        actions=st.lists(
            st.builds(CardAction, type=st.just("imBack"), title=texts, value=texts), max_size=2
        ),
    ),
)
state_values = st.recursive(
    json_values
    | data_models
    | activities
    | st.sampled_from(ListStyle)
    | st.datetimes(timezones=timezones),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(keys, children, max_size=3)
        | st.builds(DialogInstance, texts, st.dictionaries(keys, children, max_size=3))
        | st.builds(
            DialogState,
            st.lists(
                st.builds(DialogInstance, texts, st.dictionaries(keys, children, max_size=2)),
                max_size=2,
            ),
        )
        | st.builds(
            PromptOptions,
            activities | texts,
            st.none() | activities,
            choices=st.none() | st.lists(st.builds(Choice, texts) | texts, max_size=2),
        )
    ),
    max_leaves=10,
)


@PROPERTY_SETTINGS
@given(json_values)
def test_json_values_round_trip_exactly(value: Any) -> None:
    assert loads(dumps(value)) == value


@PROPERTY_SETTINGS
@given(state_values)
def test_state_round_trips_and_is_stored_the_same_again(value: Any) -> None:
    text = dumps(value)
    assert dumps(loads(text)) == text
    assert dumps(loads_object(json.dumps({"state": json.loads(text)}))) == '{"state":' + text + "}"


@PROPERTY_SETTINGS
@given(json_values)
def test_any_json_is_read_or_refused_never_anything_else(value: Any) -> None:
    """Whatever a store hands back, only UnsafeDocumentError escapes, and what reads
    can be written back."""
    try:
        decoded = loads(json.dumps(value))
    except UnsafeDocumentError:
        return
    dumps(decoded)


def _paths(data: Any, path: tuple = ()) -> List[tuple]:
    found = [path]
    if isinstance(data, dict):
        for key, item in data.items():
            found += _paths(item, path + (key,))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found += _paths(item, path + (index,))
    return found


STORED_STACK = json.loads(
    dumps({"DialogState": _choice_prompt_stack(), "profile": Annotated(when=WHEN)})
)
OLD_STACK = json.loads(OLD_CHOICE_PROMPT_STACK)


@PROPERTY_SETTINGS
@given(
    st.sampled_from([STORED_STACK, OLD_STACK]).flatmap(
        lambda document: st.tuples(st.just(document), st.sampled_from(_paths(document)))
    ),
    json_values
    | st.sampled_from(
        [
            {"$type": name}
            for name in ("Activity", "DialogInstance", "ListStyle", "datetime", "dict")
        ]
    ),
)
def test_a_damaged_record_is_read_or_refused_never_anything_else(located, replacement: Any) -> None:
    """Any part of a real record replaced by any JSON: it reads, and can be written
    back, or it is refused with UnsafeDocumentError; no other exception escapes."""
    document, path = located
    damaged = json.loads(json.dumps(document))
    if path:
        parent = damaged
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = replacement
    else:
        damaged = replacement
    try:
        value = loads(json.dumps(damaged))
    except UnsafeDocumentError:
        return
    dumps(value)
