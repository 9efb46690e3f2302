"""Check JSON against a Bot Framework schema model's declared field types.

msrest bends what it is given into the declared type (``"text": {"a": 1}`` becomes
``"{'a': 1}"``) or drops it; the validation of incoming activities and the codec
reading stored ones both check here first, with the model's own ``_attribute_map``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Dict, List, Tuple, Type

from msrest.exceptions import DeserializationError
from msrest.serialization import Deserializer, Model

_JSON_TYPES: Dict[str, Tuple[type, ...]] = {
    "str": (str,),
    "bool": (bool,),
    "int": (int,),
    "float": (int, float),
    "iso-8601": (str,),
    "bytearray": (str,),  # base64 text
}
# Date and time as channels write it: digits only, seconds always, an optional fraction of up
# to 7 digits (.NET's), then Z, an offset or nothing.
_PLAIN_ISO = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]{1,7})?(?:Z|[+-][0-9]{2}:[0-9]{2})?"
)
_KINDS = {(str,): "string", (bool,): "bool", (int,): "int", (int, float): "number"}
# For each model checked, and each model it refers to: {wire key: declared type}.
_SCHEMAS: Dict[type, Dict[str, Dict[str, str]]] = {}


class WireTypeError(Exception):
    """A field of the JSON does not have the type its model declares; the message names it."""


def check_wire_json(value: Any, model: Type[Model], path: str) -> None:
    """Raise WireTypeError unless ``value`` is JSON msrest can read as ``model`` without
    bending it. Free-form (``object``) fields and keys the model does not know are not checked."""
    schemas = _SCHEMAS.get(model)
    if schemas is None:
        schemas = _SCHEMAS[model] = {
            name: {spec["key"]: spec["type"] for spec in cls._attribute_map.values()}
            for name, cls in model._infer_class_models().items()
            if isinstance(cls, type) and issubclass(cls, Model)
        }
    try:
        _check(value, model.__name__, schemas)
    except _Mismatch as mismatch:
        where = path + "".join(reversed(mismatch.where))
        raise WireTypeError(f"'{where}' {mismatch.problem}") from None


def read_iso(value: str) -> dt.datetime:
    """The datetime msrest's ``Deserializer.deserialize_iso`` reads from ``value``, or its
    DeserializationError. The forms channels send are read by the standard library, which
    gives the same instant at a fraction of the cost; any other text is msrest's to judge."""
    if _PLAIN_ISO.fullmatch(value):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            pass  # msrest words the refusal
        else:
            if dt.MINYEAR < parsed.year < dt.MAXYEAR:  # at the ends, msrest checks the UTC year
                return parsed
    return Deserializer.deserialize_iso(value)


class _Mismatch(Exception):
    """A value of the wrong type somewhere below the checked one; the path to it is
    collected on the way out, so a value that passes never builds one."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.where: List[str] = []  # innermost first


def _check(value: Any, type_name: str, schemas: Dict[str, Dict[str, str]]) -> None:
    if type_name.startswith("[") or type_name.startswith("{"):
        container = list if type_name.startswith("[") else dict
        if not isinstance(value, container):
            raise _Mismatch(f"must be a JSON {'array' if container is list else 'object'}")
        items = enumerate(value) if container is list else value.items()
        for index, item in items:
            try:
                if item is None:
                    raise _Mismatch("must not be null")
                _check(item, type_name[1:-1], schemas)
            except _Mismatch as mismatch:
                mismatch.where.append(f"[{index}]")
                raise
    elif type_name in schemas:
        if not isinstance(value, dict):
            raise _Mismatch("must be a JSON object")
        declared = schemas[type_name]
        for key, field in value.items():  # a wire object has a few of its model's many fields
            field_type = declared.get(key)
            if field_type is not None and field is not None:
                try:
                    _check(field, field_type, schemas)
                except _Mismatch as mismatch:
                    mismatch.where.append(f".{key}")
                    raise
    elif type_name in _JSON_TYPES:
        expected = _JSON_TYPES[type_name]
        if not isinstance(value, expected) or (bool not in expected and isinstance(value, bool)):
            raise _Mismatch(f"must be a JSON {_KINDS[expected]}")
        if type_name == "iso-8601":
            try:
                read_iso(value)
            except DeserializationError:
                raise _Mismatch("is not an ISO 8601 date and time") from None
