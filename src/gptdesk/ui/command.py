"""`gptdesk gui` (and bare `gptdesk`): open the window. Imports no Qt until the window is wanted."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from gptdesk.errors import GptDeskError
from gptdesk.i18n import Text


class NoDisplayError(GptDeskError):
    """There is no graphical display to open the window on."""

    exit_code = 6


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gui",
        help=Text("open the window (the default)", "открыть окно (по умолчанию)").get(),
        description=Text(
            "Open the GPT Desk window. The model loads in the background; the window is usable at once.",
            "Открыть окно GPT Desk. Модель загружается в фоне; окном можно пользоваться сразу.",
        ).get(),
    )
    parser.add_argument(
        "--model",
        default=None,
        help=Text(
            "model to load: catalog name, hub id or folder (default: the embedded model)",
            "модель: имя из каталога, id на хабе или папка (по умолчанию встроенная)",
        ).get(),
    )
    # Its own dest: a subparser's default would overwrite the top-level --lang.
    parser.add_argument(
        "--lang",
        dest="gui_lang",
        choices=("ru", "en"),
        default=None,
        help=Text(
            "interface language (default: the system's, or the last one chosen)",
            "язык интерфейса (по умолчанию системный или выбранный в прошлый раз)",
        ).get(),
    )
    parser.set_defaults(func=cmd_gui)


def cmd_gui(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    return run_gui(
        model=getattr(args, "model", None), lang=getattr(args, "gui_lang", None) or getattr(args, "lang", None)
    )


def run_gui(model: str | None = None, lang: str | None = None) -> int:
    """Open the window (raises NoDisplayError on a machine without a display)."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        raise NoDisplayError(
            Text(
                "No graphical display was found (DISPLAY and WAYLAND_DISPLAY are unset), so the window cannot "
                "open. Run GPT Desk in a desktop session, or use the terminal commands (`gptdesk generate "
                '"Жили-были"`); to run the window without a screen set QT_QPA_PLATFORM=offscreen.',
                "Графический дисплей не найден (DISPLAY и WAYLAND_DISPLAY не заданы), поэтому окно не может "
                "открыться. Запустите GPT Desk в графическом сеансе или пользуйтесь командами терминала "
                '(`gptdesk generate "Жили-были"`); чтобы запустить окно без экрана, задайте '
                "QT_QPA_PLATFORM=offscreen.",
            )
        )
    # Before Qt: a platform plugin Qt cannot load aborts the process with a message that names no library.
    from gptdesk.ui.desktop.qt_platform import ensure_platform_loadable

    ensure_platform_loadable()
    from gptdesk.ui.app import run

    return run(model=model, lang=lang)
