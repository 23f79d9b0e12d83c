"""The app's freedesktop entry, icon and AppStream metadata, installed for the current user (XDG data dir)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gptdesk.errors import GptDeskError, InvalidInputError
from gptdesk.i18n import Text

APP_ID = "org.gptdesk.GptDesk"
DATA_DIR = Path(__file__).resolve().parent / "data"
DESKTOP_TEMPLATE = DATA_DIR / f"{APP_ID}.desktop"
METAINFO = DATA_DIR / f"{APP_ID}.metainfo.xml"
ICON_DIR = DATA_DIR / "icons"
ICON_SVG = ICON_DIR / f"{APP_ID}.svg"
#: The PNG sizes rendered from the SVG (tools/render_icons.sh); the hicolor theme's usual ones.
ICON_SIZES: tuple[int, ...] = (16, 24, 32, 48, 64, 128, 256, 512)


class DesktopEntryError(GptDeskError):
    """The menu entry could not be written or removed (a read-only or full disk)."""

    exit_code = 7  # cli/exits.py's EXIT_DESKTOP_ENTRY (ui may not import the CLI)


def icon_png(size: int) -> Path:
    return ICON_DIR / f"{APP_ID}-{size}.png"


def data_home(env: Mapping[str, str] | None = None) -> Path:
    """$XDG_DATA_HOME, or ~/.local/share as the XDG base directory spec says when it is unset or relative."""
    env = os.environ if env is None else env
    value = env.get("XDG_DATA_HOME", "")
    if value and Path(value).is_absolute():
        return Path(value)
    return Path(env.get("HOME") or Path.home()) / ".local" / "share"


def launch_command() -> list[str]:
    """How the menu starts this installation of GPT Desk: its own `gptdesk` script, frozen binary or interpreter."""
    if getattr(sys, "frozen", False):  # a one-folder build: the executable is the app
        return [str(Path(sys.executable).resolve()), "gui"]
    script = Path(sys.executable).parent / ("gptdesk.exe" if os.name == "nt" else "gptdesk")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute()), "gui"]
    return [str(Path(sys.executable).absolute()), "-m", "gptdesk", "gui"]


def _exec_arg(arg: str) -> str:
    """One argument of an Exec key: quoted per the Desktop Entry spec, then escaped as a string value."""
    reserved = set(" \t\n\"'\\><~|&;$*?#()`=%")
    if arg and not (set(arg) & reserved):
        return arg
    quoted = '"' + "".join("\\" + c if c in '"`$\\' else c for c in arg).replace("%", "%%") + '"'
    return quoted.replace("\\", "\\\\")  # the string-value level of escaping comes on top of the quoting


def render_entry(command: Sequence[str]) -> str:
    """The packaged .desktop file with Exec and TryExec pointing at `command`."""
    lines = []
    for line in DESKTOP_TEMPLATE.read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            line = "Exec=" + " ".join(_exec_arg(a) for a in command)
        elif line.startswith("TryExec="):
            line = "TryExec=" + command[0].replace("\\", "\\\\")
        lines.append(line)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class EntryFiles:
    """Where the entry's files go under one data dir."""

    root: Path

    @property
    def desktop(self) -> Path:
        return self.root / "applications" / f"{APP_ID}.desktop"

    @property
    def metainfo(self) -> Path:
        return self.root / "metainfo" / f"{APP_ID}.metainfo.xml"

    @property
    def svg(self) -> Path:
        return self.root / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"

    def png(self, size: int) -> Path:
        return self.root / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"

    def all(self) -> list[Path]:
        return [self.desktop, self.metainfo, self.svg, *(self.png(s) for s in ICON_SIZES)]


def _check_platform() -> None:
    if sys.platform.startswith(("win", "darwin")):
        raise InvalidInputError(
            Text(
                "Desktop entries are for Linux desktops (freedesktop.org). On Windows and macOS use the one-folder "
                "build's shortcut or app bundle (docs/desktop.md).",
                "Ярлыки в меню (freedesktop.org) бывают только на Linux. В Windows и macOS используйте ярлык или "
                "пакет приложения из сборки в одну папку (docs/desktop.md).",
            )
        )


def _write(path: Path, data: bytes, made: list[Path]) -> None:
    """Write `path` whole; `made` gets each folder created on the way and then the file, for a rollback."""
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir()
        made.append(folder)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        existed = path.exists()
        os.replace(tmp, path)  # a menu that reads the folder meanwhile never sees half a file
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    if not existed:
        made.append(path)


def _roll_back(made: list[Path]) -> None:
    """Remove what a failed install created, newest first (files, then the folders made for them)."""
    for path in reversed(made):
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()  # only when empty: a folder that holds other things stays
            else:
                path.unlink()


def install(root: Path | None = None, command: Sequence[str] | None = None) -> list[Path]:
    """Install the entry, the icons and the metadata under `root` (default: the user's XDG data dir).

    All or nothing: when a file cannot be written, the files and folders this call created are removed."""
    _check_platform()
    files = EntryFiles(root or data_home())
    written: list[Path] = []
    made: list[Path] = []
    try:
        _write(files.desktop, render_entry(command or launch_command()).encode("utf-8"), made)
        written.append(files.desktop)
        _write(files.metainfo, METAINFO.read_bytes(), made)
        written.append(files.metainfo)
        _write(files.svg, ICON_SVG.read_bytes(), made)
        written.append(files.svg)
        for size in ICON_SIZES:
            _write(files.png(size), icon_png(size).read_bytes(), made)
            written.append(files.png(size))
    except OSError as exc:
        _roll_back(made)
        raise DesktopEntryError(
            Text(
                f"Cannot write the menu entry under {files.root} ({exc}). Nothing was installed. Check that the "
                "folder is writable and the disk is not full, or set XDG_DATA_HOME to a writable folder.",
                f"Не удаётся записать ярлык в {files.root} ({exc}). Ничего не установлено. Проверьте, что в папку "
                "можно писать и диск не заполнен, или укажите в XDG_DATA_HOME папку, доступную для записи.",
            )
        ) from exc
    _refresh_caches(files.root)
    return written


def remove(root: Path | None = None) -> list[Path]:
    """Remove what install() wrote; returns the files that were there."""
    _check_platform()
    files = EntryFiles(root or data_home())
    removed: list[Path] = []
    for path in files.all():
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise DesktopEntryError(
                Text(
                    f"Cannot remove {path} ({exc}). Remove it by hand.",
                    f"Не удаётся удалить {path} ({exc}). Удалите файл вручную.",
                )
            ) from exc
        removed.append(path)
    _refresh_caches(files.root)
    return removed


def _refresh_caches(root: Path) -> None:
    """Menus that cache the entries and icons pick up the change at once; they also rescan by themselves."""
    for tool, args in (
        ("update-desktop-database", ["-q", str(root / "applications")]),
        ("gtk-update-icon-cache", ["-q", "-t", "-f", str(root / "icons" / "hicolor")]),
    ):
        exe = shutil.which(tool)
        folder = Path(args[-1])
        if exe is None or not folder.is_dir():
            continue
        # Only a cache: the desktop rescans the folders itself, so a failure here changes nothing.
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run([exe, *args], capture_output=True, timeout=60, check=False)
