"""Which environment variables config.py reads, found by running it, not from a list."""

from __future__ import annotations

from typing import Dict, Iterator, Mapping, Set

from config import DefaultConfig


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers every name asked of it."""

    def __init__(self, values: Dict[str, str]) -> None:
        self.values = values
        self.asked: Set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def settings_read_by_config() -> Set[str]:
    """The names ``DefaultConfig.from_env`` looks up, with each storage backend selected
    (a name read only for one backend is still found)."""
    asked: Set[str] = set()
    for backend in ("", "sqlite", "memory", "cosmos", "blob", "table"):
        env = RecordingEnv({"STORAGE": backend} if backend else {})
        DefaultConfig.from_env(env)
        asked |= env.asked
    return asked
