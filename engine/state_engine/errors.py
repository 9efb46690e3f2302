"""One error vocabulary for every store: each backend translates its SDK's errors into
these, so the bot and the turn runner never need to know which store is behind them.
"""


class StorageError(Exception):
    """Base class of every storage failure the bot is expected to handle."""


class PreconditionFailedError(StorageError):
    """A conditional write lost: the item changed since it was read (stale e_tag),
    or an item that was expected to be new already exists."""

    def __init__(self, key: str, detail: str = "the item was changed by another writer"):
        super().__init__(f"precondition failed for key {key!r}: {detail}")
        self.key = key


class StorageUnavailableError(StorageError):
    """The store could not be reached or refused to work (locked, read-only, down)."""


class WriteOutcomeUnknownError(StorageUnavailableError):
    """A write went out and no answer said whether it was carried out (a timeout, a lost
    connection, a server error): it may have landed. It is never sent again as it is; the
    state layer reads the item back to find out, and fences it off when it has not landed."""


class ItemTooLargeError(StorageError):
    """A document is larger than the backend accepts; refused before it is written."""

    def __init__(self, key: str, size: int, limit: int):
        super().__init__(
            f"item {key!r} is {size} bytes when stored, over this store's limit of {limit} bytes"
        )
        self.key = key
        self.size = size
        self.limit = limit


class UnsafeDocumentError(StorageError):
    """A stored document names a type we do not know (e.g. a planted jsonpickle
    ``py/reduce`` payload). It is refused; nothing in it is executed."""


class StorageConfigurationError(StorageError):
    """The storage settings are wrong; the message names the setting to fix."""
