"""The `gptdesk desktop-entry` command: add GPT Desk to the desktop's application menu, or take it out."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, TextIO

from gptdesk.i18n import Text
from gptdesk.ui.desktop import entry

EXIT_OK = 0


def _t(en: str, ru: str) -> str:
    return Text(en, ru).get()


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "desktop-entry",
        help=_t("add GPT Desk to the application menu, or remove it", "добавить GPT Desk в меню приложений или убрать"),
        description=_t(
            "Install (or remove) GPT Desk's menu entry, icon and AppStream metadata for the current user, under "
            "$XDG_DATA_HOME (default ~/.local/share). The entry starts this installation of GPT Desk.",
            "Установить (или удалить) ярлык GPT Desk в меню приложений, значок и метаданные AppStream для текущего "
            "пользователя, в $XDG_DATA_HOME (по умолчанию ~/.local/share). Ярлык запускает эту установку GPT Desk.",
        ),
    )
    parser.add_argument("action", choices=("install", "remove", "show"))
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=_t("install under this folder instead of the XDG data dir", "установить в эту папку вместо XDG"),
    )
    parser.set_defaults(func=cmd_desktop_entry)


def cmd_desktop_entry(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    root: Path = args.data_dir or entry.data_home()
    if args.action == "show":
        out.write(entry.render_entry(entry.launch_command()))
        return EXIT_OK
    if args.action == "install":
        written = entry.install(root)
        print(
            _t(
                f"GPT Desk is in the application menu: {written[0]} (and {len(written) - 1} icon and metadata files "
                f"under {root}). `gptdesk desktop-entry remove` takes it out.",
                f"GPT Desk добавлен в меню приложений: {written[0]} (и ещё {len(written) - 1} файлов значка и "
                f"метаданных в {root}). Убрать: `gptdesk desktop-entry remove`.",
            ),
            file=out,
        )
        return EXIT_OK
    removed = entry.remove(root)
    print(
        _t(
            f"Removed GPT Desk from the application menu ({len(removed)} files under {root}).",
            f"GPT Desk убран из меню приложений (удалено файлов в {root}: {len(removed)}).",
        )
        if removed
        else _t(
            f"GPT Desk was not in the application menu under {root}: nothing to remove.",
            f"GPT Desk не было в меню приложений в {root}: удалять нечего.",
        ),
        file=out,
    )
    return EXIT_OK
