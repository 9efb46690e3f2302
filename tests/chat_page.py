"""``make chat`` as a test runs it: ``tools/chat.py`` in its own process on free ports.

``stop()`` sends SIGINT, as Ctrl+C does, and returns the exit code; ``start()`` again
brings up a new bot and bridge on the same ports and store, as running it again does.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Dict, List, Optional

from state_engine.testing.paths import PROJECT_ROOT
from state_engine.testing.processes import LoggedProcess, free_ports, local_env

ADDRESS_LINE = "Chat with the bot: "
START_TIMEOUT_SECONDS = 40.0
STOP_TIMEOUT_SECONDS = 20.0


class ChatCommand:
    """``python tools/chat.py`` with the environment a test gives it; its output
    (and the bot's and the bridge's) goes to one log file."""

    def __init__(
        self,
        env: Dict[str, str],
        log_path: Optional[Path] = None,
        command: Optional[List[str]] = None,
    ) -> None:
        self.bot_port, self.page_port = free_ports(2)
        self.url = f"http://127.0.0.1:{self.page_port}/"
        self.command = command or [sys.executable, str(PROJECT_ROOT / "tools" / "chat.py")]
        # A developer's identity and cloud stores stay out: the chat runs locally on SQLite.
        self.env = local_env({"PORT": str(self.bot_port), "WEBCHAT_PORT": str(self.page_port), **env})
        self.log_path = log_path or Path(f"/tmp/chat-{self.page_port}-{uuid.uuid4().hex[:6]}.log")
        self._process = LoggedProcess(self.command, self.log_path, self.env)

    def run(self, timeout: float = START_TIMEOUT_SECONDS) -> subprocess.CompletedProcess:
        """Run to completion (a start-up check that fails): exit code and output."""
        return subprocess.run(
            self.command,
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self) -> "ChatCommand":
        """Start and wait for the page's address, which it prints once all is up."""
        self._process.start(lambda new_log: ADDRESS_LINE in new_log, START_TIMEOUT_SECONDS, "tools/chat.py")
        return self

    def stop(self) -> Optional[int]:
        """Ctrl+C: SIGINT, then the exit code (None when it was not running)."""
        running = self._process.alive
        code = self._process.stop(signal.SIGINT, STOP_TIMEOUT_SECONDS)
        if running and code is None:
            raise RuntimeError(f"tools/chat.py did not stop on SIGINT:\n{self.logs()}")
        return code

    def logs(self) -> str:
        return self._process.logs()

    def __enter__(self) -> "ChatCommand":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
