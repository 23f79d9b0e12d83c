"""The user's language for messages and descriptions: Russian or English."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Lang = Literal["ru", "en"]
LANGUAGES: tuple[Lang, ...] = ("ru", "en")

_override: Lang | None = None


def set_language(lang: Lang | None) -> None:
    """Fix the language for this process (None goes back to the environment's)."""
    global _override
    _override = lang


def current_language() -> Lang:
    """GPTDESK_LANG if set, else the POSIX locale variables; Russian locales give Russian."""
    if _override is not None:
        return _override
    explicit = os.environ.get("GPTDESK_LANG", "").strip().lower()
    if explicit in LANGUAGES:
        return explicit  # type: ignore[return-value,unused-ignore]
    for var in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE"):
        value = os.environ.get(var, "")
        if value:
            return "ru" if value.lower().startswith("ru") else "en"
    return "en"


@dataclass(frozen=True)
class Text:
    """A piece of user-facing text in both languages."""

    en: str
    ru: str

    def get(self, lang: Lang | None = None) -> str:
        return self.ru if (lang or current_language()) == "ru" else self.en

    def __str__(self) -> str:
        return self.get()

    def format(self, **values: object) -> Text:
        return Text(self.en.format(**values), self.ru.format(**values))

    def __add__(self, other: Text) -> Text:
        return Text(self.en + other.en, self.ru + other.ru)


#: Reports progress of a long task (loading, converting, measuring): a message and a fraction in [0, 1]
#: (None when unknown). Here, at the base, so the engines, the converter and the measures share it.
ProgressCallback = Callable[[Text, float | None], None]
