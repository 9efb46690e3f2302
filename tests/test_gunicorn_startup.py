"""The template's startup command, run for real: gunicorn with aiohttp's worker serves the bot.

Only the bind address changes (``0.0.0.0`` becomes ``127.0.0.1`` on a free
port); the rest is the exact command App Service runs.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from bots.state_bot import WELCOME
from state_engine.testing.live_bot import BotProcess, ChannelServer, EmulatorClient, free_port, http_get
from tests.test_deployment_templates import startup_command


def test_the_startup_command_serves_messages_and_health(tmp_path: Path):
    argv = shlex.split(startup_command())
    assert argv.count("0.0.0.0") == 1
    port = free_port()
    argv[argv.index("0.0.0.0")] = f"127.0.0.1:{port}"
    env = {
        "STORAGE": "sqlite",
        "SQLITE_PATH": str(tmp_path / "state.sqlite3"),
        # Set, though empty, so a developer's .env cannot give the bot an identity.
        "MicrosoftAppId": "",
        "MicrosoftAppPassword": "",
        # `gunicorn` is found the way App Service finds it: on PATH, here the venv's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    with ChannelServer() as channel, BotProcess(
        env, port=port, command=argv, log_path=tmp_path / "gunicorn.log"
    ) as bot:
        status, body = http_get(f"{bot.url}/healthz")
        assert status == 200, body
        client = EmulatorClient(bot.url, channel)
        assert client.join() == [WELCOME]
        assert client.say("hi") == ["What is your name?"]
        logs = bot.logs()
        assert f"Listening at: http://127.0.0.1:{port}" in logs, logs
        assert "Using worker: aiohttp.worker.GunicornWebWorker" in logs, logs
    assert (tmp_path / "state.sqlite3").exists()
