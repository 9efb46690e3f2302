"""config.py: every setting declared once and documented, secrets never defaulted, safe in Azure."""

from __future__ import annotations

import re

import pytest

from config import PROJECT_ROOT, DefaultConfig
from state_engine.settings import SettingError, declared
from state_engine.stores.registry import backend_settings

DECLARED = {item.name: item for _, item in declared(DefaultConfig)}
DECLARED.update({item.name: item for item in backend_settings()})
SECRETS = ("MicrosoftAppPassword", "COSMOS_DB_PRIMARY_KEY", "BLOB_CONNECTION_STRING", "TABLE_CONNECTION_STRING")
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.MULTILINE)


def _env_example_text() -> str:
    return (PROJECT_ROOT / ".env.example").read_text()


def test_every_field_of_the_config_is_a_declared_setting():
    # All but STORAGE_SETTINGS: the chosen backend's own settings object, declared in its module.
    assert len(list(declared(DefaultConfig))) == len(DefaultConfig.__dataclass_fields__) - 1
    assert {"MicrosoftAppId", "MicrosoftAppPassword", "MicrosoftAppType", "MicrosoftAppTenantId"} <= set(
        DECLARED
    )


def test_env_example_names_every_declared_setting_and_nothing_else():
    names = ASSIGNMENT.findall(_env_example_text())
    assert [name for name, _ in names if [n for n, _ in names].count(name) > 1] == []
    assert {name for name, _ in names} == set(DECLARED)


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_env_example_shows_each_setting_with_its_help_and_default(name: str):
    """The help line right above the assignment, and the default (empty for secrets)."""
    assert DECLARED[name].documented() in _env_example_text()


def test_secrets_are_declared_secret_with_no_default_and_empty_in_the_example():
    example = dict(ASSIGNMENT.findall(_env_example_text()))
    for name in SECRETS:
        assert DECLARED[name].secret, name
        assert DECLARED[name].default == "" and example[name] == "", name


def test_every_numeric_setting_has_a_range():
    for item in DECLARED.values():
        if item.kind in (int, float):
            assert item.minimum is not None and item.maximum is not None, item.name


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
    assert config.TURN_DEADLINE_SECONDS == 10
    assert config.STORAGE_SETTINGS.path == str(PROJECT_ROOT / "data" / "bot-state.sqlite3")


def test_with_an_app_id_inspection_is_off_unless_enabled_and_dev_endpoint_never_exists():
    in_azure = DefaultConfig.from_env({"MicrosoftAppId": "app", "DEV_STATE_ENDPOINT": "true"})
    assert in_azure.STATE_COMMAND_ENABLED is False
    assert in_azure.DEV_STATE_ENDPOINT is False
    enabled = DefaultConfig.from_env({"MicrosoftAppId": "app", "STATE_COMMAND_ENABLED": "true"})
    assert enabled.STATE_COMMAND_ENABLED is True
    local = DefaultConfig.from_env({"DEV_STATE_ENDPOINT": "yes", "STATE_COMMAND_ENABLED": "off"})
    assert local.DEV_STATE_ENDPOINT is True and local.STATE_COMMAND_ENABLED is False


def test_values_are_read_with_their_types_and_choices_in_any_case():
    config = DefaultConfig.from_env(
        {"PORT": " 8080 ", "TURN_DEADLINE_SECONDS": "2.5", "LOG_LEVEL": "debug",
         "STORAGE": "SQLite", "MicrosoftAppType": "multitenant", "SQLITE_BUSY_TIMEOUT": "2",
         "SQLITE_PATH": "/tmp/elsewhere.sqlite3"}
    )
    assert config.PORT == 8080 and config.TURN_DEADLINE_SECONDS == 2.5
    assert config.LOG_LEVEL == "DEBUG" and config.STORAGE == "sqlite"
    assert config.APP_TYPE == "MultiTenant" and config.STORAGE_SETTINGS.busy_timeout == 2
    assert config.STORAGE_SETTINGS.path == "/tmp/elsewhere.sqlite3"


@pytest.mark.parametrize(
    "env, named",
    [
        ({"UTTERANCE_LOG_SIZE": "lots"}, "UTTERANCE_LOG_SIZE"),
        ({"MAX_TEXT_LENGTH": "-5"}, "MAX_TEXT_LENGTH"),
        ({"MAX_TEXT_LENGTH": "0"}, "MAX_TEXT_LENGTH"),
        ({"MAX_NAME_LENGTH": "0"}, "MAX_NAME_LENGTH"),
        ({"UTTERANCE_LOG_SIZE": "1000000"}, "UTTERANCE_LOG_SIZE"),
        ({"PORT": "0"}, "PORT"),
        ({"PORT": "65536"}, "PORT"),
        ({"PORT": "80.5"}, "PORT"),
        ({"MAX_REQUEST_BYTES": "10"}, "MAX_REQUEST_BYTES"),
        ({"TURN_MAX_RETRIES": "101"}, "TURN_MAX_RETRIES"),
        ({"TURN_RETRY_BASE_DELAY": "nan"}, "TURN_RETRY_BASE_DELAY"),
        ({"TURN_RETRY_BASE_DELAY": "-0.1"}, "TURN_RETRY_BASE_DELAY"),
        ({"TURN_DEADLINE_SECONDS": "0.5"}, "TURN_DEADLINE_SECONDS"),
        ({"TURN_DEADLINE_SECONDS": "inf"}, "TURN_DEADLINE_SECONDS"),
        ({"SQLITE_BUSY_TIMEOUT": "-1"}, "SQLITE_BUSY_TIMEOUT"),
        ({"STORAGE": "cosmos", "COSMOS_DB_THROUGHPUT": "10"}, "COSMOS_DB_THROUGHPUT"),
        ({"STORAGE": "mongodb"}, "STORAGE"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"DEV_STATE_ENDPOINT": "maybe"}, "DEV_STATE_ENDPOINT"),
        ({"MicrosoftAppType": "AnyTenant"}, "MicrosoftAppType"),
        ({"MicrosoftAppType": "SingleTenant", "MicrosoftAppId": "app"}, "MicrosoftAppTenantId"),
        ({"MicrosoftAppType": "UserAssignedMSI", "MicrosoftAppTenantId": "t"}, "MicrosoftAppId"),
        ({"BotOpenIdMetadata": "http://example.com/.well-known/openid"}, "BotOpenIdMetadata"),
        ({"BotOpenIdMetadata": "ftp://127.0.0.1/x"}, "BotOpenIdMetadata"),
    ],
)
def test_a_wrong_value_is_refused_naming_the_setting(env, named):
    with pytest.raises(SettingError, match=named):
        DefaultConfig.from_env(env)


def test_the_openid_metadata_may_be_https_anywhere_or_http_on_this_machine():
    for url in ("https://login.example.com/v1/.well-known/openidconfiguration",
                "http://127.0.0.1:8123/openid", "http://localhost/openid", "http://[::1]:9/x"):
        assert DefaultConfig.from_env({"BotOpenIdMetadata": url}).BOT_OPENID_METADATA == url
