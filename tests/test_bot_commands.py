"""The bot's commands and their answers: welcome, help, cancel, the prompts'
retries, the order commands and `state`, through the SDK's TestAdapter."""

from __future__ import annotations

import pytest

from bots import BotSettings
from bots.texts import CANCELLED, HELP, NOTHING_TO_CANCEL, WELCOME
from state_engine.stores import memory_storage
from data_models import PizzaOrder
from tests.bot_harness import build_test_adapter

ASK_NAME = "What is your name?"
ASK_AGE = "How old are you? (type 'skip' to leave it out)"
CHOICES = " (1) Yes or (2) No"  # how ConfirmPrompt lists its choices on the "test" channel


def line_containing(part: str):
    """An ``assert_reply`` check that one line of the reply contains ``part``."""

    def check(activity, _) -> None:
        assert any(part in line for line in activity.text.split("\n")), activity.text

    return check


async def started(adapter, first: str = "hi"):
    """Send the first message and take the welcome that comes before its answer."""
    return await (await adapter.send(first)).assert_reply(WELCOME)


async def named(adapter, name: str = "Ada"):
    flow = await (await started(adapter)).assert_reply(ASK_NAME)
    return await (await flow.send(name)).assert_reply(
        f"Thanks {name}. To see conversation data, type anything."
    )


async def test_welcome_keeps_the_docs_sentence_and_names_the_commands():
    first, commands = WELCOME.split("\n\n")
    assert first == "Welcome to State Bot Sample. Type anything to get started."
    assert commands == (
        "Commands: profile, add (topping), order, clear order, state, forget me, cancel, help."
    )
    await started(build_test_adapter(memory_storage()), "order")


async def test_help_lists_every_command_on_a_line_of_its_own():
    flow = await started(build_test_adapter(memory_storage()), "help")
    await flow.assert_reply(HELP)
    assert HELP.split("\n") == [
        "Commands (anything else is the docs' conversation: I ask your name, then echo you):",
        "- `profile`: set your name and age, one question at a time",
        "- `add <topping>`: add a topping to this conversation's shared pizza order",
        "- `order`: show the order",
        "- `clear order`: empty the order",
        "- `state`: show what I store about you and this conversation",
        "- `forget me`: delete everything I stored about you",
        "- `cancel` (or `stop`): leave the profile questions, changing nothing",
        "- `help`: show this list (during the profile questions, then ask again)",
    ]


@pytest.mark.parametrize("word", ["cancel", "Stop"])
@pytest.mark.parametrize("answers", [[], ["Ada Lovelace"], ["Ada Lovelace", "36"]])
async def test_cancel_leaves_the_profile_at_any_step_and_changes_nothing(word, answers):
    adapter = build_test_adapter(memory_storage())
    flow = await named(adapter)
    flow = await (await flow.send("profile")).assert_reply(ASK_NAME)
    for answer, next_question in zip(answers, [ASK_AGE, "Save this profile?"]):
        flow = await (await flow.send(answer)).assert_reply(line_containing(next_question))
    flow = await (await flow.send(word)).assert_reply(CANCELLED)
    # The dialog is gone: the next message is the docs' echo, with the old name.
    flow = await (await flow.send("hello")).assert_reply("Ada sent: hello")
    for _ in range(3):
        flow = await flow.assert_reply(lambda activity, _: None)
    await (await flow.send("cancel")).assert_reply(NOTHING_TO_CANCEL)


async def test_cancel_outside_a_dialog_says_there_is_nothing_to_cancel():
    flow = await started(build_test_adapter(memory_storage()), "cancel")
    flow = await flow.assert_reply(
        "There is nothing to cancel: no question is waiting for your answer."
    )
    # Not taken as the answer to the docs' name question either.
    flow = await (await flow.send("hi")).assert_reply(ASK_NAME)
    flow = await (await flow.send("stop")).assert_reply(NOTHING_TO_CANCEL)
    await (await flow.send("Ada")).assert_reply(
        "Thanks Ada. To see conversation data, type anything."
    )


async def test_help_and_state_during_the_profile_answer_then_ask_again():
    adapter = build_test_adapter(memory_storage())
    flow = await named(adapter)
    flow = await (await flow.send("profile")).assert_reply(ASK_NAME)
    flow = await (await flow.send("help")).assert_reply(HELP)
    flow = await (await flow.assert_reply(ASK_NAME)).send("Ada Lovelace")
    flow = await (await flow.assert_reply(ASK_AGE)).send("state")
    flow = await flow.assert_reply(
        line_containing("the profile is waiting for your age (step 2 of 3).")
    )
    flow = await (await flow.assert_reply(ASK_AGE)).send("36")
    flow = await flow.assert_reply(f"Save this profile? Ada Lovelace, age 36{CHOICES}")
    flow = await (await flow.send("state")).assert_reply(
        line_containing("waiting for a yes or no to save the profile (step 3 of 3).")
    )
    flow = await flow.assert_reply(f"Save this profile? Ada Lovelace, age 36{CHOICES}")
    await (await flow.send("yes")).assert_reply("Profile saved: Ada Lovelace, age 36.")


async def test_every_prompt_retry_says_what_is_accepted():
    adapter = build_test_adapter(memory_storage(), BotSettings(max_name_length=4))
    flow = await named(adapter, "Ada")
    flow = await (await flow.send("profile")).assert_reply(ASK_NAME)
    flow = await (await flow.send("Augusta")).assert_reply(
        "Please type a name of 1 to 4 characters."
    )
    flow = await (await flow.send("Ada")).assert_reply(ASK_AGE)
    flow = await (await flow.send("old")).assert_reply(
        "Please enter your age as a whole number from 1 to 150, or 'skip'."
    )
    flow = await (await flow.send("skip")).assert_reply(
        f"Save this profile? Ada, age not given{CHOICES}"
    )
    flow = await (await flow.send("maybe")).assert_reply(f"Please answer yes or no.{CHOICES}")
    await (await flow.send("no")).assert_reply("Nothing was changed.")


async def test_order_commands_answer_clearly():
    flow = await started(build_test_adapter(memory_storage()), "add")
    flow = await flow.assert_reply("Tell me what to add, e.g. `add mushrooms`.")
    flow = await (await flow.send("add   ")).assert_reply(
        "Tell me what to add, e.g. `add mushrooms`."
    )
    flow = await (await flow.send("add mushrooms")).assert_reply(
        "Added mushrooms. Order: mushrooms"
    )
    flow = await (await flow.send("add  Mushrooms")).assert_reply(
        "Mushrooms is already on the order. Order: mushrooms"
    )
    flow = await (await flow.send("add extra   cheese")).assert_reply(
        "Added extra cheese. Order: mushrooms, extra cheese"
    )
    flow = await (await flow.send("ADD Extra Cheese")).assert_reply(
        "Extra Cheese is already on the order. Order: mushrooms, extra cheese"
    )
    flow = await (await flow.send("clear order")).assert_reply("Cleared the order.")
    await (await flow.send("order")).assert_reply("Order: (empty)")


async def test_state_says_when_the_docs_name_question_is_waiting():
    flow = await (await started(build_test_adapter(memory_storage()))).assert_reply(ASK_NAME)
    flow = await (await flow.send("state")).assert_reply(
        line_containing(
            "you sent 2 messages here; I asked your name and will take your next message as it."
        )
    )
    flow = await (await flow.send("Ada")).assert_reply(
        "Thanks Ada. To see conversation data, type anything."
    )
    await (await flow.send("state")).assert_reply(
        line_containing("you sent 4 messages here; no question is waiting for your answer.")
    )


async def test_an_order_holds_a_bounded_number_of_toppings_of_bounded_length():
    """What one conversation stores, and what every reply repeats, stays small."""
    adapter = build_test_adapter(memory_storage())
    long_name = "x" * (PizzaOrder.MAX_TOPPING_LENGTH + 500)
    await adapter.send(f"add {long_name}")
    assert adapter.activity_buffer[-1].text.startswith(f"Added {long_name[: PizzaOrder.MAX_TOPPING_LENGTH]}. ")
    for n in range(1, PizzaOrder.MAX_TOPPINGS):
        await adapter.send(f"add topping {n}")
    await adapter.send("add one too many")
    reply = adapter.activity_buffer[-1].text
    assert reply.startswith(f"The order has {PizzaOrder.MAX_TOPPINGS} toppings already")
    listed = reply.split("Order: ", 1)[1].split(", ")
    assert len(listed) == PizzaOrder.MAX_TOPPINGS and "one too many" not in listed
    await adapter.send("add topping 3")  # already on it: said so, full or not
    assert adapter.activity_buffer[-1].text.startswith("topping 3 is already on the order.")
