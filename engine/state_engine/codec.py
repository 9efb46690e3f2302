"""The one safe JSON codec every store uses: bot state (our dataclasses, the SDK's dialog
stack, Activities) to JSON and back. Only registered types are rebuilt, named by a
``$type`` tag and each field checked against its declared type; anything else, such as
the ``py/reduce`` jsonpickle would run, is refused with UnsafeDocumentError.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import enum
import json
import types
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    List,
    Mapping,
    NoReturn,
    Optional,
    Tuple,
    Type,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from botbuilder.schema import Activity
from msrest.exceptions import DeserializationError, SerializationError
from msrest.serialization import Model

from .errors import UnsafeDocumentError
from .activity_json import activity_from_json, activity_to_json
from .wire_types import WireTypeError, check_wire_json

# What is stored:
#   a registered object   {"$type": "UserProfile", "name": "Ada", "age": 36}
#   a schema model        {"$type": "Activity", "type": "message", "text": "hi"}  (its wire JSON)
#   a datetime, an enum   {"$type": "datetime", "$value": "2024-05-01T12:30:00+00:00"}
#   a dict with a "$type" key of its own   {"$type": "dict", "$value": {"$type": "x"}}
# Records written before this shape, {"$type": name, "$value": {fields or wire JSON}}, read too.
TYPE_TAG = "$type"
VALUE_TAG = "$value"
#: Levels of JSON nesting a stored document may have, checked on write and on read; a
#: dialog stack waiting on a prompt inside a component dialog has about ten.
MAX_DEPTH = 64
_DICT = "dict"
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})

_TOO_DEEP = f"stored document is nested deeper than {MAX_DEPTH} levels"

#: (value, depth of the JSON it becomes) -> JSON data
_Encoder = Callable[[Any, int], Any]
#: (JSON data, its depth) -> value
_Decoder = Callable[[Any, int], Any]


class _WrongType(TypeError):
    """A value is not of the declared type at all (not: a part of it is wrong)."""


class _WrongKind(UnsafeDocumentError):
    """Stored data is not of the declared kind at all (not: a part of it is wrong)."""


class _Entry(abc.ABC):
    """How instances of one registered class are stored and rebuilt."""

    name: str
    cls: type

    @abc.abstractmethod
    def encode(self, value: Any, depth: int) -> Dict[str, Any]:
        """The tagged JSON object for ``value``, whose fields sit at ``depth + 1``."""

    @abc.abstractmethod
    def decode(self, data: Dict[str, Any], depth: int) -> Any:
        """Rebuild from a JSON object tagged with this entry's name, at ``depth``."""


_BY_NAME: Dict[str, _Entry] = {}
_BY_CLASS: Dict[type, _Entry] = {}


def _register(entry: _Entry) -> None:
    known = _BY_NAME.get(entry.name)
    if entry.name == _DICT or (known is not None and known.cls is not entry.cls):
        raise TypeError(f"another type is already stored as {entry.name!r}")
    _BY_NAME[entry.name] = entry
    _BY_CLASS[entry.cls] = entry


# --- Registration ----------------------------------------------------------------------------


def register_dataclass(cls: Type) -> Type:
    """Class decorator: store a dataclass as its fields (but ``e_tag``) plus a ``$type`` tag.

    Fields are checked against their annotations on write and on read: str, int, float,
    bool, datetime, Optional/Union, List[X], Dict[str, X], Any and registered types."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    _register(_DataclassEntry(cls))
    return cls


def register_plain_class(cls: Type, attributes: Optional[Mapping[str, Any]] = None) -> None:
    """Store an SDK class with a plain ``__dict__`` (DialogState, DialogInstance...).

    ``attributes`` maps each attribute to its type, as a dataclass annotation would; by
    default, the attributes a no-argument instance has, of any type. Rebuilding sets
    exactly those on an instance created without calling ``__init__``."""
    declared = dict(attributes) if attributes is not None else {name: Any for name in vars(cls())}
    _register(_PlainEntry(cls, declared))


def register_msrest_model(cls: Type[Model]) -> None:
    """Store a Bot Framework schema model (e.g. Activity) as its wire JSON, whose field
    types are checked against the model's ``_attribute_map`` before msrest reads it."""
    _register(_ModelEntry(cls))


def register_enum(cls: Type[enum.Enum]) -> None:
    """Store an enum's members as ``{"$type": name, "$value": member.value}``."""
    _register(_CompactEntry(cls, lambda member: member.value, cls))


# --- Encoding --------------------------------------------------------------------------------


def _too_deep_to_store() -> NoReturn:
    raise ValueError(f"cannot store data nested deeper than {MAX_DEPTH} levels (is there a cycle?)")


def _encode(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if depth > MAX_DEPTH:
        _too_deep_to_store()
    if kind is dict:
        return _encode_dict(value, depth, _encode)
    if kind is list or kind is tuple:
        return [_encode(item, depth + 1) for item in value]
    entry = _BY_CLASS.get(kind)
    if entry is not None:
        return entry.encode(value, depth)
    if isinstance(value, (str, int, float)):
        return value  # e.g. an unregistered str enum: stored, and read back, as its value
    if isinstance(value, dict):
        return _encode_dict(value, depth, _encode)
    if isinstance(value, (list, tuple)):
        return [_encode(item, depth + 1) for item in value]
    if isinstance(value, dt.datetime):
        return _BY_CLASS[dt.datetime].encode(value, depth)
    raise _WrongType(
        f"cannot store a {kind.__module__}.{kind.__qualname__}: register it in "
        "state_engine.codec (only registered types are stored)"
    )


def _encode_dict(value: Dict[Any, Any], depth: int, encode_item: _Encoder) -> Dict[str, Any]:
    escaped = TYPE_TAG in value
    depth += escaped
    if depth > MAX_DEPTH:
        _too_deep_to_store()
    encoded = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise _WrongType(f"state keys must be strings, not {type(key).__name__}")
        if key.startswith("py/"):
            raise ValueError(f"cannot store the key {key!r}: it would read as a jsonpickle tag")
        encoded[key] = encode_item(item, depth + 1)
    return {TYPE_TAG: _DICT, VALUE_TAG: encoded} if escaped else encoded


def encode_value(value: Any) -> Any:
    """A state value as the JSON data stored; TypeError for what cannot be stored (an
    unregistered type, a field not of its declared type), ValueError if too deep."""
    return _encode(value, 1)


_WRITER = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    allow_nan=False,
    check_circular=False,  # it writes trees _encode just built, bounded in depth
)


def dumps(value: Any) -> str:
    """Encode a whole store item (without its e_tag) to JSON text, the same for equal values."""
    return _WRITER.encode(_encode(value, 1))


# --- Decoding --------------------------------------------------------------------------------


def _too_deep() -> NoReturn:
    raise UnsafeDocumentError(_TOO_DEEP)


def _refuse_key(key: Any, where: str) -> NoReturn:
    if isinstance(key, str) and key.startswith("py/"):
        raise UnsafeDocumentError(
            f"stored document carries a jsonpickle tag {key!r}; refused, nothing was executed"
        )
    raise UnsafeDocumentError(f"{where} cannot have the key {key!r:.60}")


def _kind(data: Any) -> str:
    """What a piece of stored JSON is, for messages."""
    kind = type(data)
    if kind is dict:
        tag = data.get(TYPE_TAG)
        return f"a stored {tag:.40}" if isinstance(tag, str) else "an object"
    return {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
    }.get(kind, kind.__name__)


def _wrong_kind(expected: str, data: Any) -> NoReturn:
    """Refuse data of another kind than declared, naming a jsonpickle tag if it carries one."""
    if type(data) is dict:
        for key in data:
            if isinstance(key, str) and key.startswith("py/"):
                _refuse_key(key, "stored JSON")
    raise _WrongKind(f"expected {expected}, got {_kind(data)}")


def _decode(data: Any, depth: int) -> Any:
    kind = type(data)
    if kind is dict:
        if data.get(TYPE_TAG, _DICT) == _DICT:
            return _decode_dict(data, depth, _decode)
        return _decode_tagged(data, depth)
    if kind is list:
        if depth > MAX_DEPTH:
            _too_deep()
        return [_decode(item, depth + 1) for item in data]
    if kind in _JSON_SCALARS:
        return data
    raise UnsafeDocumentError(f"stored data holds a {kind.__name__}, which is not JSON")


def _decode_dict(data: Dict[str, Any], depth: int, decode_item: _Decoder) -> Dict[str, Any]:
    """A plain dict: stored as itself, or wrapped when it has a ``$type`` key of its own."""
    if TYPE_TAG in data:
        if data[TYPE_TAG] != _DICT:
            _wrong_kind("an object", data)
        data = _wrapped(data, _DICT)
        depth += 1
        if type(data) is not dict:
            raise UnsafeDocumentError(f"a stored dict holds {_kind(data)}, not an object")
    if depth > MAX_DEPTH:
        _too_deep()
    decoded = {}
    for key, item in data.items():
        if not isinstance(key, str) or key.startswith("py/"):
            _refuse_key(key, "a stored dict")
        decoded[key] = decode_item(item, depth + 1)
    return decoded


def _decode_tagged(data: Dict[str, Any], depth: int) -> Any:
    if depth > MAX_DEPTH:
        _too_deep()
    name = data[TYPE_TAG]
    entry = _BY_NAME.get(name) if isinstance(name, str) else None
    if entry is None:
        raise UnsafeDocumentError(f"stored document names unknown type {name!r:.60}; refused")
    return entry.decode(data, depth)


def _wrapped(data: Dict[str, Any], name: str) -> Any:
    """The ``$value`` of ``{"$type": name, "$value": ...}``, which may have no other key."""
    if VALUE_TAG not in data or len(data) != 2:
        for key in data:
            if key not in (TYPE_TAG, VALUE_TAG):
                _refuse_key(key, f"a stored {name}")
        raise UnsafeDocumentError(f"a stored {name} has no {VALUE_TAG!r}")
    return data[VALUE_TAG]


def _check_json(data: Any, depth: int) -> None:
    """Free-form JSON another decoder reads (an Activity's wire JSON): no jsonpickle tag,
    no deeper than MAX_DEPTH."""
    kind = type(data)
    if kind is dict:
        if depth > MAX_DEPTH:
            _too_deep()
        for key, item in data.items():
            if not isinstance(key, str) or key.startswith("py/"):
                _refuse_key(key, "stored JSON")
            _check_json(item, depth + 1)
    elif kind is list:
        if depth > MAX_DEPTH:
            _too_deep()
        for item in data:
            _check_json(item, depth + 1)
    elif kind not in _JSON_SCALARS:
        raise UnsafeDocumentError(f"stored data holds a {kind.__name__}, which is not JSON")


def decode_value(data: Any) -> Any:
    """Rebuild a state value from JSON data; UnsafeDocumentError for anything else."""
    return _decode(data, 1)


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


_READER = json.JSONDecoder(parse_constant=_refuse_constant)


def _parse(text: str | bytes) -> Any:
    try:
        if isinstance(text, (bytes, bytearray)):
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        return _READER.decode(text)
    except RecursionError:
        raise UnsafeDocumentError(_TOO_DEEP) from None
    except ValueError as error:  # not JSON, not UTF-8, or a number of thousands of digits
        raise UnsafeDocumentError(f"stored document is not valid JSON: {error}") from None


def loads(text: str | bytes) -> Any:
    """Decode stored JSON text, which may be any JSON value; UnsafeDocumentError for
    anything that is not what ``dumps`` writes (or wrote, in the shape before)."""
    return _decode(_parse(text), 1)


def loads_object(text: str | bytes) -> Any:
    """Decode a stored record: as ``loads``, and the JSON must be an object (a state
    scope's dict of properties, or a registered object such as an UtteranceLog)."""
    data = _parse(text)
    if type(data) is not dict:
        raise UnsafeDocumentError(f"a stored record must be a JSON object, not {_kind(data)}")
    return _decode(data, 1)


# --- Declared types --------------------------------------------------------------------------


def _codec_for(hint: Any) -> Tuple[_Encoder, _Decoder]:
    """Encoder and decoder for a value declared as ``hint``, each refusing other types."""
    if hint is Any or hint is object:
        return _encode, _decode
    if hint in _SCALAR_CODECS:
        return _SCALAR_CODECS[hint]
    origin, arguments = get_origin(hint), get_args(hint)
    if origin is Union or origin is types.UnionType:
        return _union_codec(arguments)
    if hint is list or origin is list:
        return _list_codec(_codec_for(arguments[0]) if arguments else (_encode, _decode))
    if hint is dict or origin is dict:
        if arguments and arguments[0] is not str:
            raise TypeError(f"{hint} cannot be stored: JSON object keys are strings")
        return _dict_codec(_codec_for(arguments[1]) if arguments else (_encode, _decode))
    if isinstance(hint, type) and hint in _BY_CLASS:
        return _registered_codec(hint)
    raise TypeError(
        f"the codec cannot check {hint!r}: declare str, int, float, bool, datetime, "
        "Optional/Union, List[X], Dict[str, X], Any or a registered type"
    )


def _scalar_codec(cls: type, described: str) -> Tuple[_Encoder, _Decoder]:
    def encode(value: Any, depth: int) -> Any:
        if isinstance(value, cls) and (cls is bool or not isinstance(value, bool)):
            return value
        raise _WrongType(f"expected {cls.__name__}, got {type(value).__name__}")

    def decode(data: Any, depth: int) -> Any:
        if type(data) is cls:
            return data
        _wrong_kind(described, data)

    return encode, decode


def _encode_float(value: Any, depth: int) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise _WrongType(f"expected float, got {type(value).__name__}")


def _decode_float(data: Any, depth: int) -> float:
    if type(data) is float:
        return data
    if type(data) is int:
        try:
            return float(data)
        except OverflowError:
            raise UnsafeDocumentError("a number too large for a float") from None
    _wrong_kind("a number", data)


_SCALAR_CODECS: Dict[Any, Tuple[_Encoder, _Decoder]] = {
    str: _scalar_codec(str, "a string"),
    int: _scalar_codec(int, "a whole number"),
    bool: _scalar_codec(bool, "true or false"),
    float: (_encode_float, _decode_float),
}


def _union_codec(arguments: Tuple[Any, ...]) -> Tuple[_Encoder, _Decoder]:
    optional = type(None) in arguments
    codecs = [_codec_for(argument) for argument in arguments if argument is not type(None)]
    if len(codecs) == 1:  # Optional[X]
        ((encode_one, decode_one),) = codecs
        return (
            lambda value, depth: None if value is None else encode_one(value, depth),
            lambda data, depth: None if data is None else decode_one(data, depth),
        )
    described = " or ".join(
        "null" if argument is type(None) else getattr(argument, "__name__", str(argument))
        for argument in arguments
    )

    def encode(value: Any, depth: int) -> Any:
        if value is None and optional:
            return None
        for encode_one, _ in codecs:
            try:
                return encode_one(value, depth)
            except _WrongType:
                continue  # another alternative may fit; any other error is the answer
        raise _WrongType(f"expected {described}, got {type(value).__name__}")

    def decode(data: Any, depth: int) -> Any:
        if data is None and optional:
            return None
        for _, decode_one in codecs:
            try:
                return decode_one(data, depth)
            except _WrongKind:
                continue
        _wrong_kind(described, data)

    return encode, decode


def _list_codec(item: Tuple[_Encoder, _Decoder]) -> Tuple[_Encoder, _Decoder]:
    encode_item, decode_item = item

    def encode(value: Any, depth: int) -> List[Any]:
        if not isinstance(value, (list, tuple)):
            raise _WrongType(f"expected a list, got {type(value).__name__}")
        if depth > MAX_DEPTH:
            _too_deep_to_store()
        return [encode_item(element, depth + 1) for element in value]

    def decode(data: Any, depth: int) -> List[Any]:
        if type(data) is not list:
            _wrong_kind("an array", data)
        if depth > MAX_DEPTH:
            _too_deep()
        return [decode_item(element, depth + 1) for element in data]

    return encode, decode


def _dict_codec(item: Tuple[_Encoder, _Decoder]) -> Tuple[_Encoder, _Decoder]:
    encode_item, decode_item = item

    def encode(value: Any, depth: int) -> Dict[str, Any]:
        if not isinstance(value, dict):
            raise _WrongType(f"expected a dict, got {type(value).__name__}")
        return _encode_dict(value, depth, encode_item)

    def decode(data: Any, depth: int) -> Dict[str, Any]:
        if type(data) is not dict:
            _wrong_kind("an object", data)
        return _decode_dict(data, depth, decode_item)

    return encode, decode


def _registered_codec(cls: type) -> Tuple[_Encoder, _Decoder]:
    entry = _BY_CLASS[cls]
    # An enum also reads from its bare value, as str enums were stored before.
    read_bare = (
        entry.from_json if isinstance(entry, _CompactEntry) and issubclass(cls, enum.Enum) else None
    )

    def encode(value: Any, depth: int) -> Any:
        if not isinstance(value, cls):
            raise _WrongType(f"expected {cls.__name__}, got {type(value).__name__}")
        return _encode(value, depth)

    def decode(data: Any, depth: int) -> Any:
        if type(data) is dict and TYPE_TAG in data:
            value = _decode_tagged(data, depth)
            if isinstance(value, cls):
                return value
        elif read_bare is not None and type(data) in _JSON_SCALARS and data is not None:
            return read_bare(data)
        _wrong_kind(f"a stored {cls.__name__}", data)

    return encode, decode


# --- Entries ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    encode: _Encoder
    decode: _Decoder


class _FieldsEntry(_Entry):
    """A class stored as its declared fields plus the tag; unknown fields that could be
    field names are ignored (a field dropped from a data model leaves its records
    readable), keys that could not (``__class__``, ``_x``, ``py/...``, ``a b``) are refused."""

    def __init__(self, cls: type) -> None:
        self.name, self.cls = cls.__name__, cls
        self._fields: Optional[Tuple[_Field, ...]] = None
        self._names: FrozenSet[str] = frozenset()

    @abc.abstractmethod
    def _declared(self) -> Dict[str, Any]:
        """Each stored field and its declared type."""

    @abc.abstractmethod
    def _attributes(self, value: Any) -> Mapping[str, Any]:
        """The stored fields of ``value``; TypeError if it has other or missing ones."""

    @abc.abstractmethod
    def _build(self, values: Dict[str, Any]) -> Any:
        """An instance from decoded field values."""

    def fields(self) -> Tuple[_Field, ...]:
        """Compiled on first use, so that annotations may name types registered later."""
        if self._fields is None:
            compiled = []
            for name, hint in self._declared().items():
                try:
                    compiled.append(_Field(name, *_codec_for(hint)))
                except TypeError as error:
                    raise TypeError(f"{self.name}.{name}: {error}") from None
            self._names = frozenset(field.name for field in compiled)
            self._fields = tuple(compiled)
        return self._fields

    def encode(self, value: Any, depth: int) -> Dict[str, Any]:
        fields = self.fields()
        attributes = self._attributes(value)
        encoded: Dict[str, Any] = {TYPE_TAG: self.name}
        for field in fields:
            try:
                encoded[field.name] = field.encode(attributes[field.name], depth + 1)
            except TypeError as error:
                raise TypeError(f"{self.name}.{field.name}: {error}") from None
        return encoded

    def decode(self, data: Dict[str, Any], depth: int) -> Any:
        fields = self.fields()
        if VALUE_TAG in data:  # the shape before: {"$type": name, "$value": {fields}}
            data = _wrapped(data, self.name)
            depth += 1
            if type(data) is not dict:
                raise UnsafeDocumentError(
                    f"a stored {self.name} holds {_kind(data)}, not an object"
                )
            if depth > MAX_DEPTH:
                _too_deep()
        values: Dict[str, Any] = {}
        for field in fields:
            if field.name in data:
                try:
                    values[field.name] = field.decode(data[field.name], depth + 1)
                except UnsafeDocumentError as error:
                    raise UnsafeDocumentError(f"{self.name}.{field.name}: {error}") from None
        if len(values) + (TYPE_TAG in data) != len(data):
            for key, item in data.items():
                if key != TYPE_TAG and key not in self._names:
                    if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
                        _refuse_key(key, f"a stored {self.name}")
                    _check_json(item, depth + 1)  # ignored, but never a hiding place
        return self._build(values)


class _DataclassEntry(_FieldsEntry):
    def _declared(self) -> Dict[str, Any]:
        try:
            hints = get_type_hints(self.cls)
        except NameError as error:
            raise TypeError(f"{self.name}: an annotation names an unknown type: {error}") from None
        declared = {}
        for field in dataclasses.fields(self.cls):
            if field.name == "e_tag":
                continue  # the store's version of the item, kept beside the document
            if not field.init:
                raise TypeError(
                    f"{self.name}.{field.name}: a field with init=False cannot be rebuilt"
                )
            declared[field.name] = hints[field.name]
        return declared

    def _attributes(self, value: Any) -> Mapping[str, Any]:
        return {name: getattr(value, name) for name in self._names}

    def _build(self, values: Dict[str, Any]) -> Any:
        try:
            return self.cls(**values)  # missing fields take their defaults
        except (TypeError, ValueError) as error:
            raise UnsafeDocumentError(f"a stored {self.name} cannot be rebuilt: {error}") from None


class _PlainEntry(_FieldsEntry):
    def __init__(self, cls: type, declared: Dict[str, Any]) -> None:
        super().__init__(cls)
        self._declared_types = declared

    def _declared(self) -> Dict[str, Any]:
        return self._declared_types

    def _attributes(self, value: Any) -> Mapping[str, Any]:
        attributes = vars(value)
        if attributes.keys() != self._names:
            raise TypeError(
                f"cannot store this {self.name}: it has the attributes {sorted(attributes)}, "
                f"the codec stores {sorted(self._names)}"
            )
        return attributes

    def _build(self, values: Dict[str, Any]) -> Any:
        if len(values) != len(self._names):
            missing = sorted(self._names - values.keys())
            raise UnsafeDocumentError(f"a stored {self.name} has no {', '.join(missing)}")
        instance = self.cls.__new__(self.cls)
        instance.__dict__.update(values)
        return instance


class _ModelEntry(_Entry):
    """A schema model stored as its wire JSON plus the tag."""

    def __init__(self, cls: Type[Model]) -> None:
        self.name, self.cls = cls.__name__, cls
        self._read: Callable[[Dict[str, Any]], Model] = (
            activity_from_json if cls is Activity else cls.deserialize
        )

    def encode(self, value: Any, depth: int) -> Dict[str, Any]:
        try:
            wire = activity_to_json(value)
            check_wire_json(wire, self.cls, self.name)
            _check_json(wire, depth)
        except (SerializationError, WireTypeError) as error:
            raise TypeError(f"cannot store this {self.name}: {error}") from None
        except UnsafeDocumentError as error:
            raise ValueError(f"cannot store this {self.name}: {error}") from None
        return {TYPE_TAG: self.name, **wire}

    def decode(self, data: Dict[str, Any], depth: int) -> Any:
        if VALUE_TAG in data:  # the shape before: {"$type": name, "$value": {wire JSON}}
            wire = _wrapped(data, self.name)
            depth += 1
            if type(wire) is not dict:
                raise UnsafeDocumentError(
                    f"a stored {self.name} holds {_kind(wire)}, not an object"
                )
        else:
            wire = {key: item for key, item in data.items() if key != TYPE_TAG}
        _check_json(wire, depth)
        try:
            check_wire_json(wire, self.cls, self.name)
            return self._read(wire)
        except WireTypeError as error:
            raise UnsafeDocumentError(f"a stored {self.name} is malformed: {error}") from None
        except (DeserializationError, TypeError, ValueError, AttributeError, KeyError) as error:
            raise UnsafeDocumentError(
                f"a stored {self.name} cannot be read: {type(error).__name__}"
            ) from None


class _CompactEntry(_Entry):
    """A scalar that needs its tag (a datetime, an enum member): ``{"$type", "$value"}``."""

    def __init__(
        self, cls: type, to_json: Callable[[Any], Any], read: Callable[[Any], Any]
    ) -> None:
        self.name, self.cls = cls.__name__, cls
        self._to_json, self._read = to_json, read

    def encode(self, value: Any, depth: int) -> Dict[str, Any]:
        return {TYPE_TAG: self.name, VALUE_TAG: self._to_json(value)}

    def decode(self, data: Dict[str, Any], depth: int) -> Any:
        return self.from_json(_wrapped(data, self.name))

    def from_json(self, value: Any) -> Any:
        if type(value) in _JSON_SCALARS:
            try:
                return self._read(value)
            except (TypeError, ValueError):
                pass
        raise UnsafeDocumentError(f"{_kind(value)} {value!r:.40} is not a stored {self.name}")


def _datetime_from_json(value: Any) -> dt.datetime:
    if not isinstance(value, str):
        raise TypeError("an ISO 8601 datetime is a string")
    return dt.datetime.fromisoformat(value)


_register(_CompactEntry(dt.datetime, dt.datetime.isoformat, _datetime_from_json))


def _register_sdk_types() -> None:
    """The SDK types a dialog stack holds while a waterfall or prompt is waiting."""
    from botbuilder.dialogs import DialogInstance, DialogState
    from botbuilder.dialogs.choices import Choice, ListStyle
    from botbuilder.dialogs.prompts import PromptOptions
    from botbuilder.schema import CardAction, SuggestedActions

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


_register_sdk_types()
