"""Bot Framework schema models (an Activity, a CardAction...) stored as their wire
JSON beside the ``$type`` tag, its field types checked against the model's attribute
map before msrest reads it, so that malformed JSON never reaches msrest."""

from __future__ import annotations

from typing import Any, Callable, Dict, Type

from botbuilder.schema import Activity
from msrest.exceptions import DeserializationError, SerializationError
from msrest.serialization import Model

from ..activity_json import activity_from_json, activity_to_json
from ..errors import UnsafeDocumentError
from ..wire_types import WireTypeError, check_wire_json
from .registry import TYPE_TAG, VALUE_TAG, Entry
from .tree import check_json, unwrap_object


class ModelEntry(Entry):
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
            check_json(wire, depth)
        except (SerializationError, WireTypeError) as error:
            raise TypeError(f"cannot store this {self.name}: {error}") from None
        except UnsafeDocumentError as error:
            raise ValueError(f"cannot store this {self.name}: {error}") from None
        return {TYPE_TAG: self.name, **wire}

    def decode(self, data: Dict[str, Any], depth: int) -> Any:
        if VALUE_TAG in data:  # the shape before: {"$type": name, "$value": {wire JSON}}
            wire, depth = unwrap_object(data, self.name, depth)
        else:
            wire = {key: item for key, item in data.items() if key != TYPE_TAG}
        check_json(wire, depth)
        try:
            check_wire_json(wire, self.cls, self.name)
            return self._read(wire)
        except WireTypeError as error:
            raise UnsafeDocumentError(f"a stored {self.name} is malformed: {error}") from None
        except (DeserializationError, TypeError, ValueError, AttributeError, KeyError) as error:
            raise UnsafeDocumentError(
                f"a stored {self.name} cannot be read: {type(error).__name__}"
            ) from None
