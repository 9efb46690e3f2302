"""A TCP server on 127.0.0.1 that accepts connections and never answers.

It stands for a hung dependency (an OpenID metadata endpoint, a channel, a proxy):
whatever connects waits until its own timeout, which is what the tests measure.
"""

from __future__ import annotations

import socket
import threading
from typing import List


class Blackhole:
    """Accepts and holds every connection, reading nothing and answering nothing."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port: int = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._held: List[socket.socket] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True, name="blackhole")

    @property
    def accepted(self) -> int:
        """How many connections were made to it so far."""
        with self._lock:
            return len(self._held)

    def _accept(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except OSError:
                continue
            with self._lock:
                self._held.append(connection)

    def __enter__(self) -> "Blackhole":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            for connection in self._held:
                connection.close()
        self._server.close()
