"""``make migrate``: move the earlier layout's records into partitions, on the store the bot uses.

Reads the same settings as app.py (the environment and ``.env``), then runs the engine's
migration once; it is safe to run again or to stop half-way.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config import DefaultConfig  # noqa: E402  (needs the project folder on sys.path)
from state_engine.migrate import migrate  # noqa: E402
from state_engine.stores import create_storage  # noqa: E402


async def main() -> None:
    config = DefaultConfig.from_env()
    storage = create_storage(config.STORAGE, config.STORAGE_SETTINGS)
    try:
        report = await migrate(storage)
    finally:
        await storage.close()
    print(
        f"STORAGE={config.STORAGE}: {report.moved} records moved into their conversation's item, "
        f"{report.kept_newer} older copies and {report.dropped} unreadable items removed"
    )


if __name__ == "__main__":
    asyncio.run(main())
