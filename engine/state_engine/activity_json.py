"""Activities to and from JSON by walking each schema class's ``_attribute_map`` directly,
with msrest's serializer as the reference and the fallback for anything else.

msrest validates and dispatches on type names for every field of every reply; this gives
the same JSON (``engine/tests/test_activity_json.py`` compares the two) without that work.
"""

from __future__ import annotations

import copy
import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from botbuilder.schema import Activity
from msrest.serialization import Model, Serializer

from .wire_types import read_iso

_PLAIN = (str, int, float, bool)
_SCALARS = ("str", "bool", "int", "float")


class _NeedsMsrest(Exception):
    """Something this walker does not handle; the caller falls back to msrest."""


def activity_to_json(model: Model) -> Dict[str, Any]:
    try:
        return _model(model)
    except _NeedsMsrest:
        return model.serialize()


def _model(model: Model) -> Dict[str, Any]:
    fields = _schema(type(model)).by_attribute
    result: Dict[str, Any] = {}
    for attribute, value in model.__dict__.items():  # the set fields, without a lookup each
        if value is None:
            continue
        field = fields.get(attribute)
        if field is None:  # msrest writes only what the schema declares
            continue
        key, data_type, scalar = field
        result[key] = value if scalar and type(value) in _PLAIN else _value(value, data_type)
    return result


def _value(value: Any, data_type: str) -> Any:
    if data_type.startswith("[") and isinstance(value, list):
        return [_value(item, data_type[1:-1]) for item in value]
    if data_type == "object":
        return _json_native(value)
    if data_type == "iso-8601" and isinstance(value, dt.datetime):
        return Serializer.serialize_iso(value)
    if isinstance(value, Model):
        return _model(value)
    if isinstance(value, enum.Enum) and data_type == "str":
        return value.value
    if data_type in _SCALARS and type(value) in _PLAIN:
        return value
    raise _NeedsMsrest


def _json_native(value: Any) -> Any:
    if value is None or type(value) in _PLAIN:
        return value
    if type(value) is dict and all(type(key) is str for key in value):
        return {key: _json_native(item) for key, item in value.items()}
    if type(value) is list:
        return [_json_native(item) for item in value]
    raise _NeedsMsrest


_SCHEMA_MODELS: Dict[str, type] = Activity._infer_class_models()


def activity_from_json(data: Dict[str, Any]) -> Activity:
    """The Activity msrest's ``Activity().deserialize(data)`` would build, for JSON
    whose field types were already checked (web/activity_validation.py)."""
    try:
        return _build(Activity, data)
    except _NeedsMsrest:
        return Activity().deserialize(data)


@dataclass(frozen=True)
class _Schema:
    """A model class's fields both ways: by attribute (to write) and by wire key (to read),
    each with its declared type."""

    by_attribute: Dict[str, Tuple[str, str, bool]]  # and whether the type is a JSON scalar
    by_key: Dict[str, Tuple[str, str]]


_SCHEMAS: Dict[type, Optional[_Schema]] = {}


def _schema(cls: type) -> _Schema:
    """The class's schema; _NeedsMsrest for polymorphic, open-ended or flattened models
    (a dotted key nests), which only msrest reads and writes."""
    if cls not in _SCHEMAS:
        attribute_map = cls._attribute_map
        msrest_only = (
            getattr(cls, "_subtype_map", None)
            or "additional_properties" in attribute_map
            or any("." in spec["key"] for spec in attribute_map.values())
        )
        _SCHEMAS[cls] = None if msrest_only else _Schema(
            {
                attribute: (spec["key"], spec["type"], spec["type"] in _SCALARS)
                for attribute, spec in attribute_map.items()
            },
            {spec["key"]: (attribute, spec["type"]) for attribute, spec in attribute_map.items()},
        )
    schema = _SCHEMAS[cls]
    if schema is None:
        raise _NeedsMsrest
    return schema


def _build(cls: type, data: Any) -> Model:
    if not isinstance(data, dict):
        raise _NeedsMsrest
    fields = _schema(cls).by_key
    arguments: Dict[str, Any] = {}
    unknown: Dict[str, Any] = {}
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            unknown[key] = value  # msrest keeps keys the schema does not know
        elif value is not None:
            arguments[field[0]] = _parse(value, field[1])
    model = cls(**arguments)
    if unknown:
        model.additional_properties = unknown
    return model


def _parse(value: Any, data_type: str) -> Any:
    if data_type.startswith("["):
        if not isinstance(value, list):
            raise _NeedsMsrest
        return [_parse(item, data_type[1:-1]) for item in value]
    if data_type == "object":
        return _json_native(value)
    if data_type == "iso-8601" and isinstance(value, str):
        return read_iso(value)
    if data_type in _SCHEMA_MODELS:
        return _build(_SCHEMA_MODELS[data_type], value)
    if data_type in _SCALARS and type(value) in _PLAIN:
        if data_type == "str" and type(value) is not str:
            raise _NeedsMsrest
        return value
    raise _NeedsMsrest



# Values copy.deepcopy hands back as they are.
_ATOMIC = frozenset((type(None), str, int, float, bool, bytes, dt.datetime, dt.date, dt.time, dt.timedelta))


def copy_model(model: Model, as_class: Optional[type] = None, memo: Optional[Dict[int, Any]] = None) -> Model:
    """What ``copy.deepcopy(model)`` returns for the schema's models (an instance of
    ``as_class`` if given), without deepcopy's generic ``__reduce_ex__`` round trip: the
    SDK deep-copies every reply it sends. Models that define their own ``__deepcopy__``,
    and values that are not models, lists, dicts or atomic, are left to deepcopy."""
    memo = {} if memo is None else memo
    return _copy_fields(model, as_class or type(model), memo)


def _copy_fields(model: Model, cls: type, memo: Dict[int, Any]) -> Model:
    result = cls.__new__(cls)
    memo[id(model)] = result
    fields = model.__dict__.copy()  # most fields are None or text: copied as they are
    for name, item in fields.items():
        if type(item) not in _ATOMIC:
            fields[name] = _copy(item, memo)
    result.__dict__.update(fields)
    return result


def _copy(value: Any, memo: Dict[int, Any]) -> Any:
    kind = type(value)
    if kind in _ATOMIC or isinstance(value, enum.Enum):
        return value
    found = memo.get(id(value))
    if found is not None:
        return found
    if kind is list:
        result: Any = []
        memo[id(value)] = result
        result.extend(_copy(item, memo) for item in value)
        return result
    if kind is dict:
        result = {}
        memo[id(value)] = result
        for key, item in value.items():
            result[_copy(key, memo)] = _copy(item, memo)
        return result
    if isinstance(value, Model) and getattr(kind, "__deepcopy__", None) is None and hasattr(value, "__dict__"):
        return _copy_fields(value, kind, memo)
    return copy.deepcopy(value, memo)
