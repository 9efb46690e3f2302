"""Every setting of the bot, declared once and read from the environment and ``.env``.

Each field says its variable, type, range, default and help (``state_engine.settings``);
``.env.example`` is checked against these declarations. Nothing else reads ``os.environ``.
Secrets have no defaults: locally the bot runs without an app id, in Azure the template sets them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional
from urllib.parse import urlparse

from dotenv import load_dotenv

from state_engine.settings import SettingError, read_settings, setting
from state_engine.stores.registry import BACKENDS

PROJECT_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class DefaultConfig:
    """Bot configuration. ``APP_ID``/``APP_PASSWORD``/``APP_TYPE``/``APP_TENANTID``
    are the names ``ConfigurationBotFrameworkAuthentication`` looks for."""

    # --- Where `python app.py` listens (gunicorn on App Service binds itself)
    HOST: str = setting(
        "HOST", str, "127.0.0.1",
        "Address python app.py listens on; 0.0.0.0 is every interface (WSL, containers).",
    )
    PORT: int = setting(
        "PORT", int, 3978, "Port python app.py listens on.", minimum=1, maximum=65535
    )

    # --- Bot identity: the Azure Bot's app registration or managed identity
    APP_ID: str = setting(
        "MicrosoftAppId", str, "",
        "The bot's app id; leave empty to talk to the bot from the Emulator or the chat page.",
    )
    APP_PASSWORD: str = setting(
        "MicrosoftAppPassword", str, "", "The app registration's client secret (SingleTenant).",
        secret=True,
    )
    APP_TYPE: str = setting(
        "MicrosoftAppType", str, "MultiTenant",
        "SingleTenant or UserAssignedMSI in Azure (new bots can no longer be MultiTenant).",
        choices=("MultiTenant", "SingleTenant", "UserAssignedMSI"),
    )
    APP_TENANTID: str = setting(
        "MicrosoftAppTenantId", str, "",
        "The app registration's tenant id (SingleTenant, UserAssignedMSI).",
    )
    BOT_OPENID_METADATA: str = setting(
        "BotOpenIdMetadata", str, "",
        "OpenID metadata URL of channel tokens' signing keys; empty: the Bot Framework's.",
    )

    # --- Bot behaviour
    UTTERANCE_LOG_SIZE: int = setting(
        "UTTERANCE_LOG_SIZE", int, 20,
        "Utterances kept in each conversation's log.", minimum=0, maximum=200,
    )
    MAX_TEXT_LENGTH: int = setting(
        "MAX_TEXT_LENGTH", int, 2000,
        "Longest message text the bot stores or echoes (longer text is cut).",
        minimum=1, maximum=100_000,
    )
    MAX_NAME_LENGTH: int = setting(
        "MAX_NAME_LENGTH", int, 100,
        "Longest name the profile dialog accepts.", minimum=1, maximum=1000,
    )
    STATE_COMMAND_ENABLED: Optional[bool] = setting(
        "STATE_COMMAND_ENABLED", bool, None,
        "Whether the `state` command shows what is stored; "
        "empty: on without an app id, off with one.",
    )
    DEV_STATE_ENDPOINT: bool = setting(
        "DEV_STATE_ENDPOINT", bool, False,
        "The local chat page's state panel endpoint (127.0.0.1 only; never with an app id).",
    )

    # --- Requests and turns
    MAX_REQUEST_BYTES: int = setting(
        "MAX_REQUEST_BYTES", int, 256 * 1024,
        "Largest request body /api/messages accepts, in bytes (413 above it).",
        minimum=1024, maximum=16 * 1024 * 1024,
    )
    TURN_DEADLINE_SECONDS: float = setting(
        "TURN_DEADLINE_SECONDS", float, 10.0,
        "Seconds a turn may take from reading state to sending replies; channels wait about 15.",
        minimum=1, maximum=60,
    )
    TURN_MAX_RETRIES: int = setting(
        "TURN_MAX_RETRIES", int, 5,
        "Optimistic concurrency: how often a turn whose save conflicted is run again.",
        minimum=0, maximum=100,
    )
    TURN_RETRY_BASE_DELAY: float = setting(
        "TURN_RETRY_BASE_DELAY", float, 0.02,
        "Base of the jittered exponential backoff between those retries, in seconds.",
        minimum=0, maximum=10,
    )
    LOG_LEVEL: str = setting(
        "LOG_LEVEL", str, "INFO", "Least severe log records written.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    )

    # --- Storage. These move into the store modules, each declaring its own.
    # The backend registry checks the name: the one place that knows the backends.
    STORAGE: str = setting(
        "STORAGE", str, "sqlite",
        f"Where state is stored: {', '.join(BACKENDS)} (memory is lost on restart).",
    )
    SQLITE_PATH: str = setting(
        "SQLITE_PATH", str, "data/bot-state.sqlite3",
        "SQLite file (relative to the project); several bot processes on one machine may share it.",
    )
    SQLITE_BUSY_TIMEOUT: float = setting(
        "SQLITE_BUSY_TIMEOUT", float, 5.0,
        "Seconds a save waits for another process's lock before the store counts as unavailable.",
        minimum=0, maximum=300,
    )
    COSMOS_DB_URI: str = setting(
        "COSMOS_DB_URI", str, "", "Cosmos DB account URI (STORAGE=cosmos)."
    )
    COSMOS_DB_PRIMARY_KEY: str = setting(
        "COSMOS_DB_PRIMARY_KEY", str, "", "Cosmos DB account key.", secret=True
    )
    COSMOS_DB_DATABASE_ID: str = setting(
        "COSMOS_DB_DATABASE_ID", str, "bot-db", "Cosmos DB database, created if missing."
    )
    COSMOS_DB_CONTAINER_ID: str = setting(
        "COSMOS_DB_CONTAINER_ID", str, "bot-storage",
        "Cosmos DB container (partitioned on /id), created if missing.",
    )
    COSMOS_DB_THROUGHPUT: Optional[int] = setting(
        "COSMOS_DB_THROUGHPUT", int, None,
        "RU/s when the app creates the container; empty for serverless or an existing container.",
        minimum=400, maximum=1_000_000,
    )
    COSMOS_DB_ENDPOINT_DISCOVERY: bool = setting(
        "COSMOS_DB_ENDPOINT_DISCOVERY", bool, True,
        "true for Azure; false for a local emulator that advertises unreachable endpoints.",
    )
    BLOB_CONNECTION_STRING: str = setting(
        "BLOB_CONNECTION_STRING", str, "", "Storage account connection string (STORAGE=blob).",
        secret=True,
    )
    BLOB_CONTAINER_NAME: str = setting(
        "BLOB_CONTAINER_NAME", str, "bot-storage", "Blob container, one JSON blob per key."
    )
    TABLE_CONNECTION_STRING: str = setting(
        "TABLE_CONNECTION_STRING", str, "", "Storage account connection string (STORAGE=table).",
        secret=True,
    )
    TABLE_NAME: str = setting(
        "TABLE_NAME", str, "botstorage", "Table, one entity per key."
    )

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "DefaultConfig":
        """Read the settings; ``.env`` fills in what the environment does not set."""
        if env is None:
            load_dotenv(PROJECT_ROOT / ".env", override=False)
            env = os.environ
        config = read_settings(cls, env)
        _check_identity(config)
        _check_openid_metadata(config.BOT_OPENID_METADATA)
        in_azure = bool(config.APP_ID)
        return dataclasses.replace(
            config,
            # The `state` command shows stored data: on by default locally, off in
            # Azure (an app id is set) unless STATE_COMMAND_ENABLED says otherwise.
            STATE_COMMAND_ENABLED=(
                not in_azure
                if config.STATE_COMMAND_ENABLED is None
                else config.STATE_COMMAND_ENABLED
            ),
            # The development state endpoint never exists when an app id is set.
            DEV_STATE_ENDPOINT=config.DEV_STATE_ENDPOINT and not in_azure,
            STORAGE=config.STORAGE.lower(),
            SQLITE_PATH=str(PROJECT_ROOT / config.SQLITE_PATH),
        )


def _check_identity(config: DefaultConfig) -> None:
    """What ``ConfigurationServiceClientCredentialFactory`` needs for each app type
    (it raises a bare ``Exception`` naming attributes instead)."""
    values = {
        "MicrosoftAppId": config.APP_ID,
        "MicrosoftAppPassword": config.APP_PASSWORD,
        "MicrosoftAppTenantId": config.APP_TENANTID,
    }
    needed = {
        "SingleTenant": ("MicrosoftAppId", "MicrosoftAppPassword", "MicrosoftAppTenantId"),
        "UserAssignedMSI": ("MicrosoftAppId", "MicrosoftAppTenantId"),
    }.get(config.APP_TYPE, ())
    missing = [name for name in needed if not values[name]]
    if missing:
        raise SettingError(f"MicrosoftAppType={config.APP_TYPE} needs {', '.join(missing)}")


def _check_openid_metadata(url: str) -> None:
    """Whoever serves this URL can sign tokens the bot accepts: https, or http on this machine."""
    if not url:
        return
    parsed = urlparse(url)
    try:
        loopback = ipaddress.ip_address(parsed.hostname or "").is_loopback
    except ValueError:
        loopback = parsed.hostname == "localhost"
    secure = parsed.scheme == "https" and bool(parsed.hostname)
    if not secure and not (parsed.scheme == "http" and loopback):
        raise SettingError(
            f"BotOpenIdMetadata must be an https:// URL (http only on 127.0.0.1), got {url!r}"
        )
