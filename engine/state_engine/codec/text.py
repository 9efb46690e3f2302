"""Stored JSON text to values and back: the compact writer whose output is the same
for equal values, and the reader that turns every way text can fail to be JSON into
an UnsafeDocumentError."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from ..errors import UnsafeDocumentError
from .refusals import TOO_DEEP, kind_of
from .tree import decode, encode

_WRITER = json.JSONEncoder(
    ensure_ascii=False,
    separators=(",", ":"),
    allow_nan=False,
    check_circular=False,  # it writes trees encode just built, bounded in depth
)


def dumps(value: Any) -> str:
    """Encode a whole store item (without its e_tag) to JSON text, the same for equal values."""
    return _WRITER.encode(encode(value, 1))


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


_READER = json.JSONDecoder(parse_constant=_refuse_constant)


def _parse(text: str | bytes) -> Any:
    try:
        if isinstance(text, (bytes, bytearray)):
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        return _READER.decode(text)
    except RecursionError:
        raise UnsafeDocumentError(TOO_DEEP) from None
    except ValueError as error:  # not JSON, not UTF-8, or a number of thousands of digits
        raise UnsafeDocumentError(f"stored document is not valid JSON: {error}") from None


def loads(text: str | bytes) -> Any:
    """Decode stored JSON text, which may be any JSON value; UnsafeDocumentError for
    anything that is not what ``dumps`` writes (or wrote, in the shape before)."""
    return decode(_parse(text), 1)


def loads_object(text: str | bytes) -> Any:
    """Decode a stored record: as ``loads``, and the JSON must be an object (a state
    scope's dict of properties, or a registered object such as an UtteranceLog)."""
    data = _parse(text)
    if type(data) is not dict:
        raise UnsafeDocumentError(f"a stored record must be a JSON object, not {kind_of(data)}")
    return decode(data, 1)
