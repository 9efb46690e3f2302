"""Start-up as a developer sees it: one line naming a wrong setting or a taken port, and a
banner saying where to point the Emulator, all from real ``python app.py`` processes."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest


from state_engine.hosting.serve import banner, listen_error
from state_engine.testing.live_bot import PROJECT_ROOT, BotProcess, free_port


def run_app(env: Dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``python app.py`` (or ``python -c``) with only ``env`` set, expected to end by itself."""
    return subprocess.run(
        [sys.executable, *(args or [str(PROJECT_ROOT / "app.py")])],
        cwd=PROJECT_ROOT,
        env={"PATH": "/usr/bin:/bin", "SQLITE_PATH": str(tmp_path / "s.sqlite3"),
             "MicrosoftAppId": "", "MicrosoftAppPassword": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def only_line(result: subprocess.CompletedProcess) -> str:
    """The one line a failed start-up prints, with no traceback and nothing on stdout."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"STORAGE": "mongodb"}, "STORAGE"),
        ({"STORAGE": "cosmos", "COSMOS_DB_URI": ""}, "COSMOS_DB_URI"),
        ({"STORAGE": "blob", "BLOB_CONNECTION_STRING": ""}, "BLOB_CONNECTION_STRING"),
        ({"STORAGE": "table", "TABLE_CONNECTION_STRING": "not a connection string"}, "TABLE_CONNECTION_STRING"),
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"TURN_MAX_RETRIES": "-1"}, "TURN_MAX_RETRIES"),
        ({"MAX_TEXT_LENGTH": "-5"}, "MAX_TEXT_LENGTH"),
        ({"TURN_DEADLINE_SECONDS": "600"}, "TURN_DEADLINE_SECONDS"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
        ({"MicrosoftAppType": "SingleTenant", "MicrosoftAppId": "some-app"}, "MicrosoftAppTenantId"),
        ({"BotOpenIdMetadata": "http://example.com/openid"}, "BotOpenIdMetadata"),
        ({"STORAGE": "sqlite", "SQLITE_PATH": "/proc/no-such-folder/state.sqlite3"}, "SQLITE_PATH"),
        ({"STORAGE": "blob", "BLOB_CONNECTION_STRING": "AccountName=x;AccountKey=abc"}, "BLOB_CONNECTION_STRING"),
    ],
)
def test_bad_setting_stops_start_up_with_one_line_naming_it(env, setting, tmp_path):
    line = only_line(run_app(env, tmp_path))
    assert line.startswith("Configuration error: ")
    assert setting in line


def test_a_port_in_use_is_one_line_naming_port_and_a_non_zero_exit(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_app({"STORAGE": "memory", "PORT": str(port)}, tmp_path)
    assert only_line(result) == (
        f"Cannot listen on 127.0.0.1:{port} (PORT): the address is already in use"
    )


def test_an_address_of_another_machine_is_one_line_naming_host(tmp_path):
    """192.0.2.1 is a documentation address: binding it fails here, nothing is sent."""
    line = only_line(run_app({"STORAGE": "memory", "HOST": "192.0.2.1"}, tmp_path))
    assert line == "Cannot listen on 192.0.2.1:3978 (HOST): the address is not one of this machine's"


def test_a_host_name_that_does_not_resolve_names_host():
    error = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert listen_error(error, "bot.invalid", 3978) == (
        "Cannot listen on bot.invalid:3978 (HOST): 'bot.invalid' is not an address or a known host name"
    )


def test_the_banner_says_where_the_emulator_connects_and_which_store_is_used(tmp_path):
    port = free_port()
    env = {"STORAGE": "sqlite", "SQLITE_PATH": str(tmp_path / "s.sqlite3")}
    with BotProcess(env, port=port, log_path=tmp_path / "bot.log") as bot:
        logs = bot.logs()
    assert f"Bot listening on 127.0.0.1:{port}, state in STORAGE=sqlite" in logs
    assert f"Emulator: open http://localhost:{port}/api/messages (no app id)" in logs
    assert "In WSL or a container, set HOST=0.0.0.0 to reach the bot from the host" in logs
    assert "(warning: it then listens on every interface" in logs
    assert "Running on" not in logs, "aiohttp's own line is replaced by the banner"


def test_the_banner_with_every_interface_warns_and_gives_no_hint():
    """The banner on its own (binding 0.0.0.0 is not something tests do)."""
    text = banner("0.0.0.0", 4000, "memory", "some-app")
    assert "Emulator: open http://localhost:4000/api/messages (with MicrosoftAppId" in text
    assert "Warning: HOST=0.0.0.0 listens on every interface" in text
    assert "set HOST=0.0.0.0" not in text

