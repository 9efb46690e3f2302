"""The docs samples' ``on_turn_error``: log, tell the user, trace for the Emulator, and
clear the failing user's dialog so a broken dialog does not trap them.

Only that user's private conversation state is cleared, and only as the failed attempt
read it: a turn saved since (and everyone else's state in a group) stays. A turn whose
state was saved and whose replies failed keeps its state, and nothing more is sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import traceback
from typing import Awaitable, Callable

from botbuilder.core import BotState, TurnContext
from botbuilder.schema import Activity, ActivityTypes

from ..conditions import if_match
from ..errors import StorageError
from ..stores.state_storage import Change, StateStorage
from .runner import FAILED_TURN, LAST_WORD_SECONDS, FailedTurn

logger = logging.getLogger(__name__)


def make_on_turn_error(
    private_state: BotState, storage: StateStorage
) -> Callable[[TurnContext, Exception], Awaitable[None]]:
    """The adapter's ``on_turn_error``: ``private_state`` is the scope cleared for the failing
    user, deleted through ``storage`` on the version the failed attempt read."""

    async def on_turn_error(context: TurnContext, error: Exception) -> None:
        failed = context.turn_state.get(FAILED_TURN)
        if not isinstance(failed, FailedTurn):  # failed before the runner read anything
            failed = FailedTurn(saved=False, read={})
        if failed.saved:
            # The channel is what failed: nothing more goes to it, the state stands, and the
            # error goes back to the route (a 502 for a channel's error).
            raise error
        # The full trace goes to the log only; the user sees the docs' plain messages.
        logger.error(
            "[on_turn_error] unhandled error: %s\n%s", error, "".join(traceback.format_exception(error))
        )
        not_told = None
        try:
            async with asyncio.timeout(LAST_WORD_SECONDS):
                await _tell(context, error)
        except TimeoutError:
            logger.error("could not tell the user about the error within %.0f s", LAST_WORD_SECONDS)
        except Exception as send_error:  # the channel refused: the state is cleared first
            not_told = send_error
        key = private_state.get_storage_key(context)
        e_tag = failed.read.get(key)
        if e_tag is not None:  # None: the failed attempt found none (or read nothing)
            try:
                await storage.commit([Change(key, delete=True, condition=if_match(e_tag))])
            except StorageError as delete_error:  # the store failed, or the user moved on
                logger.info("the user's private state was not cleared: %s", delete_error)
        if not_told is not None:
            raise not_told

    return on_turn_error


async def _tell(context: TurnContext, error: Exception) -> None:
    """The docs samples' two messages, and a trace activity the Emulator shows."""
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
