"""``python tests/crashing_bot.py``: app.py that dies at its N-th storage write (``CRASH_AT_WRITE``).

On the cloud stores the process ends right after that item write has landed; on SQLite,
where a turn is one transaction, it ends (with the store's worker process) after that
many statements, before COMMIT. Either way nothing runs after it: the same as pulling
the plug between two writes.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from state_engine.stores import registry, sqlite  # noqa: E402
from state_engine.stores.items import ItemStore, Put  # noqa: E402

CRASH_AT = int(os.environ["CRASH_AT_WRITE"])
writes = 0


def _counted() -> None:
    global writes
    writes += 1
    if writes == CRASH_AT:
        os._exit(137)


class CrashingItems(ItemStore):
    """Every call goes to the real backend; the ``CRASH_AT``-th write ends the process."""

    def __init__(self, inner: ItemStore) -> None:
        self._inner = inner
        self.max_item_bytes = inner.max_item_bytes
        self.atomic_batch = inner.atomic_batch

    async def get(self, item_ids: Any) -> Any:
        return await self._inner.get(item_ids)

    async def put(self, put: Put) -> Optional[str]:
        e_tag = await self._inner.put(put)
        _counted()
        return e_tag

    async def put_all(self, puts: Any) -> Any:
        return await self._inner.put_all(puts)

    async def list_ids(self, prefix: str) -> Any:
        return await self._inner.list_ids(prefix)

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()


_real_open_items = registry.open_items
if os.environ.get("STORAGE") == "sqlite":
    # SQLite's statements run in the store's worker process: one that crashes in them.
    sqlite.SqliteItems.worker_script = ROOT / "tests" / "crashing_sqlite_worker.py"
else:
    registry.open_items = lambda *args, **kwargs: CrashingItems(_real_open_items(*args, **kwargs))

os.chdir(ROOT)
runpy.run_path(str(ROOT / "app.py"), run_name="__main__")
