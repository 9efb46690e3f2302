"""How the codec says no: the errors for a value of the wrong type or stored data of
the wrong kind, and the messages naming what was found, so that every refusal on
read is an UnsafeDocumentError that says why."""

from __future__ import annotations

from typing import Any, NoReturn

from ..errors import UnsafeDocumentError
from .registry import MAX_DEPTH, TYPE_TAG

TOO_DEEP = f"stored document is nested deeper than {MAX_DEPTH} levels"


class WrongType(TypeError):
    """A value is not of the declared type at all (not: a part of it is wrong)."""


class WrongKind(UnsafeDocumentError):
    """Stored data is not of the declared kind at all (not: a part of it is wrong)."""


def too_deep_to_store() -> NoReturn:
    raise ValueError(f"cannot store data nested deeper than {MAX_DEPTH} levels (is there a cycle?)")


def too_deep() -> NoReturn:
    raise UnsafeDocumentError(TOO_DEEP)


def refuse_key(key: Any, where: str) -> NoReturn:
    if isinstance(key, str) and key.startswith("py/"):
        raise UnsafeDocumentError(
            f"stored document carries a jsonpickle tag {key!r}; refused, nothing was executed"
        )
    raise UnsafeDocumentError(f"{where} cannot have the key {key!r:.60}")


def kind_of(data: Any) -> str:
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


def wrong_kind(expected: str, data: Any) -> NoReturn:
    """Refuse data of another kind than declared, naming a jsonpickle tag if it carries one."""
    if type(data) is dict:
        for key in data:
            if isinstance(key, str) and key.startswith("py/"):
                refuse_key(key, "stored JSON")
    raise WrongKind(f"expected {expected}, got {kind_of(data)}")
