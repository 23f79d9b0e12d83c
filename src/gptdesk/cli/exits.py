"""Every exit status of `gptdesk`, one table for all commands (shown by --help; the README lists the same)."""

from __future__ import annotations

from gptdesk.i18n import Text

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_MODEL = 3
EXIT_RESOURCES = 4
EXIT_NOT_WRITTEN = 5
EXIT_NO_DISPLAY = 6
EXIT_DESKTOP_ENTRY = 7
EXIT_INTERRUPTED = 130
EXIT_PIPE_CLOSED = 141  # the reader of the output went away (see errors.OutputClosedError)

#: (code, what it means). A test checks that every code a command can return is here.
EXIT_CODES: list[tuple[int, Text]] = [
    (EXIT_OK, Text("done", "готово")),
    (EXIT_INTERNAL, Text("internal failure (a bug: please report it)", "внутренняя ошибка (сообщите о ней)")),
    (
        EXIT_BAD_INPUT,
        Text(
            "bad input (prompt, settings, names, file names, text that is not UTF-8, a text too long, thread counts)",
            "неверный ввод (затравка, настройки, имена, имена файлов, текст не в UTF-8, слишком длинный текст, "
            "число потоков)",
        ),
    ),
    (
        EXIT_MODEL,
        Text(
            "model missing or damaged, or it cannot be fetched or prepared (hub, cache folder)",
            "модели нет или она повреждена, либо её не получить или не подготовить (хаб, папка кэша)",
        ),
    ),
    (EXIT_RESOURCES, Text("not enough memory or disk space", "не хватает памяти или места на диске")),
    (
        EXIT_NOT_WRITTEN,
        Text(
            "the output, the history or a file asked for (--png, --svg, --json FILE) cannot be written (full disk, "
            "read-only folder, an encoding without Cyrillic, a locked file); `explore --save` prints its results first",
            "вывод, историю или заказанный файл (--png, --svg, --json ФАЙЛ) не записать (диск полон, папка только "
            "для чтения, кодировка без кириллицы, файл занят); `explore --save` сначала печатает результаты",
        ),
    ),
    (EXIT_NO_DISPLAY, Text("no graphical display for the window", "нет графического дисплея для окна")),
    (
        EXIT_DESKTOP_ENTRY,
        Text(
            "`desktop-entry` cannot write or remove the menu entry (nothing half-written is left)",
            "`desktop-entry` не может записать или удалить ярлык (недописанное не остаётся)",
        ),
    ),
    (EXIT_INTERRUPTED, Text("stopped with Ctrl+C", "остановлено по Ctrl+C")),
    (
        EXIT_PIPE_CLOSED,
        Text(
            "the output's reader went away (`gptdesk … | head`): a quiet stop, as for any Unix tool",
            "читатель вывода закрылся (`gptdesk … | head`): тихая остановка, как у любой Unix-программы",
        ),
    ),
]


def epilog() -> str:
    """The exit-status part of `gptdesk --help`."""
    return Text("exit status:", "код завершения:").get() + "".join(
        f"\n  {code:>3}  {text.get()}" for code, text in EXIT_CODES
    )
