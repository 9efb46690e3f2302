"""Storage of our own behind the SDK's ``Storage`` interface (read, write, delete)."""

from ..errors import (
    ItemTooLargeError,
    PreconditionFailedError,
    StorageConfigurationError,
    StorageError,
    StorageUnavailableError,
    UnsafeDocumentError,
)
from .registry import create_storage
from .json_storage import CREATE_ONLY, JsonStorage

__all__ = [
    "CREATE_ONLY",
    "ItemTooLargeError",
    "JsonStorage",
    "PreconditionFailedError",
    "StorageConfigurationError",
    "StorageError",
    "StorageUnavailableError",
    "UnsafeDocumentError",
    "create_storage",
]
