"""The walk over a value and its JSON tree: plain data as itself, registered types
through their entry, dicts with a ``$type`` key wrapped, and the depth bounded both
ways, so that what is written can always be read and nothing else is rebuilt."""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, Tuple

from ..errors import UnsafeDocumentError
from .refusals import WrongType, kind_of, refuse_key, too_deep, too_deep_to_store, wrong_kind
from .registry import (
    BY_CLASS,
    DICT,
    JSON_SCALARS,
    MAX_DEPTH,
    TYPE_TAG,
    VALUE_TAG,
    Decoder,
    Encoder,
    entry_for_class,
    entry_named,
)


def encode(value: Any, depth: int) -> Any:
    """``value`` as JSON data at ``depth``, of whatever registered or JSON type it is."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if depth > MAX_DEPTH:
        too_deep_to_store()
    if kind is dict:
        return encode_dict(value, depth, encode)
    if kind is list or kind is tuple:
        return [encode(item, depth + 1) for item in value]
    entry = entry_for_class(kind)
    if entry is not None:
        return entry.encode(value, depth)
    if isinstance(value, (str, int, float)):
        return value  # e.g. an unregistered str enum: stored, and read back, as its value
    if isinstance(value, dict):
        return encode_dict(value, depth, encode)
    if isinstance(value, (list, tuple)):
        return [encode(item, depth + 1) for item in value]
    if isinstance(value, dt.datetime):
        return BY_CLASS[dt.datetime].encode(value, depth)
    raise WrongType(
        f"cannot store a {kind.__module__}.{kind.__qualname__}: register it in "
        "state_engine.codec (only registered types are stored)"
    )


def encode_dict(value: Dict[Any, Any], depth: int, encode_item: Encoder) -> Dict[str, Any]:
    """A dict of string keys, each item by ``encode_item``; wrapped if it has a ``$type`` key."""
    escaped = TYPE_TAG in value
    depth += escaped
    if depth > MAX_DEPTH:
        too_deep_to_store()
    encoded = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise WrongType(f"state keys must be strings, not {type(key).__name__}")
        if key.startswith("py/"):
            raise ValueError(f"cannot store the key {key!r}: it would read as a jsonpickle tag")
        encoded[key] = encode_item(item, depth + 1)
    return {TYPE_TAG: DICT, VALUE_TAG: encoded} if escaped else encoded


def encode_value(value: Any) -> Any:
    """A state value as the JSON data stored; TypeError for what cannot be stored (an
    unregistered type, a field not of its declared type), ValueError if too deep."""
    return encode(value, 1)


def decode(data: Any, depth: int) -> Any:
    """Rebuild a value from JSON data at ``depth``; UnsafeDocumentError for anything else."""
    kind = type(data)
    if kind is dict:
        if data.get(TYPE_TAG, DICT) == DICT:
            return decode_dict(data, depth, decode)
        return decode_tagged(data, depth)
    if kind is list:
        if depth > MAX_DEPTH:
            too_deep()
        return [decode(item, depth + 1) for item in data]
    if kind in JSON_SCALARS:
        return data
    raise UnsafeDocumentError(f"stored data holds a {kind.__name__}, which is not JSON")


def decode_dict(data: Dict[str, Any], depth: int, decode_item: Decoder) -> Dict[str, Any]:
    """A plain dict: stored as itself, or wrapped when it has a ``$type`` key of its own."""
    if TYPE_TAG in data:
        if data[TYPE_TAG] != DICT:
            wrong_kind("an object", data)
        data, depth = unwrap_object(data, DICT, depth)
    if depth > MAX_DEPTH:
        too_deep()
    decoded = {}
    for key, item in data.items():
        if not isinstance(key, str) or key.startswith("py/"):
            refuse_key(key, "a stored dict")
        decoded[key] = decode_item(item, depth + 1)
    return decoded


def decode_tagged(data: Dict[str, Any], depth: int) -> Any:
    """Rebuild the registered type a JSON object's ``$type`` names."""
    if depth > MAX_DEPTH:
        too_deep()
    name = data[TYPE_TAG]
    entry = entry_named(name) if isinstance(name, str) else None
    if entry is None:
        raise UnsafeDocumentError(f"stored document names unknown type {name!r:.60}; refused")
    return entry.decode(data, depth)


def unwrap(data: Dict[str, Any], name: str) -> Any:
    """The ``$value`` of ``{"$type": name, "$value": ...}``, which may have no other key."""
    if VALUE_TAG not in data or len(data) != 2:
        for key in data:
            if key not in (TYPE_TAG, VALUE_TAG):
                refuse_key(key, f"a stored {name}")
        raise UnsafeDocumentError(f"a stored {name} has no {VALUE_TAG!r}")
    return data[VALUE_TAG]


def unwrap_object(data: Dict[str, Any], name: str, depth: int) -> Tuple[Dict[str, Any], int]:
    """The JSON object ``unwrap`` finds, and its depth; UnsafeDocumentError if not an object."""
    inner = unwrap(data, name)
    if type(inner) is not dict:
        raise UnsafeDocumentError(f"a stored {name} holds {kind_of(inner)}, not an object")
    return inner, depth + 1


def check_json(data: Any, depth: int) -> None:
    """Free-form JSON another decoder reads (an Activity's wire JSON): no jsonpickle tag,
    no deeper than MAX_DEPTH."""
    kind = type(data)
    if kind is dict:
        if depth > MAX_DEPTH:
            too_deep()
        for key, item in data.items():
            if not isinstance(key, str) or key.startswith("py/"):
                refuse_key(key, "stored JSON")
            check_json(item, depth + 1)
    elif kind is list:
        if depth > MAX_DEPTH:
            too_deep()
        for item in data:
            check_json(item, depth + 1)
    elif kind not in JSON_SCALARS:
        raise UnsafeDocumentError(f"stored data holds a {kind.__name__}, which is not JSON")


def decode_value(data: Any) -> Any:
    """Rebuild a state value from JSON data; UnsafeDocumentError for anything else."""
    return decode(data, 1)
