"""A wrong configuration stops the bot at start-up with one line naming the setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from state_engine.testing.live_bot import PROJECT_ROOT


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"STORAGE": "mongodb"}, "STORAGE"),
        ({"STORAGE": "cosmos", "COSMOS_DB_URI": ""}, "COSMOS_DB_URI"),
        ({"STORAGE": "blob", "BLOB_CONNECTION_STRING": ""}, "BLOB_CONNECTION_STRING"),
        ({"STORAGE": "table", "TABLE_CONNECTION_STRING": "not a connection string"}, "TABLE_CONNECTION_STRING"),
        ({"PORT": "eighty"}, "PORT"),
        ({"TURN_MAX_RETRIES": "-1"}, "TURN_MAX_RETRIES"),
    ],
)
def test_bad_setting_stops_start_up_with_its_name_and_no_traceback(env, setting, tmp_path):
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "app.py")],
        cwd=PROJECT_ROOT,
        env={"PATH": "/usr/bin:/bin", "SQLITE_PATH": str(tmp_path / "s.sqlite3"), "MicrosoftAppId": "", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert setting in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
