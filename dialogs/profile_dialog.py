"""The profile conversation as a waterfall dialog (botbuilder-dialogs): one question a step.

Its state lives in private conversation state: stored, so a profile half-way through
survives a restart, and this user's alone, so in a group nobody else's message answers it.
"""

from __future__ import annotations

from typing import Optional

from botbuilder.core import MessageFactory, StatePropertyAccessor
from botbuilder.dialogs import (
    ComponentDialog,
    DialogContext,
    DialogState,
    DialogTurnResult,
    WaterfallDialog,
    WaterfallStepContext,
)
from botbuilder.dialogs.prompts import (
    ConfirmPrompt,
    NumberPrompt,
    PromptOptions,
    PromptValidatorContext,
    TextPrompt,
)

from data_models import UserProfile

MAX_AGE = 150
# What each prompt is waiting for, as the `state` command says it.
WAITING_FOR = {
    TextPrompt.__name__: "your name (step 1 of 3)",
    NumberPrompt.__name__: "your age (step 2 of 3)",
    ConfirmPrompt.__name__: "a yes or no to save the profile (step 3 of 3)",
}


def _describe(name: str, age: Optional[int]) -> str:
    return f"{name}, {'age not given' if age is None else f'age {age}'}"


class ProfileDialog(ComponentDialog):
    def __init__(self, profile_accessor: StatePropertyAccessor, max_name_length: int) -> None:
        super().__init__(ProfileDialog.__name__)
        self._profile_accessor = profile_accessor
        self._max_name_length = max_name_length

        self.add_dialog(
            WaterfallDialog(
                WaterfallDialog.__name__,
                [self._name_step, self._age_step, self._confirm_step, self._save_step],
            )
        )
        self.add_dialog(TextPrompt(TextPrompt.__name__, self._name_validator))
        self.add_dialog(NumberPrompt(NumberPrompt.__name__, self._age_validator))
        self.add_dialog(ConfirmPrompt(ConfirmPrompt.__name__))
        self.initial_dialog_id = WaterfallDialog.__name__

    @classmethod
    def waiting_for(cls, dialog_context: DialogContext) -> Optional[str]:
        """What the active profile dialog waits for the user to answer: the prompt
        on top of its own dialog stack, kept inside its instance's state."""
        instance = dialog_context.active_dialog
        if instance is None:
            return None
        inner: DialogState = instance.state[cls.persisted_dialog_state]
        return WAITING_FOR.get(inner.dialog_stack[0].id) if inner.dialog_stack else None

    async def _name_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        return await step.prompt(
            TextPrompt.__name__,
            PromptOptions(
                prompt=MessageFactory.text("What is your name?"),
                retry_prompt=MessageFactory.text(
                    f"Please type a name of 1 to {self._max_name_length} characters."
                ),
            ),
        )

    async def _age_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        step.values["name"] = step.result.strip()
        return await step.prompt(
            NumberPrompt.__name__,
            PromptOptions(
                prompt=MessageFactory.text("How old are you? (type 'skip' to leave it out)"),
                retry_prompt=MessageFactory.text(
                    f"Please enter your age as a whole number from 1 to {MAX_AGE}, or 'skip'."
                ),
            ),
        )

    async def _confirm_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        step.values["age"] = None if step.result is None else int(step.result)
        return await step.prompt(
            ConfirmPrompt.__name__,
            PromptOptions(
                prompt=MessageFactory.text(
                    f"Save this profile? {_describe(step.values['name'], step.values['age'])}"
                ),
                retry_prompt=MessageFactory.text("Please answer yes or no."),
            ),
        )

    async def _save_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        if step.result:
            profile: UserProfile = await self._profile_accessor.get(step.context, UserProfile)
            profile.name = step.values["name"]
            profile.age = step.values["age"]
            await step.context.send_activity(
                f"Profile saved: {_describe(profile.name, profile.age)}."
            )
        else:
            await step.context.send_activity("Nothing was changed.")
        return await step.end_dialog()

    async def _name_validator(self, prompt: PromptValidatorContext) -> bool:
        name = (prompt.recognized.value or "").strip()
        return prompt.recognized.succeeded and 0 < len(name) <= self._max_name_length

    @staticmethod
    async def _age_validator(prompt: PromptValidatorContext) -> bool:
        text = (prompt.context.activity.text or "").strip().lower()
        if text == "skip":
            return True
        value = prompt.recognized.value
        return (
            prompt.recognized.succeeded
            and float(value).is_integer()
            and 0 < value <= MAX_AGE
        )
