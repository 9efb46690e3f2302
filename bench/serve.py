"""Bench-only entry: run a bot exactly as it ships, plus the probes of ``bench.instrument``.

    python -m bench.serve bot    # app.py's APP (STORAGE, SQLITE_PATH... from the environment)
    python -m bench.serve docs   # bench/docs_wiring_app.py, the docs' default wiring

The only difference from ``python app.py`` is that the store made by
``storage.create_storage`` (or the docs wiring's MemoryStorage) is counted, and
``/bench/stats`` / ``/bench/reset`` exist.
"""

from __future__ import annotations

import os
import sys

from aiohttp import web

from bench import instrument
from config import DefaultConfig
from state_engine.stores.json_storage import JsonStorage


def serve_bot() -> None:
    import storage

    make_storage = storage.create_storage

    def counted_create_storage(config: DefaultConfig) -> JsonStorage:
        return instrument.count_storage(make_storage(config))

    # app.py imports create_storage by name when it is imported: patch it first.
    storage.create_storage = counted_create_storage
    import app

    instrument.attach(app.APP)
    web.run_app(app.APP, host=app.CONFIG.HOST, port=app.CONFIG.PORT)


def serve_docs_wiring() -> None:
    from botbuilder.core import MemoryStorage

    from bench import docs_wiring_app

    docs_wiring_app.MemoryStorage = lambda: instrument.count_storage(MemoryStorage())
    docs_app = docs_wiring_app.create_app(DefaultConfig.from_env())
    instrument.attach(docs_app)
    web.run_app(docs_app, host="127.0.0.1", port=int(os.environ["PORT"]))


if __name__ == "__main__":
    {"bot": serve_bot, "docs": serve_docs_wiring}[sys.argv[1]]()
