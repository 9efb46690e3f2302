"""Which environment variables config.py reads, found by running it, not by a list."""

from __future__ import annotations

from typing import Any, Dict, List

from config import DefaultConfig


class _RecordingEnv(Dict[str, str]):
    def __init__(self) -> None:
        super().__init__()
        self.names: List[str] = []

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        if key not in self.names:
            self.names.append(key)
        return super().get(key, default)


def settings_read_by_config() -> List[str]:
    env = _RecordingEnv()
    DefaultConfig.from_env(env)
    return env.names
