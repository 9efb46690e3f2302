"""Encoders and decoders for a value declared by a type hint (str, int, float, bool,
Optional/Union, List[X], Dict[str, X], Any, a registered type), each refusing any
other type, so that a registered class's fields are checked on write and on read."""

from __future__ import annotations

import enum
import types
from typing import Any, Dict, List, Tuple, Union, get_args, get_origin

from ..errors import UnsafeDocumentError
from .refusals import WrongKind, WrongType, too_deep, too_deep_to_store, wrong_kind
from .registry import BY_CLASS, JSON_SCALARS, MAX_DEPTH, TYPE_TAG, Decoder, Encoder
from .scalars import CompactEntry
from .tree import decode, decode_dict, decode_tagged, encode, encode_dict


def codec_for(hint: Any) -> Tuple[Encoder, Decoder]:
    """Encoder and decoder for a value declared as ``hint``, each refusing other types."""
    if hint is Any or hint is object:
        return encode, decode
    if hint in _SCALAR_CODECS:
        return _SCALAR_CODECS[hint]
    origin, arguments = get_origin(hint), get_args(hint)
    if origin is Union or origin is types.UnionType:
        return _union_codec(arguments)
    if hint is list or origin is list:
        return _list_codec(codec_for(arguments[0]) if arguments else (encode, decode))
    if hint is dict or origin is dict:
        if arguments and arguments[0] is not str:
            raise TypeError(f"{hint} cannot be stored: JSON object keys are strings")
        return _dict_codec(codec_for(arguments[1]) if arguments else (encode, decode))
    if isinstance(hint, type) and hint in BY_CLASS:
        return _registered_codec(hint)
    raise TypeError(
        f"the codec cannot check {hint!r}: declare str, int, float, bool, datetime, "
        "Optional/Union, List[X], Dict[str, X], Any or a registered type"
    )


def _scalar_codec(cls: type, described: str) -> Tuple[Encoder, Decoder]:
    def encode_scalar(value: Any, depth: int) -> Any:
        if type(value) is cls or (isinstance(value, cls) and (cls is bool or not isinstance(value, bool))):
            return value
        raise WrongType(f"expected {cls.__name__}, got {type(value).__name__}")

    def decode_scalar(data: Any, depth: int) -> Any:
        if type(data) is cls:
            return data
        wrong_kind(described, data)

    return encode_scalar, decode_scalar


def _encode_float(value: Any, depth: int) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise WrongType(f"expected float, got {type(value).__name__}")


def _decode_float(data: Any, depth: int) -> float:
    if type(data) is float:
        return data
    if type(data) is int:
        try:
            return float(data)
        except OverflowError:
            raise UnsafeDocumentError("a number too large for a float") from None
    wrong_kind("a number", data)


_SCALAR_CODECS: Dict[Any, Tuple[Encoder, Decoder]] = {
    str: _scalar_codec(str, "a string"),
    int: _scalar_codec(int, "a whole number"),
    bool: _scalar_codec(bool, "true or false"),
    float: (_encode_float, _decode_float),
}


def _union_codec(arguments: Tuple[Any, ...]) -> Tuple[Encoder, Decoder]:
    optional = type(None) in arguments
    codecs = [codec_for(argument) for argument in arguments if argument is not type(None)]
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

    def encode_union(value: Any, depth: int) -> Any:
        if value is None and optional:
            return None
        for encode_one, _ in codecs:
            try:
                return encode_one(value, depth)
            except WrongType:
                continue  # another alternative may fit; any other error is the answer
        raise WrongType(f"expected {described}, got {type(value).__name__}")

    def decode_union(data: Any, depth: int) -> Any:
        if data is None and optional:
            return None
        for _, decode_one in codecs:
            try:
                return decode_one(data, depth)
            except WrongKind:
                continue
        wrong_kind(described, data)

    return encode_union, decode_union


def _list_codec(item: Tuple[Encoder, Decoder]) -> Tuple[Encoder, Decoder]:
    encode_item, decode_item = item

    def encode_list(value: Any, depth: int) -> List[Any]:
        if not isinstance(value, (list, tuple)):
            raise WrongType(f"expected a list, got {type(value).__name__}")
        if depth > MAX_DEPTH:
            too_deep_to_store()
        return [encode_item(element, depth + 1) for element in value]

    def decode_list(data: Any, depth: int) -> List[Any]:
        if type(data) is not list:
            wrong_kind("an array", data)
        if depth > MAX_DEPTH:
            too_deep()
        return [decode_item(element, depth + 1) for element in data]

    return encode_list, decode_list


def _dict_codec(item: Tuple[Encoder, Decoder]) -> Tuple[Encoder, Decoder]:
    encode_item, decode_item = item

    def encode_typed_dict(value: Any, depth: int) -> Dict[str, Any]:
        if not isinstance(value, dict):
            raise WrongType(f"expected a dict, got {type(value).__name__}")
        return encode_dict(value, depth, encode_item)

    def decode_typed_dict(data: Any, depth: int) -> Dict[str, Any]:
        if type(data) is not dict:
            wrong_kind("an object", data)
        return decode_dict(data, depth, decode_item)

    return encode_typed_dict, decode_typed_dict


def _registered_codec(cls: type) -> Tuple[Encoder, Decoder]:
    entry = BY_CLASS[cls]
    # An enum also reads from its bare value, as str enums were stored before.
    read_bare = (
        entry.from_json if isinstance(entry, CompactEntry) and issubclass(cls, enum.Enum) else None
    )

    def encode_registered(value: Any, depth: int) -> Any:
        if type(value) is cls and depth <= MAX_DEPTH:
            return entry.encode(value, depth)  # what ``encode`` would pick, looked up once
        if not isinstance(value, cls):
            raise WrongType(f"expected {cls.__name__}, got {type(value).__name__}")
        return encode(value, depth)

    def decode_registered(data: Any, depth: int) -> Any:
        if type(data) is dict and TYPE_TAG in data:
            if data[TYPE_TAG] == entry.name and depth <= MAX_DEPTH:
                value = entry.decode(data, depth)  # what ``decode_tagged`` would pick
            else:
                value = decode_tagged(data, depth)
            if isinstance(value, cls):
                return value
        elif read_bare is not None and type(data) in JSON_SCALARS and data is not None:
            return read_bare(data)
        wrong_kind(f"a stored {cls.__name__}", data)

    return encode_registered, decode_registered
