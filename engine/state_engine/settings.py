"""Settings declared once (name, type, range, default, help) and read from the environment.

A settings class is a frozen dataclass of ``setting(...)`` fields (the bot's config and
every store); a wrong value is a ``SettingError`` naming the variable, and ``.env.example``
is checked against the same declarations.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional, Tuple, Type, TypeVar

T = TypeVar("T")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class SettingError(ValueError):
    """A setting's value is wrong; the message names the environment variable."""


@dataclass(frozen=True)
class Setting:
    """One environment variable: its type, default, allowed range and one line of help."""

    name: str
    kind: type
    default: Any
    help: str
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: Tuple[str, ...] = ()
    secret: bool = False

    def read(self, env: Mapping[str, str]) -> Any:
        """The value ``env`` gives, or the default when it is unset or blank."""
        raw = env.get(self.name)
        text = "" if raw is None else raw.strip()
        if not text:
            return self.default
        value = self._parse(text)
        self._check(value, text)
        return value

    def _parse(self, text: str) -> Any:
        if self.kind is bool:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise SettingError(f"{self.name} must be true or false, got {text!r}")
        if self.kind in (int, float):
            try:
                value = self.kind(text)
            except ValueError:
                kind = "a whole number" if self.kind is int else "a number"
                raise SettingError(f"{self.name} must be {kind}, got {text!r}") from None
            if isinstance(value, float) and not math.isfinite(value):
                raise SettingError(f"{self.name} must be a finite number, got {text!r}")
            return value
        if self.choices:
            # Any case is accepted; the value is the choice as declared.
            for choice in self.choices:
                if choice.lower() == text.lower():
                    return choice
            raise SettingError(f"{self.name} must be one of {', '.join(self.choices)}, got {text!r}")
        return text

    def _check(self, value: Any, text: str) -> None:
        low, high = self.minimum, self.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            raise SettingError(f"{self.name} must be {self.range_text()}, got {text!r}")

    def range_text(self) -> str:
        """The allowed range in words ("from 1 to 65535", "at least 0")."""
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"from {low:g} to {high:g}"
        if low is not None:
            return f"at least {low:g}"
        if high is not None:
            return f"at most {high:g}"
        return "any value"

    def example(self) -> str:
        """What ``.env.example`` shows: empty for secrets and for settings without a default."""
        if self.secret or self.default is None:
            return ""
        if self.kind is bool:
            return "true" if self.default else "false"
        return str(self.default)

    def documented(self) -> str:
        """The two lines ``.env.example`` holds for this setting: its help, then its example."""
        return f"# {self.help}\n{self.name}={self.example()}"


def setting(
    name: str,
    kind: type,
    default: Any,
    help: str,
    *,
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    choices: Tuple[str, ...] = (),
    secret: bool = False,
) -> Any:
    """A dataclass field read from the environment variable ``name``."""
    return field_for(Setting(name, kind, default, help, minimum, maximum, choices, secret))


def field_for(declared: Setting) -> Any:
    """A dataclass field for a setting declared elsewhere (e.g. the backend registry's STORAGE)."""
    return dataclasses.field(default=declared.default, repr=not declared.secret, metadata={"setting": declared})


def declared(cls: type) -> Iterator[Tuple[str, Setting]]:
    """``(field name, Setting)`` for every field of a settings class, in order."""
    for field in dataclasses.fields(cls):
        if "setting" in field.metadata:
            yield field.name, field.metadata["setting"]


def read_settings(cls: Type[T], env: Mapping[str, str], **overrides: Any) -> T:
    """An instance of the settings class ``cls`` with every field read from ``env``."""
    values = {name: item.read(env) for name, item in declared(cls)}
    values.update(overrides)
    return cls(**values)
