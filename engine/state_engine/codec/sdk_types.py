"""The types stored without anyone registering them: datetime, and the SDK types a
dialog stack holds while a waterfall or prompt is waiting, declared with the types
of their attributes so that a stored dialog stack is checked like a data model."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional, Union

from botbuilder.dialogs import DialogInstance, DialogState
from botbuilder.dialogs.choices import Choice, ListStyle
from botbuilder.dialogs.prompts import PromptOptions
from botbuilder.schema import Activity, CardAction, SuggestedActions

from .registration import register_enum, register_msrest_model, register_plain_class
from .registry import register
from .scalars import CompactEntry, datetime_from_json


def register_sdk_types() -> None:
    """Register datetime, then the SDK's schema models, enum and plain classes."""
    register(CompactEntry(dt.datetime, dt.datetime.isoformat, datetime_from_json))
    for model in (Activity, CardAction, SuggestedActions):
        register_msrest_model(model)
    register_enum(ListStyle)
    register_plain_class(
        Choice,
        {"value": Optional[str], "action": Optional[CardAction], "synonyms": Optional[List[str]]},
    )
    # A prompt may be given as text: the SDK sends a str as a message.
    register_plain_class(
        PromptOptions,
        {
            "prompt": Union[Activity, str, None],
            "retry_prompt": Union[Activity, str, None],
            "choices": Optional[List[Union[Choice, str]]],
            "style": Optional[ListStyle],
            "validations": Any,
            "number_of_attempts": int,
        },
    )
    register_plain_class(DialogInstance, {"id": Optional[str], "state": Dict[str, Any]})
    register_plain_class(DialogState, {"_dialog_stack": List[DialogInstance]})
