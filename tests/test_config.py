"""config.py: every setting documented, secrets never defaulted, safe defaults in Azure."""

from __future__ import annotations

import re

import pytest

from config import PROJECT_ROOT, DefaultConfig
from tests.settings_read import settings_read_by_config

SECRETS = ("MicrosoftAppPassword", "COSMOS_DB_PRIMARY_KEY", "BLOB_CONNECTION_STRING", "TABLE_CONNECTION_STRING")


def _env_example() -> dict[str, str]:
    text = (PROJECT_ROOT / ".env.example").read_text()
    return dict(re.findall(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", text, re.MULTILINE))


def test_env_example_documents_every_setting_and_nothing_else():
    assert set(_env_example()) == settings_read_by_config()


def test_env_example_holds_no_secret_values():
    example = _env_example()
    for name in SECRETS:
        if name in example:
            assert example[name] == "", f"{name} must be empty in .env.example"


def test_no_env_file_is_committed_with_the_sample():
    ignored = (PROJECT_ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored


def test_secrets_are_not_in_the_config_repr():
    config = DefaultConfig.from_env(
        {"MicrosoftAppId": "app", "MicrosoftAppPassword": "pw-secret-123",
         "BLOB_CONNECTION_STRING": "AccountKey=blob-secret-456"}
    )
    assert "pw-secret-123" not in repr(config)
    assert "blob-secret-456" not in repr(config)


def test_defaults_run_locally_on_sqlite_with_inspection_on():
    config = DefaultConfig.from_env({})
    assert config.STORAGE == "sqlite"
    assert config.PORT == 3978
    assert config.STATE_COMMAND_ENABLED is True
    assert config.DEV_STATE_ENDPOINT is False


def test_with_an_app_id_inspection_is_off_unless_enabled_and_dev_endpoint_never_exists():
    in_azure = DefaultConfig.from_env({"MicrosoftAppId": "app", "DEV_STATE_ENDPOINT": "true"})
    assert in_azure.STATE_COMMAND_ENABLED is False
    assert in_azure.DEV_STATE_ENDPOINT is False
    enabled = DefaultConfig.from_env({"MicrosoftAppId": "app", "STATE_COMMAND_ENABLED": "true"})
    assert enabled.STATE_COMMAND_ENABLED is True


def test_a_bad_number_names_the_setting():
    with pytest.raises(ValueError, match="UTTERANCE_LOG_SIZE"):
        DefaultConfig.from_env({"UTTERANCE_LOG_SIZE": "lots"})
