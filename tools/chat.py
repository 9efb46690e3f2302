"""``make chat``: the bot and its chat page together, on this machine only.

Starts the bot (``app.py``, on the default SQLite store unless STORAGE says
otherwise) with the development state endpoint on, then ``webchat/server.js``
(Web Chat, a Direct Line bridge and the state panel) in front of it, prints the
page's URL, and stops both on Ctrl+C.

    make chat                         # page on 3000, bot on 3978
    WEBCHAT_PORT=8080 PORT=3979 make chat
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from config import DefaultConfig  # noqa: E402  (needs the project root on sys.path)


def wait_until_up(process: subprocess.Popen, url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the bot stopped at start-up (exit code {process.returncode})")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # a 503: the bot is up but its store is not; its log says why
        except OSError:  # not listening yet
            time.sleep(0.2)
    raise SystemExit(f"the bot did not answer {url} within {timeout:.0f}s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> int:
    config = DefaultConfig.from_env()
    if config.APP_ID:
        print(
            "MicrosoftAppId is set: the bot would refuse the local bridge's unauthenticated "
            "messages and has no state endpoint. Unset it (and .env's) to chat locally.",
            file=sys.stderr,
        )
        return 2
    node = shutil.which("node")
    if node is None:
        print("Node.js is needed for the chat page (webchat/server.js).", file=sys.stderr)
        return 2

    bot_url = f"http://127.0.0.1:{config.PORT}"
    # Everything on 127.0.0.1; the state endpoint is what the page's panel reads.
    bot_env = {**os.environ, "HOST": "127.0.0.1", "DEV_STATE_ENDPOINT": "true"}
    processes = [subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=bot_env)]
    try:
        wait_until_up(processes[0], f"{bot_url}/healthz")
        processes.append(
            subprocess.Popen([node, "webchat/server.js", "--bot", bot_url], cwd=PROJECT_ROOT)
        )
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        return 1  # one of them stopped on its own; its output says why
    except KeyboardInterrupt:
        return 0
    finally:
        for process in reversed(processes):
            stop(process)


if __name__ == "__main__":
    sys.exit(main())
