"""The bottom layer of the codec: the tags and depth limit of the stored shape, the
Entry base class each kind of registered type implements, and the tables of
registered types, so that every other module of the codec can build on them."""

from __future__ import annotations

import abc
from typing import Any, Callable, Dict

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
DICT = "dict"
JSON_SCALARS = frozenset({str, int, float, bool, type(None)})

#: (value, depth of the JSON it becomes) -> JSON data
Encoder = Callable[[Any, int], Any]
#: (JSON data, its depth) -> value
Decoder = Callable[[Any, int], Any]


class Entry(abc.ABC):
    """How instances of one registered class are stored and rebuilt."""

    name: str
    cls: type

    @abc.abstractmethod
    def encode(self, value: Any, depth: int) -> Dict[str, Any]:
        """The tagged JSON object for ``value``, whose fields sit at ``depth + 1``."""

    @abc.abstractmethod
    def decode(self, data: Dict[str, Any], depth: int) -> Any:
        """Rebuild from a JSON object tagged with this entry's name, at ``depth``."""


BY_NAME: Dict[str, Entry] = {}
BY_CLASS: Dict[type, Entry] = {}
# The lookups of every tagged value, bound once (a method looked up on each call costs more).
entry_for_class = BY_CLASS.get
entry_named = BY_NAME.get


def register(entry: Entry) -> None:
    """Add ``entry`` to the tables; TypeError if its name is taken by another class."""
    known = BY_NAME.get(entry.name)
    if entry.name == DICT or (known is not None and known.cls is not entry.cls):
        raise TypeError(f"another type is already stored as {entry.name!r}")
    BY_NAME[entry.name] = entry
    BY_CLASS[entry.cls] = entry
