"""The docs samples' ``on_turn_error``: log, tell the user, trace for the Emulator, and
clear the failing user's dialog so a broken dialog does not trap them.

Only that user's private conversation state is cleared, and only if nobody changed it
since: in a group, the conversation's shared state (and everyone else's) stays.
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback

from typing import Awaitable, Callable

from botbuilder.core import BotState, TurnContext
from botbuilder.schema import Activity, ActivityTypes

from ..conditions import if_match
from ..errors import StorageError
from ..stores.state_storage import Change, StateStorage

logger = logging.getLogger(__name__)


def make_on_turn_error(
    private_state: BotState, storage: StateStorage
) -> Callable[[TurnContext, Exception], Awaitable[None]]:
    """The adapter's ``on_turn_error``: ``private_state`` is the scope cleared for the failing
    user, read and deleted through ``storage`` (conditional on the version read)."""

    async def on_turn_error(context: TurnContext, error: Exception) -> None:
        # The full trace goes to the log only; the user sees the docs' plain messages.
        logger.error(
            "[on_turn_error] unhandled error: %s\n%s", error, "".join(traceback.format_exception(error))
        )
        await context.send_activity("The bot encountered an error or bug.")
        await context.send_activity("To continue to run this bot, please fix the bot source code.")
        if context.activity.channel_id == "emulator":
            await context.send_activity(
                Activity(
                    label="TurnError",
                    name="on_turn_error Trace",
                    timestamp=dt.datetime.now(dt.timezone.utc),
                    type=ActivityTypes.trace,
                    value=f"{type(error).__name__}: {error}",
                    value_type="https://www.botframework.com/schemas/error",
                )
            )
        key = private_state.get_storage_key(context)
        try:
            found = await storage.read_records([key])
            if key in found:
                await storage.commit([Change(key, delete=True, condition=if_match(found[key].e_tag))])
        except StorageError as delete_error:  # the store may be what failed, or the user moved on
            logger.error("could not clear the user's private state: %s", delete_error)

    return on_turn_error
