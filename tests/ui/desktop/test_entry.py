"""The app-menu entry, icon and AppStream metadata: validated by the freedesktop tools, installed and removed."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

import pytest

from gptdesk.cli.main import main
from gptdesk.ui.desktop.entry import (
    APP_ID,
    DESKTOP_TEMPLATE,
    ICON_SIZES,
    ICON_SVG,
    METAINFO,
    EntryFiles,
    icon_png,
    render_entry,
)
from tests.ui.desktop.conftest import need_tool


def _validate_desktop(path: Path) -> str:
    proc = subprocess.run([need_tool("desktop-file-validate"), str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def _entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.RawConfigParser(strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path, encoding="utf-8")
    return parser["Desktop Entry"]


def test_packaged_entry_and_metainfo_validate() -> None:
    assert "error" not in _validate_desktop(DESKTOP_TEMPLATE)
    proc = subprocess.run(
        [need_tool("appstreamcli"), "validate", "--no-net", "--pedantic", str(METAINFO)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation was successful" in proc.stdout
    entry = _entry(DESKTOP_TEMPLATE)
    assert entry["Icon"] == APP_ID and entry["Name"] == "GPT Desk" and entry["Comment[ru]"]
    assert f'<launchable type="desktop-id">{APP_ID}.desktop</launchable>' in METAINFO.read_text(encoding="utf-8")


def test_icons_are_rendered_at_every_size() -> None:
    from PySide6.QtGui import QImage

    assert ICON_SVG.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    for size in ICON_SIZES:
        image = QImage(str(icon_png(size)))
        assert (image.width(), image.height()) == (size, size), size
        assert image.hasAlphaChannel()  # rounded corners stay transparent on any panel colour
        assert image.pixelColor(0, 0).alpha() == 0 and image.pixelColor(size // 2, size // 2).alpha() == 255


def test_install_and_remove_for_the_current_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_home = tmp_path / "xdg data"  # a space in the path: Exec must quote it
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    assert main(["desktop-entry", "install"]) == 0
    assert "application menu" in capsys.readouterr().out
    files = EntryFiles(data_home)
    for path in files.all():
        assert path.is_file(), path
    assert files.png(48).read_bytes() == icon_png(48).read_bytes()
    _validate_desktop(files.desktop)
    entry = _entry(files.desktop)
    # The entry starts this installation: an absolute program that exists and runs.
    assert Path(entry["TryExec"]).is_absolute() and Path(entry["TryExec"]).exists()
    assert entry["Exec"].endswith(" gui")

    assert main(["--lang", "ru", "desktop-entry", "remove"]) == 0
    assert "убран из меню" in capsys.readouterr().out
    assert not any(path.exists() for path in files.all())
    assert main(["--lang", "en", "desktop-entry", "remove"]) == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_exec_quotes_paths_with_spaces_and_specials(tmp_path: Path) -> None:
    odd = tmp_path / "my apps" / 'GPT "Desk" 100%' / "gptdesk"
    text = render_entry([str(odd), "gui"])
    path = tmp_path / f"{APP_ID}.desktop"
    path.write_text(text, encoding="utf-8")
    _validate_desktop(path)
    exec_line = next(line for line in text.splitlines() if line.startswith("Exec="))
    # Quoted per the spec (\\" inside quotes, %% for a percent), then escaped once more as a string value.
    parent = str(odd.parent.parent).replace("\\", "\\\\")
    assert exec_line == 'Exec="' + parent + '/GPT \\\\"Desk\\\\" 100%%/gptdesk" gui'


def test_a_read_only_data_dir_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocked))
    assert main(["desktop-entry", "install"]) == 7
    err = capsys.readouterr().err
    assert str(blocked) in err and "XDG_DATA_HOME" in err and "Internal error" not in err
