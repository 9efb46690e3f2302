"""Every setting of the bot, declared once and read from the environment and ``.env``.

Each field says its variable, type, range, default and help (``state_engine.settings``);
``.env.example`` is checked against these declarations. Nothing else reads ``os.environ``.
Secrets have no defaults: locally the bot runs without an app id, in Azure the template sets them.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from dotenv import load_dotenv

from state_engine.hosting.identity import check_identity, check_openid_metadata
from state_engine.hosting.messages import MAX_TURNS
from state_engine.settings import field_for, read_settings, setting
from state_engine.stores import STORAGE, read_backend_settings
from state_engine.stores.sqlite import SqliteSettings
from state_engine.turns import DEADLINE_SECONDS, RetryPolicy

from bots import BotSettings

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
        "UTTERANCE_LOG_SIZE", int, BotSettings.utterance_log_size,
        "Utterances kept in each conversation's log.", minimum=0, maximum=200,
    )
    MAX_TEXT_LENGTH: int = setting(
        "MAX_TEXT_LENGTH", int, BotSettings.max_text_length,
        "Longest message text the bot stores or echoes (longer text is cut).",
        minimum=1, maximum=100_000,
    )
    MAX_NAME_LENGTH: int = setting(
        "MAX_NAME_LENGTH", int, BotSettings.max_name_length,
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
    MAX_CONCURRENT_TURNS: int = setting(
        "MAX_CONCURRENT_TURNS", int, MAX_TURNS,
        "Turns one bot process runs at once (an eighth for one conversation); then 503 + Retry-After.",
        minimum=1, maximum=100_000,
    )
    TURN_DEADLINE_SECONDS: float = setting(
        "TURN_DEADLINE_SECONDS", float, DEADLINE_SECONDS,
        "Seconds a turn may take from reading state to sending replies; channels wait about 15.",
        minimum=1, maximum=60,
    )
    TURN_MAX_RETRIES: int = setting(
        "TURN_MAX_RETRIES", int, RetryPolicy.max_retries,
        "Optimistic concurrency: how often a turn whose save conflicted is run again.",
        minimum=0, maximum=100,
    )
    TURN_RETRY_BASE_DELAY: float = setting(
        "TURN_RETRY_BASE_DELAY", float, RetryPolicy.base_delay_seconds,
        "Base of the jittered exponential backoff between those retries, in seconds.",
        minimum=0, maximum=10,
    )
    LOG_LEVEL: str = setting(
        "LOG_LEVEL", str, "INFO", "Least severe log records written.",
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
    )

    # --- Storage: which backend (the registry names them); each backend declares
    # its own settings (state_engine/stores/<backend>.py), read into STORAGE_SETTINGS.
    STORAGE: str = field_for(STORAGE)
    STORAGE_SETTINGS: Any = dataclasses.field(default=None, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "DefaultConfig":
        """Read the settings; ``.env`` fills in what the environment does not set."""
        if env is None:
            load_dotenv(PROJECT_ROOT / ".env", override=False)
            env = os.environ
        config = read_settings(cls, env)
        check_identity(config.APP_TYPE, config.APP_ID, config.APP_PASSWORD, config.APP_TENANTID)
        check_openid_metadata(config.BOT_OPENID_METADATA)
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
            STORAGE_SETTINGS=_storage_settings(config.STORAGE, env),
        )


def _storage_settings(backend: str, env: Mapping[str, str]) -> Any:
    """The chosen backend's settings; a relative SQLite path is relative to this folder."""
    settings = read_backend_settings(backend, env)
    if isinstance(settings, SqliteSettings) and not Path(settings.path).is_absolute():
        settings = dataclasses.replace(settings, path=str(PROJECT_ROOT / settings.path))
    return settings
