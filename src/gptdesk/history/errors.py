"""History's typed errors: the environment's faults (disk full, locked file) apart from bugs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gptdesk.errors import GptDeskError
from gptdesk.i18n import Text


class HistoryError(GptDeskError):
    """The history database could not be read or written."""

    exit_code = 5


class HistoryUnavailableError(HistoryError):
    """A fault of the environment, not of GPT Desk: disk full, file locked, read-only, damaged.

    The user can fix it (free space, close the other program, move the file away); the message
    says how. `reason` is a short machine-readable word for tests and logs.
    """

    def __init__(self, text: Text, reason: str) -> None:
        super().__init__(text)
        self.reason = reason


class HistoryBugError(HistoryError):
    """GPT Desk used the database wrongly (bad SQL, a broken invariant): a bug to report."""


# SQLite's primary result codes (https://www.sqlite.org/rescode.html) that mean the environment.
_FULL = 13
_BUSY = 5
_LOCKED = 6
_READONLY = 8
_CANTOPEN = 14
_IOERR = 10
_CORRUPT = 11
_NOTADB = 26
_PERM = 3
_PROTOCOL = 15
_NOLFS = 22


def classify(exc: BaseException, path: Path, action: Text) -> HistoryError:
    """Turn a sqlite3 or OS error met while doing `action` on `path` into a typed history error."""
    where = Text(f" ({action.en}, {path})", f" ({action.ru}, {path})")
    if isinstance(exc, OSError) and not isinstance(exc, sqlite3.Error):
        return HistoryUnavailableError(
            Text(
                f"The history folder cannot be used: {exc.strerror or exc}.",
                f"Папку истории нельзя использовать: {exc.strerror or exc}.",
            )
            + where
            + Text(
                " Check that the folder exists and is writable, or point GPTDESK_DATA_DIR elsewhere.",
                " Проверьте, что папка существует и доступна для записи, или укажите другую в GPTDESK_DATA_DIR.",
            ),
            "os",
        )
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary is None and isinstance(exc, sqlite3.OperationalError):
        # Python < 3.11 or errors raised before a statement runs carry no code; the message does.
        primary = _code_from_message(str(exc))
    detail = str(exc)
    if primary == _FULL:
        return HistoryUnavailableError(
            Text(
                f"The disk is full: the history could not be saved ({detail}).",
                f"Диск заполнен: историю не удалось сохранить ({detail}).",
            )
            + where
            + Text(
                " Free some disk space; the text on screen is kept.",
                " Освободите место на диске; текст на экране сохранён.",
            ),
            "full",
        )
    if primary in (_BUSY, _LOCKED):
        return HistoryUnavailableError(
            Text(
                f"The history file is locked by another program ({detail}).",
                f"Файл истории заблокирован другой программой ({detail}).",
            )
            + where
            + Text(
                " Close other GPT Desk windows or programs that have it open, then try again.",
                " Закройте другие окна GPT Desk или программы, открывшие его, и повторите.",
            ),
            "locked",
        )
    if primary in (_READONLY, _PERM, _CANTOPEN):
        return HistoryUnavailableError(
            Text(
                f"The history file cannot be opened for writing ({detail}).",
                f"Файл истории нельзя открыть для записи ({detail}).",
            )
            + where
            + Text(
                " Check the permissions of the file and its folder, or point GPTDESK_DATA_DIR elsewhere.",
                " Проверьте права на файл и его папку или укажите другую папку в GPTDESK_DATA_DIR.",
            ),
            "readonly",
        )
    if primary in (_CORRUPT, _NOTADB):
        return HistoryUnavailableError(
            Text(
                f"The history file is damaged or is not a GPT Desk database ({detail}).",
                f"Файл истории повреждён или не является базой GPT Desk ({detail}).",
            )
            + where
            + Text(
                " Move it away (GPT Desk will start a new one) and keep it if you want to try to recover it.",
                " Переместите его в другое место (GPT Desk начнёт новую историю) и сохраните, "
                "если хотите его восстановить.",
            ),
            "corrupt",
        )
    if primary in (_IOERR, _PROTOCOL, _NOLFS):
        return HistoryUnavailableError(
            Text(
                f"The disk reported an input/output error on the history file ({detail}).",
                f"Диск сообщил об ошибке ввода-вывода в файле истории ({detail}).",
            )
            + where
            + Text(
                " Check the disk, or point GPTDESK_DATA_DIR elsewhere.",
                " Проверьте диск или укажите другую папку в GPTDESK_DATA_DIR.",
            ),
            "io",
        )
    return HistoryBugError(
        Text(
            f"Internal error in the history database: {type(exc).__name__}: {detail}.",
            f"Внутренняя ошибка базы истории: {type(exc).__name__}: {detail}.",
        )
        + where
        + Text(" Please report it.", " Сообщите о ней, пожалуйста.")
    )


def _code_from_message(message: str) -> int | None:
    lowered = message.lower()
    for fragment, code in (
        ("database or disk is full", _FULL),
        ("database is locked", _BUSY),
        ("database table is locked", _LOCKED),
        ("readonly database", _READONLY),
        ("unable to open database", _CANTOPEN),
        ("disk i/o error", _IOERR),
        ("malformed", _CORRUPT),
        ("not a database", _NOTADB),
    ):
        if fragment in lowered:
            return code
    return None
