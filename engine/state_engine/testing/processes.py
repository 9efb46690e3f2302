"""One way to run a server for a test or a benchmark: start it with its output in a log
file, wait until it is ready, stop it (a signal, then a kill after a grace period).

The bot, the emulators and ``make chat`` under test are all started through it, so a
process that dies at start-up always fails with its own log in the message.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional

from ..stores.registry import backend_settings
from .paths import PROJECT_ROOT

#: The bot's identity settings (MicrosoftAppId, ...) all start with this.
IDENTITY_PREFIX = "Microsoft"


def free_ports(count: int) -> List[int]:
    """``count`` different free 127.0.0.1 ports (each socket stays bound while the system
    picks the next, so no two are the same)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def free_port() -> int:
    return free_ports(1)[0]


def local_env(overrides: Mapping[str, str]) -> Dict[str, str]:
    """This process's environment for a bot a test starts, then ``overrides``: without
    the developer's bot identity or any store's settings, and with the identity set empty
    so that a developer's ``.env`` cannot fill it in."""
    stores = {setting.name for setting in backend_settings()}
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(IDENTITY_PREFIX) and name not in stores
    }
    identity = {"MicrosoftAppId": "", "MicrosoftAppPassword": ""}
    return {**kept, **identity, "PYTHONUNBUFFERED": "1", **overrides}


class StartError(RuntimeError):
    """A process exited, or did not become ready in time; the message holds its log."""


class LoggedProcess:
    """A command run from the project folder, stdout and stderr appended to ``log_path``."""

    def __init__(self, command: List[str], log_path: Path, env: Optional[Dict[str, str]] = None) -> None:
        self.command = command
        self.log_path = log_path
        self.env = env
        self._process: Optional[subprocess.Popen] = None

    def start(self, ready: Callable[[str], bool], timeout: float, what: str) -> None:
        """Start, then wait until ``ready`` (given the log written since) says it is up."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self.command, cwd=PROJECT_ROOT, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready(self.logs()[offset:]):
                return
            if self._process.poll() is not None:
                raise StartError(f"{what} exited at start-up (code {self._process.returncode}):\n{self.logs()[-3000:]}")
            time.sleep(0.05)
        self.stop()
        raise StartError(f"{what} was not ready within {timeout:.0f} s:\n{self.logs()[-3000:]}")

    def stop(self, how: int = signal.SIGTERM, grace: float = 10.0) -> Optional[int]:
        """Send ``how``, wait ``grace`` seconds, then kill; the exit code (None if not running)."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(how)
        try:
            return process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
            return None

    def signal(self, how: int) -> None:
        """Send a signal without waiting (e.g. SIGSTOP to freeze a server)."""
        if self._process is not None:
            self._process.send_signal(how)

    @property
    def pid(self) -> int:
        assert self._process is not None, "the process is not running"
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
