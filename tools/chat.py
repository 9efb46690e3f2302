"""``make chat``: the bot and its chat page together, on this machine only.

Checks that PORT and WEBCHAT_PORT are free, starts the bot with the development state
endpoint and ``webchat/server.js`` (Web Chat, a Direct Line bridge, the state panel),
prints the page's address, and on Ctrl+C stops both and exits 0.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from config import DefaultConfig  # noqa: E402  (needs the project root on sys.path)
from state_engine.settings import read_settings, setting  # noqa: E402

HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
# What ends `make chat`: Ctrl+C, Ctrl+\, the terminal closing, or a plain kill.
STOP_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGTERM)
# How webchat/server.js names itself on its /healthz.
BRIDGE_SERVICE = "state-bot-webchat"


@dataclass(frozen=True)
class ChatSettings:
    """The chat page's own setting; the bot's (PORT, STORAGE...) are config.py's."""

    WEBCHAT_PORT: int = setting(
        "WEBCHAT_PORT", int, 3000, "port of the chat page (make chat)", minimum=1, maximum=65535
    )


class Stopped(Exception):
    """Ctrl+C (or another stop signal) arrived: stop everything and exit 0."""


class TerminalForeground:
    """Makes this process the terminal's foreground process group while it runs.

    Ctrl+C signals the terminal's foreground group, which under ``make chat`` is
    make as well as us, and an interrupted make fails whatever we return; so, as a
    shell does for a job, we take the terminal and give it back to make at the end."""

    def __init__(self) -> None:
        self._fd: Optional[int] = None
        self._previous_group = 0

    def __enter__(self) -> "TerminalForeground":
        try:
            fd = sys.stdin.fileno()
            if not os.isatty(fd) or os.tcgetpgrp(fd) != os.getpgrp():
                return self  # no terminal, or we run in the background: nothing to take
        except (OSError, ValueError):
            return self
        self._previous_group = os.getpgrp()
        if os.getpid() != os.getpgrp():
            os.setpgid(0, 0)
        self._hand_terminal_to(fd, os.getpgrp())
        self._fd = fd
        # Ctrl+Z would stop us alone and leave make waiting: this tool does not suspend.
        signal.signal(signal.SIGTSTP, signal.SIG_IGN)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            self._hand_terminal_to(self._fd, self._previous_group)

    @staticmethod
    def _hand_terminal_to(fd: int, group: int) -> None:
        """tcsetpgrp from outside the foreground group raises SIGTTOU: ignore it meanwhile."""
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(fd, group)
        except OSError:
            pass  # the terminal is gone (closed window): nothing to give back
        finally:
            signal.signal(signal.SIGTTOU, previous)


def port_in_use(port: int) -> bool:
    """True when something listens on 127.0.0.1:``port`` (or on all addresses).

    SO_REUSEADDR, as the bot and Node set it, so the leftovers of a server that just
    stopped (connections in TIME_WAIT) do not count as in use."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def get_json(url: str) -> tuple[int, Any]:
    """(status, JSON body or None) of a GET; OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def not_this_bot(bot_url: str) -> Optional[str]:
    """Why what answers at ``bot_url`` is not this bot with its state endpoint, or None.

    Its /healthz says ``{"status": "ok"|"unavailable", "storage": ...}`` and its
    /dev/state, asked without ids, answers 400 naming the missing ones."""
    try:
        status, health = get_json(f"{bot_url}/healthz")
        dev_status, dev_body = get_json(f"{bot_url}/dev/state")
    except OSError as error:
        return f"{bot_url} stopped answering ({error})"
    if not (
        status in (200, 503)
        and isinstance(health, dict)
        and health.get("status") in ("ok", "unavailable")
        and isinstance(health.get("storage"), str)
    ):
        return f"{bot_url}/healthz answered {status} but not as this bot does"
    if dev_status != 400 or not (
        isinstance(dev_body, dict) and "missing" in str(dev_body.get("error"))
    ):
        return f"{bot_url}/dev/state answered {dev_status}: the state endpoint is not on"
    return None


class Chat:
    """The two processes, each in a process group of its own so that a Ctrl+C reaches
    only us, and we stop them in order: the page first, then the bot."""

    def __init__(self, bot_port: int, page_port: int) -> None:
        self.bot_url = f"http://{HOST}:{bot_port}"
        self.page_url = f"http://{HOST}:{page_port}/"
        self._page_port = page_port
        self._processes: List[subprocess.Popen] = []
        self._stop = threading.Event()

    def request_stop(self, signum: int, frame: object) -> None:
        """The stop signals' handler: the main loop notices and stops in order."""
        self._stop.set()

    def _start(self, command: List[str], env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, process_group=0)
        self._processes.append(process)
        return process

    def _wait_for(
        self, process: subprocess.Popen, name: str, answers: Callable[[], bool]
    ) -> None:
        """Wait until ``answers()`` (a check that raises OSError while nothing listens)
        is true; a stop signal, ``process`` exiting or the time running out ends it."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._stop.is_set():
                raise Stopped
            if process.poll() is not None:
                raise SystemExit(
                    f"make chat: {name} stopped at start-up (exit code {process.returncode})"
                )
            try:
                if answers():
                    return
            except OSError:
                pass  # not listening yet
            self._stop.wait(0.2)
        raise SystemExit(f"make chat: {name} did not answer within {START_TIMEOUT_SECONDS:.0f}s")

    def _bridge_answers(self) -> bool:
        """True once webchat/server.js answers its /healthz as itself."""
        status, body = get_json(f"{self.page_url}healthz")
        return status == 200 and isinstance(body, dict) and body.get("service") == BRIDGE_SERVICE

    def run(self, node: str, bot_env: Dict[str, str]) -> int:
        """Start the bot, check it, start the page's server, print the address, then
        wait: Stopped on a stop signal, 1 when either process ends on its own."""
        bot = self._start([sys.executable, "app.py"], bot_env)
        self._wait_for(bot, "the bot", lambda: get_json(f"{self.bot_url}/healthz")[0] > 0)
        reason = not_this_bot(self.bot_url)
        if reason is not None:
            raise SystemExit(f"make chat: {reason}; is another program on PORT?")
        page = self._start(
            [node, "webchat/server.js", "--port", str(self._page_port), "--bot", self.bot_url]
        )
        self._wait_for(page, "the chat page's server (webchat/server.js)", self._bridge_answers)
        print(f"Chat with the bot: {self.page_url}   (Ctrl+C stops both)", flush=True)
        while not self._stop.wait(0.5):
            for process, name in ((bot, "the bot"), (page, "the chat page's server")):
                if process.poll() is not None:
                    print(
                        f"make chat: {name} stopped (exit code {process.returncode})",
                        file=sys.stderr,
                    )
                    return 1
        raise Stopped

    def stop(self) -> None:
        """SIGTERM each process, newest first, and wait; SIGKILL what does not end."""
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def check_ports(bot_port: int, page_port: int) -> Optional[str]:
    """One line naming the setting whose port cannot be used, or None when both are free."""
    if bot_port == page_port:
        return f"WEBCHAT_PORT and PORT are both {bot_port}: set them to different ports."
    ports = (("PORT", bot_port, "the bot"), ("WEBCHAT_PORT", page_port, "the page"))
    for name, port, what in ports:
        if port_in_use(port):
            return (
                f"{name}={port} ({what}) is in use on {HOST}: "
                f"stop what listens there or set {name} to a free port."
            )
    return None


def main() -> int:
    """Check the settings and ports, run both processes, stop them: the exit code
    for make (0 after Ctrl+C; non-zero, with one line saying why, otherwise)."""
    try:
        config = DefaultConfig.from_env()  # loads .env into os.environ as well
        settings = read_settings(ChatSettings, os.environ)
    except ValueError as error:  # SettingError is one
        print(f"make chat: {error}", file=sys.stderr)
        return 2
    if config.APP_ID:
        print(
            "make chat: MicrosoftAppId is set: the bot would refuse the local bridge's "
            "unauthenticated messages and has no state endpoint. Unset it (and .env's).",
            file=sys.stderr,
        )
        return 2
    node = shutil.which("node")
    if node is None:
        print("make chat: Node.js is needed for the page (webchat/server.js).", file=sys.stderr)
        return 2
    problem = check_ports(config.PORT, settings.WEBCHAT_PORT)
    if problem is not None:
        print(f"make chat: {problem}", file=sys.stderr)
        return 1

    chat = Chat(config.PORT, settings.WEBCHAT_PORT)
    # Everything on 127.0.0.1; the state endpoint is what the page's panel reads.
    bot_env = {**os.environ, "HOST": HOST, "DEV_STATE_ENDPOINT": "true"}
    for signum in STOP_SIGNALS:
        signal.signal(signum, chat.request_stop)
    with TerminalForeground():
        try:
            code = chat.run(node, bot_env)
        except Stopped:
            code = 0
        finally:
            chat.stop()
    if code == 0:
        print("Stopped the chat page and the bot.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
