"""The one safe JSON codec every store of ours uses.

Bot state is a tree of Python objects (our dataclasses, the SDK's dialog stack,
prompt options holding Activities). The SDK's Cosmos and Blob stores turn that
tree into JSON with jsonpickle, and turn stored JSON back into objects with
jsonpickle too: a document that names ``py/reduce`` or ``py/object`` makes
them import and call whatever it names. This codec rebuilds only the types
registered here, by an explicit ``$type`` tag, and refuses anything else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
from typing import Any, Callable, Dict, Tuple, Type

from msrest.serialization import Model

from .errors import UnsafeDocumentError

TYPE_TAG = "$type"
VALUE_TAG = "$value"

# name -> (class, encode(obj) -> JSON value, decode(JSON value) -> obj)
_Codec = Tuple[type, Callable[[Any], Any], Callable[[Any], Any]]
_REGISTRY: Dict[str, _Codec] = {}


def register_dataclass(cls: Type) -> Type:
    """Class decorator: store a dataclass as its fields plus a ``$type`` tag."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    names = [f.name for f in dataclasses.fields(cls) if f.name != "e_tag"]

    def encode(obj: Any) -> Dict[str, Any]:
        return {name: encode_value(getattr(obj, name)) for name in names}

    def decode(data: Any) -> Any:
        if not isinstance(data, dict):
            raise UnsafeDocumentError(f"{cls.__name__} must be stored as an object")
        return cls(**{name: decode_value(data[name]) for name in names if name in data})

    _REGISTRY[cls.__name__] = (cls, encode, decode)
    return cls


def register_plain_class(cls: Type) -> None:
    """Store an SDK class with a plain ``__dict__`` (DialogState, DialogInstance...).

    Rebuilding it sets attributes on an instance created without calling
    ``__init__``: no code named by the document runs, only this class.
    """

    def encode(obj: Any) -> Dict[str, Any]:
        return {name: encode_value(value) for name, value in vars(obj).items()}

    def decode(data: Any) -> Any:
        if not isinstance(data, dict):
            raise UnsafeDocumentError(f"{cls.__name__} must be stored as an object")
        obj = cls.__new__(cls)
        obj.__dict__.update({str(k): decode_value(v) for k, v in data.items()})
        return obj

    _REGISTRY[cls.__name__] = (cls, encode, decode)


def register_msrest_model(cls: Type[Model]) -> None:
    """Store a Bot Framework schema model (e.g. Activity) in its wire format."""
    _REGISTRY[cls.__name__] = (cls, lambda obj: obj.serialize(), cls.deserialize)


def register_enum(cls: Type[enum.Enum]) -> None:
    _REGISTRY[cls.__name__] = (cls, lambda obj: obj.value, cls)


def _registered_name(obj: Any) -> str | None:
    name = type(obj).__name__
    entry = _REGISTRY.get(name)
    return name if entry is not None and entry[0] is type(obj) else None


def encode_value(value: Any) -> Any:
    """Turn a state value into plain JSON data; unknown types are an error at write time."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [encode_value(item) for item in value]
    if isinstance(value, dict):
        encoded = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"state keys must be strings, not {type(key).__name__}")
            encoded[key] = encode_value(item)
        return encoded
    if isinstance(value, dt.datetime):
        return {TYPE_TAG: "datetime", VALUE_TAG: value.isoformat()}
    name = _registered_name(value)
    if name is None:
        raise TypeError(
            f"cannot store a {type(value).__module__}.{type(value).__name__}: "
            "register it in storage.codec (only registered types are stored)"
        )
    return {TYPE_TAG: name, VALUE_TAG: _REGISTRY[name][1](value)}


def decode_value(data: Any) -> Any:
    """Rebuild a state value from JSON data, refusing any type we did not register."""
    if isinstance(data, list):
        return [decode_value(item) for item in data]
    if not isinstance(data, dict):
        return data
    for key in data:
        if key.startswith("py/"):
            raise UnsafeDocumentError(
                f"stored document carries a jsonpickle tag {key!r}; refused, nothing was executed"
            )
    if TYPE_TAG not in data:
        return {key: decode_value(item) for key, item in data.items()}
    name = data[TYPE_TAG]
    if name == "datetime":
        return dt.datetime.fromisoformat(data[VALUE_TAG])
    entry = _REGISTRY.get(name) if isinstance(name, str) else None
    if entry is None:
        raise UnsafeDocumentError(f"stored document names unknown type {name!r}; refused")
    if VALUE_TAG in data and isinstance(data[VALUE_TAG], (dict, list)):
        _reject_jsonpickle_tags(data[VALUE_TAG])
    return entry[2](data.get(VALUE_TAG))


def _reject_jsonpickle_tags(data: Any) -> None:
    """Wire-format models are decoded by msrest, which never sees our check: check first."""
    if isinstance(data, list):
        for item in data:
            _reject_jsonpickle_tags(item)
    elif isinstance(data, dict):
        for key, item in data.items():
            if key.startswith("py/"):
                raise UnsafeDocumentError(
                    f"stored document carries a jsonpickle tag {key!r}; refused, nothing was executed"
                )
            _reject_jsonpickle_tags(item)


def dumps(value: Any) -> str:
    """Encode a whole store item (without its e_tag) to a JSON string."""
    return json.dumps(encode_value(value), ensure_ascii=False, separators=(",", ":"))


def loads(text: str | bytes) -> Any:
    """Decode a stored JSON string; raises UnsafeDocumentError for anything unknown."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise UnsafeDocumentError(f"stored document is not valid JSON: {error}") from error
    return decode_value(data)


def _register_sdk_types() -> None:
    """The SDK types a dialog stack holds while a waterfall or prompt is waiting."""
    from botbuilder.dialogs import DialogInstance, DialogState
    from botbuilder.dialogs.choices import Choice, ListStyle
    from botbuilder.dialogs.prompts import PromptOptions
    from botbuilder.schema import Activity, CardAction, SuggestedActions

    for cls in (DialogState, DialogInstance, PromptOptions, Choice):
        register_plain_class(cls)
    for model in (Activity, CardAction, SuggestedActions):
        register_msrest_model(model)
    register_enum(ListStyle)


_register_sdk_types()
