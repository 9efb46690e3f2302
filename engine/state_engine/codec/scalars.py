"""Registered scalars that need their tag to be read back, a datetime or an enum
member, stored compactly as ``{"$type": name, "$value": json}`` and read only from a
JSON scalar their reader accepts."""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable, Dict

from ..errors import UnsafeDocumentError
from .refusals import kind_of
from .registry import JSON_SCALARS, TYPE_TAG, VALUE_TAG, Entry
from .tree import unwrap


class CompactEntry(Entry):
    """A scalar that needs its tag (a datetime, an enum member): ``{"$type", "$value"}``."""

    def __init__(
        self, cls: type, to_json: Callable[[Any], Any], read: Callable[[Any], Any]
    ) -> None:
        self.name, self.cls = cls.__name__, cls
        self._to_json, self._read = to_json, read

    def encode(self, value: Any, depth: int) -> Dict[str, Any]:
        return {TYPE_TAG: self.name, VALUE_TAG: self._to_json(value)}

    def decode(self, data: Dict[str, Any], depth: int) -> Any:
        return self.from_json(unwrap(data, self.name))

    def from_json(self, value: Any) -> Any:
        if type(value) in JSON_SCALARS:
            try:
                return self._read(value)
            except (TypeError, ValueError):
                pass
        raise UnsafeDocumentError(f"{kind_of(value)} {value!r:.40} is not a stored {self.name}")


def datetime_from_json(value: Any) -> dt.datetime:
    """A datetime from its ISO 8601 text; TypeError for anything but a string."""
    if not isinstance(value, str):
        raise TypeError("an ISO 8601 datetime is a string")
    return dt.datetime.fromisoformat(value)
