"""Registered classes stored as their declared fields beside the ``$type`` tag:
dataclasses, checked against their annotations, and plain SDK classes, against the
types they were registered with; a stored field that is not declared hides nothing."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Dict, FrozenSet, Mapping, Optional, Tuple, get_type_hints

from ..errors import UnsafeDocumentError
from .fields import codec_for
from .refusals import refuse_key, too_deep
from .registry import MAX_DEPTH, TYPE_TAG, VALUE_TAG, Decoder, Encoder, Entry
from .tree import check_json, unwrap_object


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    encode: Encoder
    decode: Decoder


class FieldsEntry(Entry):
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
                    compiled.append(_Field(name, *codec_for(hint)))
                except TypeError as error:
                    raise TypeError(f"{self.name}.{name}: {error}") from None
            self._names = frozenset(field.name for field in compiled)
            self._fields = tuple(compiled)
        return self._fields

    def encode(self, value: Any, depth: int) -> Dict[str, Any]:
        fields = self._fields if self._fields is not None else self.fields()
        attributes = self._attributes(value)
        encoded: Dict[str, Any] = {TYPE_TAG: self.name}
        inner = depth + 1
        try:
            for field in fields:
                encoded[field.name] = field.encode(attributes[field.name], inner)
        except TypeError as error:
            raise TypeError(f"{self.name}.{field.name}: {error}") from None
        return encoded

    def decode(self, data: Dict[str, Any], depth: int) -> Any:
        fields = self._fields if self._fields is not None else self.fields()
        if VALUE_TAG in data:  # the shape before: {"$type": name, "$value": {fields}}
            data, depth = unwrap_object(data, self.name, depth)
            if depth > MAX_DEPTH:
                too_deep()
        values: Dict[str, Any] = {}
        inner = depth + 1
        try:
            for field in fields:
                if field.name in data:
                    values[field.name] = field.decode(data[field.name], inner)
        except UnsafeDocumentError as error:
            raise UnsafeDocumentError(f"{self.name}.{field.name}: {error}") from None
        if len(values) + (TYPE_TAG in data) != len(data):
            self._check_undeclared(data, depth)
        return self._build(values)

    def _check_undeclared(self, data: Dict[str, Any], depth: int) -> None:
        """Refuse a stored key that could not be a field name; check the others' JSON."""
        for key, item in data.items():
            if key != TYPE_TAG and key not in self._names:
                if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
                    refuse_key(key, f"a stored {self.name}")
                check_json(item, depth + 1)  # ignored, but never a hiding place


class DataclassEntry(FieldsEntry):
    """A dataclass: its init fields but ``e_tag``, typed by its annotations."""

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
        attributes = getattr(value, "__dict__", None)
        if attributes is not None and self._names <= attributes.keys():
            return attributes  # a plain dataclass instance: its fields, as they are
        return {name: getattr(value, name) for name in self._names}

    def _build(self, values: Dict[str, Any]) -> Any:
        try:
            return self.cls(**values)  # missing fields take their defaults
        except (TypeError, ValueError) as error:
            raise UnsafeDocumentError(f"a stored {self.name} cannot be rebuilt: {error}") from None


class PlainEntry(FieldsEntry):
    """A class with a plain ``__dict__``: exactly the attributes it was registered with,
    set on an instance created without calling ``__init__``."""

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
