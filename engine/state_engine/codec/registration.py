"""The public way to make a type storable: register a dataclass, a plain class, a
schema model or an enum, each with the entry that stores and rebuilds it; the codec
rebuilds nothing that was not registered here."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Mapping, Optional, Type

from msrest.serialization import Model

from .models import ModelEntry
from .objects import DataclassEntry, PlainEntry
from .registry import register
from .scalars import CompactEntry


def register_dataclass(cls: Type) -> Type:
    """Class decorator: store a dataclass as its fields (but ``e_tag``) plus a ``$type`` tag.

    Fields are checked against their annotations on write and on read: str, int, float,
    bool, datetime, Optional/Union, List[X], Dict[str, X], Any and registered types."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls.__name__} is not a dataclass")
    register(DataclassEntry(cls))
    return cls


def register_plain_class(cls: Type, attributes: Optional[Mapping[str, Any]] = None) -> None:
    """Store an SDK class with a plain ``__dict__`` (DialogState, DialogInstance...).

    ``attributes`` maps each attribute to its type, as a dataclass annotation would; by
    default, the attributes a no-argument instance has, of any type. Rebuilding sets
    exactly those on an instance created without calling ``__init__``."""
    declared = dict(attributes) if attributes is not None else {name: Any for name in vars(cls())}
    register(PlainEntry(cls, declared))


def register_msrest_model(cls: Type[Model]) -> None:
    """Store a Bot Framework schema model (e.g. Activity) as its wire JSON, whose field
    types are checked against the model's ``_attribute_map`` before msrest reads it."""
    register(ModelEntry(cls))


def register_enum(cls: Type[enum.Enum]) -> None:
    """Store an enum's members as ``{"$type": name, "$value": member.value}``."""
    register(CompactEntry(cls, lambda member: member.value, cls))
