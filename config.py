"""Every setting of the bot, read once from the environment and ``.env``.

Nothing else in the project reads ``os.environ``. Secrets have no defaults:
locally the bot runs without an app id (the Emulator needs none); in Azure the
deployment template sets them as app settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, TypeVar

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent
T = TypeVar("T")


def _flag(value: Optional[str], default: bool) -> bool:
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _number(env: Mapping[str, str], name: str, default: T, parse: Callable[[str], T]) -> T:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as error:
        kind = "a whole number" if parse is int else "a number"
        raise ValueError(f"{name} must be {kind}, got {raw!r}") from error


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return _number(env, name, default, int)


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _number(env, name, default, float)


@dataclass(frozen=True)
class DefaultConfig:
    """Bot configuration. ``APP_ID``/``APP_PASSWORD``/``APP_TYPE``/``APP_TENANTID``
    are the names ``ConfigurationBotFrameworkAuthentication`` looks for."""

    HOST: str = "127.0.0.1"
    PORT: int = 3978
    APP_ID: str = ""
    APP_PASSWORD: str = field(default="", repr=False)
    APP_TYPE: str = "MultiTenant"
    APP_TENANTID: str = ""

    STORAGE: str = "sqlite"
    SQLITE_PATH: str = str(PROJECT_ROOT / "data" / "bot-state.sqlite3")
    # How long a write waits for another process's lock before the store counts as unavailable.
    SQLITE_BUSY_TIMEOUT: float = 5.0

    COSMOS_DB_URI: str = ""
    COSMOS_DB_PRIMARY_KEY: str = field(default="", repr=False)
    COSMOS_DB_DATABASE_ID: str = "bot-db"
    COSMOS_DB_CONTAINER_ID: str = "bot-storage"
    COSMOS_DB_THROUGHPUT: Optional[int] = None
    COSMOS_DB_ENDPOINT_DISCOVERY: bool = True

    BLOB_CONNECTION_STRING: str = field(default="", repr=False)
    BLOB_CONTAINER_NAME: str = "bot-storage"

    TABLE_CONNECTION_STRING: str = field(default="", repr=False)
    TABLE_NAME: str = "botstorage"

    UTTERANCE_LOG_SIZE: int = 20
    MAX_TEXT_LENGTH: int = 2000
    MAX_REQUEST_BYTES: int = 256 * 1024
    TURN_MAX_RETRIES: int = 5
    TURN_RETRY_BASE_DELAY: float = 0.02

    STATE_COMMAND_ENABLED: bool = True
    DEV_STATE_ENDPOINT: bool = False
    LOG_LEVEL: str = "INFO"

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "DefaultConfig":
        """Read the settings; ``.env`` fills in what the environment does not set."""
        if env is None:
            load_dotenv(PROJECT_ROOT / ".env", override=False)
            env = os.environ
        app_id = env.get("MicrosoftAppId", "").strip()
        throughput = env.get("COSMOS_DB_THROUGHPUT", "").strip()
        return cls(
            HOST=env.get("HOST", cls.HOST).strip() or cls.HOST,
            PORT=_int(env, "PORT", cls.PORT),
            APP_ID=app_id,
            APP_PASSWORD=env.get("MicrosoftAppPassword", ""),
            APP_TYPE=env.get("MicrosoftAppType", "").strip() or cls.APP_TYPE,
            APP_TENANTID=env.get("MicrosoftAppTenantId", "").strip(),
            STORAGE=(env.get("STORAGE", "").strip().lower() or cls.STORAGE),
            SQLITE_PATH=env.get("SQLITE_PATH", "").strip() or cls.SQLITE_PATH,
            SQLITE_BUSY_TIMEOUT=_float(env, "SQLITE_BUSY_TIMEOUT", cls.SQLITE_BUSY_TIMEOUT),
            COSMOS_DB_URI=env.get("COSMOS_DB_URI", "").strip(),
            COSMOS_DB_PRIMARY_KEY=env.get("COSMOS_DB_PRIMARY_KEY", "").strip(),
            COSMOS_DB_DATABASE_ID=env.get("COSMOS_DB_DATABASE_ID", "").strip()
            or cls.COSMOS_DB_DATABASE_ID,
            COSMOS_DB_CONTAINER_ID=env.get("COSMOS_DB_CONTAINER_ID", "").strip()
            or cls.COSMOS_DB_CONTAINER_ID,
            COSMOS_DB_THROUGHPUT=_int(env, "COSMOS_DB_THROUGHPUT", 0) if throughput else None,
            COSMOS_DB_ENDPOINT_DISCOVERY=_flag(env.get("COSMOS_DB_ENDPOINT_DISCOVERY"), True),
            BLOB_CONNECTION_STRING=env.get("BLOB_CONNECTION_STRING", "").strip(),
            BLOB_CONTAINER_NAME=env.get("BLOB_CONTAINER_NAME", "").strip()
            or cls.BLOB_CONTAINER_NAME,
            TABLE_CONNECTION_STRING=env.get("TABLE_CONNECTION_STRING", "").strip(),
            TABLE_NAME=env.get("TABLE_NAME", "").strip() or cls.TABLE_NAME,
            UTTERANCE_LOG_SIZE=_int(env, "UTTERANCE_LOG_SIZE", cls.UTTERANCE_LOG_SIZE),
            MAX_TEXT_LENGTH=_int(env, "MAX_TEXT_LENGTH", cls.MAX_TEXT_LENGTH),
            MAX_REQUEST_BYTES=_int(env, "MAX_REQUEST_BYTES", cls.MAX_REQUEST_BYTES),
            TURN_MAX_RETRIES=_int(env, "TURN_MAX_RETRIES", cls.TURN_MAX_RETRIES),
            TURN_RETRY_BASE_DELAY=_float(env, "TURN_RETRY_BASE_DELAY", cls.TURN_RETRY_BASE_DELAY),
            # The `state` command shows stored data: on by default locally, off in
            # Azure (an app id is set) unless STATE_COMMAND_ENABLED says otherwise.
            STATE_COMMAND_ENABLED=_flag(env.get("STATE_COMMAND_ENABLED"), not app_id),
            # The development state endpoint never exists when an app id is set.
            DEV_STATE_ENDPOINT=_flag(env.get("DEV_STATE_ENDPOINT"), False) and not app_id,
            LOG_LEVEL=env.get("LOG_LEVEL", "").strip().upper() or cls.LOG_LEVEL,
        )
