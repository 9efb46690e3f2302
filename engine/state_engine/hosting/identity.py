"""Checks on the bot's identity settings, with messages naming the variable to fix.

The SDK raises a bare ``Exception`` naming its own attributes when an app type lacks
what it needs, and trusts any OpenID metadata URL: whoever serves that URL can sign
tokens the bot accepts, so it must be https (or http on this machine, for tests).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlparse

from ..settings import SettingError

#: What ConfigurationServiceClientCredentialFactory needs for each app type.
NEEDED = {
    "SingleTenant": ("MicrosoftAppId", "MicrosoftAppPassword", "MicrosoftAppTenantId"),
    "UserAssignedMSI": ("MicrosoftAppId", "MicrosoftAppTenantId"),
}


def check_identity(app_type: str, app_id: str, password: str, tenant_id: str) -> None:
    values = {"MicrosoftAppId": app_id, "MicrosoftAppPassword": password, "MicrosoftAppTenantId": tenant_id}
    missing = [name for name in NEEDED.get(app_type, ()) if not values[name]]
    if missing:
        raise SettingError(f"MicrosoftAppType={app_type} needs {', '.join(missing)}")


def check_openid_metadata(url: str, setting_name: str = "BotOpenIdMetadata") -> None:
    if not url:
        return
    parsed = urlparse(url)
    try:
        loopback = ipaddress.ip_address(parsed.hostname or "").is_loopback
    except ValueError:
        loopback = parsed.hostname == "localhost"
    secure = parsed.scheme == "https" and bool(parsed.hostname)
    if not secure and not (parsed.scheme == "http" and loopback):
        raise SettingError(f"{setting_name} must be an https:// URL (http only on 127.0.0.1), got {url!r}")
