"""The platform check before Qt starts: the real plugins' libraries, the Debian packages named, the platforms tried."""

from __future__ import annotations

import subprocess

import pytest

from gptdesk.ui.desktop.qt_platform import (
    DEBIAN_PACKAGES,
    PlatformLibrariesMissing,
    candidate_platforms,
    debian_package,
    ensure_platform_loadable,
    find_plugin,
    install_command,
    missing_libraries,
)
from tests.ui.desktop.conftest import need_tool


def _system_libraries(platform: str) -> dict[str, str]:
    """soname -> path of every system library the real plugin loads (ldd), Qt's own left out."""
    plugin = find_plugin(platform, {})
    assert plugin is not None, f"PySide6 has no {platform} plugin"
    out = subprocess.run([need_tool("ldd"), str(plugin)], capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        name, sep, where = line.strip().partition(" => ")
        if sep and where.startswith("/") and "PySide6" not in where:
            found[name] = where.split(" (")[0]
    return found


@pytest.mark.parametrize("platform", ["xcb", "wayland"])
def test_the_set_up_installed_every_library_of_the_desktop_plugins(platform: str) -> None:
    """What the set-up installs (tools/apt-packages.txt) is all the xcb and Wayland plugins need."""
    plugin = find_plugin(platform, {})
    assert plugin is not None
    assert missing_libraries(plugin) == []


@pytest.mark.parametrize("platform", ["xcb", "wayland"])
def test_the_package_table_matches_what_dpkg_says(platform: str) -> None:
    """Each library the plugins need that the table names is really in that Debian package."""
    dpkg = need_tool("dpkg")
    checked = 0
    for soname, path in _system_libraries(platform).items():
        if soname not in DEBIAN_PACKAGES:
            continue
        proc = subprocess.run([dpkg, "-S", f"*/{soname}"], capture_output=True, text=True, check=False)
        owners = {line.split(":")[0].strip() for line in proc.stdout.splitlines() if line.strip()}
        assert DEBIAN_PACKAGES[soname] in owners, (soname, path, owners)
        checked += 1
    assert checked >= (15 if platform == "xcb" else 2)
    # Every xcb-family library of the xcb plugin is in the table (these are the ones minimal installs lack).
    if platform == "xcb":
        family = [s for s in _system_libraries("xcb") if s.startswith(("libxcb", "libxkbcommon", "libX11"))]
        assert family and all(s in DEBIAN_PACKAGES for s in family)


def test_package_names_follow_debian_policy_outside_the_table() -> None:
    assert debian_package("libxcb-cursor.so.0") == "libxcb-cursor0"
    assert debian_package("libxcb-cursor.so.7") == "libxcb-cursor7"
    assert debian_package("libfoo2.so.1") == "libfoo2-1"
    assert debian_package("libQt6Gui.so.6") is None  # PySide6's own: reinstalling PySide6 is the fix
    assert install_command(["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-icccm.so.4"]) == (
        "sudo apt-get install libxcb-icccm4 libxcb-keysyms1"
    )


def test_platforms_tried_follow_qt() -> None:
    assert candidate_platforms({"DISPLAY": ":0"}) == ["xcb"]
    assert candidate_platforms({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}) == ["wayland", "xcb"]
    assert candidate_platforms({"XDG_SESSION_TYPE": "wayland"}) == ["wayland"]
    assert candidate_platforms({"QT_QPA_PLATFORM": "wayland;xcb:dpi=96", "DISPLAY": ":0"}) == ["wayland", "xcb"]
    assert candidate_platforms({"QT_QPA_PLATFORM": "offscreen"}) == ["offscreen"]


def test_a_loadable_platform_passes() -> None:
    assert ensure_platform_loadable({"DISPLAY": ":0"}) == "xcb"
    assert ensure_platform_loadable({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}) == "wayland"
    assert ensure_platform_loadable({"QT_QPA_PLATFORM": "offscreen"}) == "offscreen"


def test_an_unknown_platform_is_left_to_qt() -> None:
    assert ensure_platform_loadable({"QT_QPA_PLATFORM": "no-such-platform"}) == "no-such-platform"


def test_missing_libraries_raise_with_both_languages(tmp_path: object) -> None:
    from pathlib import Path

    from tests.ui.desktop.test_real_x import _plugin_with_missing_library

    plugins, missing = _plugin_with_missing_library(Path(str(tmp_path)))
    with pytest.raises(PlatformLibrariesMissing) as info:
        ensure_platform_loadable({"DISPLAY": ":0", "QT_QPA_PLATFORM_PLUGIN_PATH": str(plugins)})
    exc = info.value
    assert exc.platform == "xcb" and exc.libraries == [missing] and exc.exit_code == 6
    assert missing in exc.message("en") and "sudo apt-get install libxcb-cursor7" in exc.message("en")
    assert "Окно не может открыться" in exc.message("ru") and missing in exc.message("ru")
