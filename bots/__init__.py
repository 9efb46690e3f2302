from .state_bot import BotSettings, StateBot

__all__ = ["BotSettings", "StateBot"]
