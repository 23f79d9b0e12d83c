"""What the window tells the user: the message bar, kept as Text so it follows a language switch."""

from __future__ import annotations

from gptdesk.errors import GptDeskError
from gptdesk.i18n import Text
from gptdesk.ui.widgets import MessageBar


def error_text(exc: BaseException) -> Text:
    """What to tell the user about an exception: our typed errors say it; anything else is a bug."""
    if isinstance(exc, GptDeskError):
        return exc.text
    if isinstance(exc, ModuleNotFoundError) and "gptdesk.engine.remote.engine" in str(exc):
        return Text(
            "The remote engine is not part of this build of GPT Desk (gptdesk.engine.remote.engine is missing). "
            "Update GPT Desk to use remote servers.",
            "Удалённый движок не входит в эту сборку GPT Desk (нет gptdesk.engine.remote.engine). Обновите "
            "GPT Desk, чтобы работать с удалёнными серверами.",
        )
    return Text(
        f"Internal error ({type(exc).__name__}: {exc}). Please report it with what you did.",
        f"Внутренняя ошибка ({type(exc).__name__}: {exc}). Сообщите о ней, описав свои действия.",
    )


class Messages:
    """The one message the bar above the output shows, with its level ("info", "warning", "error")."""

    def __init__(self, bar: MessageBar) -> None:
        self.bar = bar
        self.current: tuple[Text, str] | None = None

    def show(self, text: Text, level: str = "info") -> None:
        self.current = (text, level)
        self.bar.show_message(text.get(), level)

    def clear(self) -> None:
        self.current = None
        self.bar.hide()

    def clear_errors(self) -> None:
        """Hide the message if it is an error (a later success made it stale)."""
        if self.current is not None and self.current[1] == "error":
            self.clear()

    def retranslate(self) -> None:
        if self.current is not None:
            self.bar.show_message(self.current[0].get(), self.current[1])
