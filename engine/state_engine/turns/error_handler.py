"""The docs samples' ``on_turn_error``: log, tell the user, trace for the Emulator,
and clear conversation state so a broken dialog does not trap the user."""

from __future__ import annotations

import datetime as dt
import logging
import traceback

from botbuilder.core import ConversationState, TurnContext
from botbuilder.schema import ActivityTypes, Activity

logger = logging.getLogger(__name__)


def make_on_turn_error(conversation_state: ConversationState):
    async def on_turn_error(context: TurnContext, error: Exception) -> None:
        # The full trace goes to the log only; the user sees a plain message.
        logger.error(
            "[on_turn_error] unhandled error: %s\n%s",
            error,
            "".join(traceback.format_exception(error)),
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
        try:
            # load first: the SDK's delete expects this turn's cached copy to exist.
            await conversation_state.load(context)
            await conversation_state.delete(context)
        except Exception as delete_error:  # the store may be what failed
            logger.error("could not clear conversation state: %s", delete_error)

    return on_turn_error
