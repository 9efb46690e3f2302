"""Azure SDK clients log every request and response, headers included, at INFO.

That floods the log on every turn; so unless the app set a level for the ``azure``
logger itself, the engine's Azure backends lower it to WARNING (errors still show).
"""

from __future__ import annotations

import logging


def quiet_azure_logging() -> None:
    azure = logging.getLogger("azure")
    if azure.level == logging.NOTSET:
        azure.setLevel(logging.WARNING)
