"""Check JSON against a Bot Framework schema model's declared field types.

msrest bends what it is given into the declared type (``"text": {"a": 1}`` becomes
``"{'a': 1}"``) or drops it; the validation of incoming activities and the codec
reading stored ones both check here first, with the model's own ``_attribute_map``.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple, Type

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
    _check(value, model.__name__, path, schemas)


def _check(value: Any, type_name: str, path: str, schemas: Dict[str, Dict[str, str]]) -> None:
    if type_name.startswith("[") or type_name.startswith("{"):
        container = list if type_name.startswith("[") else dict
        if not isinstance(value, container):
            kind = "array" if container is list else "object"
            raise WireTypeError(f"'{path}' must be a JSON {kind}")
        items = enumerate(value) if container is list else value.items()
        for index, item in items:
            if item is None:
                raise WireTypeError(f"'{path}[{index}]' must not be null")
            _check(item, type_name[1:-1], f"{path}[{index}]", schemas)
    elif type_name in schemas:
        if not isinstance(value, dict):
            raise WireTypeError(f"'{path}' must be a JSON object")
        declared = schemas[type_name]
        for key, field in value.items():  # a wire object has a few of its model's many fields
            field_type = declared.get(key)
            if field_type is not None and field is not None:
                _check(field, field_type, f"{path}.{key}", schemas)
    elif type_name in _JSON_TYPES:
        expected = _JSON_TYPES[type_name]
        if not isinstance(value, expected) or (bool not in expected and isinstance(value, bool)):
            raise WireTypeError(f"'{path}' must be a JSON {_KINDS[expected]}")
        if type_name == "iso-8601":
            try:
                Deserializer.deserialize_iso(value)
            except DeserializationError:
                raise WireTypeError(f"'{path}' is not an ISO 8601 date and time") from None
