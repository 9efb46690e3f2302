"""The SQLite store's worker process that pulls the plug: at the ``CRASH_AT_WRITE``-th
statement of a write, inside its transaction, it ends the bot process and itself.

``tests/crashing_bot.py`` runs it in place of the real worker.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "engine" / "state_engine" / "stores"))

import sqlite_worker  # noqa: E402  (the real worker, as the store runs it: a script of its own)

CRASH_AT = int(os.environ["CRASH_AT_WRITE"])
statements = 0
_real_statement = sqlite_worker.statement


def _statement_then_crash(*args: Any) -> Any:
    """After the ``CRASH_AT``-th statement has run, the next one ends both processes
    (the transaction is still open: nothing after it runs, as when the power goes)."""
    global statements
    statements += 1
    if statements > CRASH_AT:
        os.kill(os.getppid(), signal.SIGKILL)
        os._exit(137)
    return _real_statement(*args)


sqlite_worker.statement = _statement_then_crash
sqlite_worker.main()
