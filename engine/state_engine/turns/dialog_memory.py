"""The dialogs' memory scopes built once, not once per ``DialogContext``.

botbuilder-dialogs builds nine memory scopes and five path resolvers for every
``DialogContext`` unless the turn state already holds a configuration (the C# SDK's
``DialogManager`` keeps one for all its turns, as ``StateConfiguration``). They hold no
turn's data: each reads what it needs from the turn context it is given."""

from __future__ import annotations

from botbuilder.core import ComponentRegistration
from botbuilder.dialogs import DialogsComponentRegistration
from botbuilder.dialogs.memory import (
    ComponentMemoryScopesBase,
    ComponentPathResolversBase,
    DialogStateManagerConfiguration,
)

#: Where ``DialogStateManager`` looks for the configuration in a turn's ``turn_state``.
TURN_STATE_KEY = DialogStateManagerConfiguration.__name__


def dialog_memory() -> DialogStateManagerConfiguration:
    """What ``DialogStateManager`` builds when the turn has none, from the components
    registered now: the dialogs' own and any a bot added at start-up."""
    ComponentRegistration.add(DialogsComponentRegistration())
    configuration = DialogStateManagerConfiguration()
    for component in ComponentRegistration.get_components():
        if isinstance(component, ComponentMemoryScopesBase):
            configuration.memory_scopes.extend(component.get_memory_scopes())
        if isinstance(component, ComponentPathResolversBase):
            configuration.path_resolvers.extend(component.get_path_resolvers())
    return configuration
