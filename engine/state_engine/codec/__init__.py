"""The one safe JSON codec every store uses: bot state (our dataclasses, the SDK's dialog
stack, Activities) to JSON and back. Only registered types are rebuilt, named by a
``$type`` tag and each field checked against its declared type; anything else, such as
the ``py/reduce`` jsonpickle would run, is refused with UnsafeDocumentError.
"""

from . import sdk_types as _sdk_types
from .registration import (
    register_dataclass,
    register_enum,
    register_msrest_model,
    register_plain_class,
)
from .registry import MAX_DEPTH, TYPE_TAG, VALUE_TAG
from .text import dumps, loads, loads_object
from .tree import decode_value, encode_value

__all__ = [
    "MAX_DEPTH",
    "TYPE_TAG",
    "VALUE_TAG",
    "decode_value",
    "dumps",
    "encode_value",
    "loads",
    "loads_object",
    "register_dataclass",
    "register_enum",
    "register_msrest_model",
    "register_plain_class",
]

_sdk_types.register_sdk_types()
