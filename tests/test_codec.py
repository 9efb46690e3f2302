"""The safe codec: only registered types come back, jsonpickle tags never run."""

from __future__ import annotations

import datetime as dt
import json
import shlex
from pathlib import Path

import pytest
from botbuilder.dialogs import DialogInstance, DialogState
from botbuilder.dialogs.choices import Choice, ListStyle
from botbuilder.dialogs.prompts import PromptOptions
from botbuilder.schema import Activity, ActivityTypes, CardAction, SuggestedActions
from jsonpickle.unpickler import Unpickler

from data_models import PizzaOrder, UserProfile, UtteranceLog
from state_engine.stores import UnsafeDocumentError
from state_engine.codec import dumps, loads


def _reduce_payload(marker: Path) -> dict:
    """What a planted document looks like: jsonpickle calls os.system on restore."""
    return {"py/reduce": [{"py/function": "os.system"}, {"py/tuple": [f"touch {shlex.quote(str(marker))}"]}]}


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
        lambda p: {"$type": "UserProfile", "$value": {"name": p}},
        lambda p: {"$type": "Activity", "$value": {"type": "message", "value": p}},
        lambda p: {"$type": "DialogState", "$value": {"dialog_stack": [p]}},
    ],
    ids=["top", "nested", "list", "dataclass-field", "msrest-model", "plain-class"],
)
def test_jsonpickle_tags_are_refused_wherever_they_are(wrap, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(UnsafeDocumentError):
        loads(json.dumps(wrap(_reduce_payload(marker))))
    assert not marker.exists()


@pytest.mark.parametrize("tag", ["py/object", "py/type", "py/function", "py/repr", "py/state"])
def test_every_py_tag_is_refused(tag: str) -> None:
    with pytest.raises(UnsafeDocumentError, match=tag):
        loads(json.dumps({"a": {tag: "subprocess.Popen"}}))


@pytest.mark.parametrize("name", ["Popen", "os.system", "object", "", 42, None])
def test_unknown_type_is_refused(name) -> None:
    with pytest.raises(UnsafeDocumentError):
        loads(json.dumps({"x": {"$type": name, "$value": {}}}))


def test_invalid_json_is_refused() -> None:
    with pytest.raises(UnsafeDocumentError):
        loads("{not json")


def test_unregistered_types_are_refused_at_write_time() -> None:
    class Secret:
        pass

    with pytest.raises(TypeError, match="register"):
        dumps({"x": Secret()})
    with pytest.raises(TypeError):
        dumps({1: "non-string key"})


def test_data_models_round_trip_without_their_etag() -> None:
    log = UtteranceLog(utterances=["a"], turn_number=1, e_tag="old")
    state = {
        "profile": UserProfile(name="Ada", age=36),
        "order": PizzaOrder(toppings=["cheese"]),
        "log": log,
        "when": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc),
    }
    text = dumps(state)
    assert "old" not in text
    back = loads(text)
    assert back["profile"] == state["profile"] and back["order"] == state["order"]
    assert back["log"].utterances == ["a"] and back["log"].e_tag == "*"
    assert back["when"] == state["when"]


def test_sdk_dialog_state_round_trips() -> None:
    """What a waterfall waiting on a choice prompt leaves in conversation state."""
    prompt = PromptOptions(
        prompt=Activity(
            type=ActivityTypes.message,
            text="Pick one",
            suggested_actions=SuggestedActions(actions=[CardAction(type="imBack", title="A", value="A")]),
        ),
        retry_prompt=Activity(type=ActivityTypes.message, text="Again?"),
        choices=[Choice(value="A"), Choice(value="B", synonyms=["bee"])],
        style=ListStyle.suggested_action,
    )
    waterfall = DialogInstance()
    waterfall.id = "ProfileDialog"
    waterfall.state = {"stepIndex": 1, "values": {"instanceId": "abc"}, "options": None}
    choice = DialogInstance()
    choice.id = "ChoicePrompt"
    choice.state = {"options": prompt, "state": {}}
    stack = DialogState([choice, waterfall])

    back = loads(dumps({"DialogState": stack}))["DialogState"]

    assert isinstance(back, DialogState)
    assert [d.id for d in back.dialog_stack] == ["ChoicePrompt", "ProfileDialog"]
    restored = back.dialog_stack[0].state["options"]
    assert isinstance(restored, PromptOptions) and isinstance(restored.prompt, Activity)
    assert restored.prompt.text == "Pick one"
    assert restored.prompt.suggested_actions.actions[0].value == "A"
    assert [c.value for c in restored.choices] == ["A", "B"]
    assert restored.choices[1].synonyms == ["bee"]
    # ListStyle is a str Enum: it is stored as its text and still compares equal.
    assert restored.style == ListStyle.suggested_action
    assert back.dialog_stack[1].state == waterfall.state
