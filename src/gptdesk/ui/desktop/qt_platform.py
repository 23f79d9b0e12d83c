"""Before the window opens: can Qt load its platform plugin here, and if not, which system libraries are missing.

Qt's own message for a plugin it cannot load ("Could not load the Qt platform plugin xcb ... no Qt
platform plugin could be initialized") names neither the missing libraries nor the packages, and
then aborts the process. This module reads the plugin's dependencies the way the dynamic loader
does (`ldd`, or ctypes where there is no ldd) before a QApplication exists, so the app can say
what to install. It imports no Qt.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gptdesk.errors import GptDeskError
from gptdesk.i18n import Text

#: Libraries of Qt's xcb and Wayland plugins (ldd on PySide6's libqxcb.so and libqwayland*.so) and
#: the Debian/Ubuntu packages that hold them. Most desktops have them; minimal installs often lack
#: the xcb-util ones, which no other common program needs.
DEBIAN_PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
}

#: The plugin file for each platform name Qt accepts in QT_QPA_PLATFORM.
_PLUGIN_FILES: dict[str, tuple[str, ...]] = {
    "xcb": ("libqxcb.so",),
    "wayland": ("libqwayland.so", "libqwayland-generic.so"),
    "wayland-egl": ("libqwayland-egl.so", "libqwayland.so"),
    "offscreen": ("libqoffscreen.so",),
    "minimal": ("libqminimal.so",),
    "vnc": ("libqvnc.so",),
    "eglfs": ("libqeglfs.so",),
    "linuxfb": ("libqlinuxfb.so",),
}


class PlatformLibrariesMissing(GptDeskError):
    """Qt's platform plugin for this desktop cannot load: system libraries are missing."""

    exit_code = 6

    def __init__(self, text: Text, platform: str, libraries: Sequence[str]) -> None:
        super().__init__(text)
        self.platform = platform
        self.libraries = list(libraries)


@dataclass(frozen=True)
class PluginCheck:
    """One platform plugin: where it is and which of its libraries the loader cannot find."""

    platform: str
    plugin: Path | None  # None: this Qt has no such plugin
    missing: tuple[str, ...]

    @property
    def loadable(self) -> bool:
        return self.plugin is not None and not self.missing


def plugin_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where Qt looks for platform plugins: QT_QPA_PLATFORM_PLUGIN_PATH first, then PySide6's own folder."""
    env = os.environ if env is None else env
    dirs = [Path(p) for p in env.get("QT_QPA_PLATFORM_PLUGIN_PATH", "").split(os.pathsep) if p]
    spec = importlib.util.find_spec("PySide6")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            dirs.append(Path(location) / "Qt" / "plugins" / "platforms")
    if getattr(sys, "frozen", False):  # a one-folder build keeps PySide6 under _internal
        dirs.append(Path(getattr(sys, "_MEIPASS", Path(sys.executable).parent)) / "PySide6/Qt/plugins/platforms")
    return dirs


def find_plugin(platform: str, env: Mapping[str, str] | None = None) -> Path | None:
    for folder in plugin_dirs(env):
        for name in _PLUGIN_FILES.get(platform, (f"libq{platform}.so",)):
            if (folder / name).is_file():
                return folder / name
    return None


def missing_libraries(plugin: Path) -> list[str]:
    """The shared libraries `plugin` needs that the dynamic loader cannot find (sonames, in ldd's order)."""
    ldd = shutil.which("ldd")
    if ldd is not None:
        try:
            result = subprocess.run(
                [ldd, str(plugin)], capture_output=True, text=True, timeout=30, check=False, env=_loader_env()
            )
        except (OSError, subprocess.SubprocessError):
            result = None
        if result is not None and (result.returncode == 0 or "not found" in result.stdout):
            missing = []
            for line in result.stdout.splitlines():
                name, sep, where = line.strip().partition("=>")
                if sep and where.strip().startswith("not found"):
                    missing.append(name.strip())
            return list(dict.fromkeys(missing))
    return _missing_by_ctypes(plugin)


def _loader_env() -> dict[str, str]:
    # ldd must resolve the way this process would; LD_PRELOAD of a debugging tool only adds noise.
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["LC_ALL"] = "C"
    return env


def _missing_by_ctypes(plugin: Path) -> list[str]:
    """Without ldd: try each library Qt's desktop plugins are known to need, then the plugin itself."""
    missing = []
    for soname in DEBIAN_PACKAGES:
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(soname)
    if not missing:
        try:
            ctypes.CDLL(str(plugin))
        except OSError as exc:  # a library outside the table: the loader's message names it
            missing.append(str(exc).split(":", 1)[0])
    return missing


def candidate_platforms(env: Mapping[str, str] | None = None) -> list[str]:
    """The platforms Qt will try, in order: QT_QPA_PLATFORM's list, else Wayland in a Wayland session, then xcb."""
    env = os.environ if env is None else env
    asked = env.get("QT_QPA_PLATFORM", "").strip()
    if asked:
        # "xcb:option=value" carries plugin options after the colon.
        return [p.split(":", 1)[0].strip() for p in asked.split(";") if p.strip()]
    names: list[str] = []
    if env.get("WAYLAND_DISPLAY") or env.get("XDG_SESSION_TYPE", "").lower() == "wayland":
        names.append("wayland")
    if env.get("DISPLAY") or not names:
        names.append("xcb")
    return names


def check_platforms(env: Mapping[str, str] | None = None) -> list[PluginCheck]:
    return [
        PluginCheck(name, plugin, tuple(missing_libraries(plugin)) if plugin is not None else ())
        for name in candidate_platforms(env)
        for plugin in [find_plugin(name, env)]
    ]


def debian_package(soname: str) -> str | None:
    """The Debian package that holds a library: the table above, else Debian policy's naming rule (§8.1).

    libfoo.so.N is packaged as libfooN, and as libfoo-N when the name ends in a digit, all lower case.
    """
    if soname in DEBIAN_PACKAGES:
        return DEBIAN_PACKAGES[soname]
    if soname.startswith(("libQt", "libpyside", "libshiboken")):
        return None  # part of PySide6 itself: reinstalling it is the fix, not a system package
    match = re.fullmatch(r"lib([A-Za-z0-9_.+-]+)\.so\.(\d+)", soname)
    if match is None:
        return None
    name, version = match.group(1).lower().replace("_", "-"), match.group(2)
    return f"lib{name}{'-' if name[-1].isdigit() else ''}{version}"


def install_command(libraries: Sequence[str]) -> str | None:
    """`sudo apt-get install …` for the Debian packages that hold these libraries (None if none is known)."""
    packages = [p for p in (debian_package(lib) for lib in libraries) if p is not None]
    return "sudo apt-get install " + " ".join(dict.fromkeys(packages)) if packages else None


def ensure_platform_loadable(env: Mapping[str, str] | None = None) -> str | None:
    """Raise PlatformLibrariesMissing unless one of the platforms Qt will try can load; return that platform.

    Only Linux (and the BSDs) load xcb or Wayland plugins with system libraries; elsewhere this returns None.
    A platform whose plugin this Qt lacks (e.g. a custom name) is left for Qt to report.
    """
    if not sys.platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    checks = check_platforms(env)
    if not checks:
        return None
    for check in checks:
        if check.loadable or check.plugin is None:
            return check.platform
    first = checks[0]
    libs = ", ".join(first.missing)
    command = install_command(first.missing)
    other = "Fedora: xcb-util-cursor xcb-util-wm xcb-util-keysyms; Arch: xcb-util-cursor xcb-util-wm xcb-util-keysyms"
    fix_en = (
        f"Install them (Debian, Ubuntu): {command}" if command else "Install the packages that provide these files"
    ) + f", then start GPT Desk again. Other distributions name the packages differently ({other})."
    fix_ru = (
        f"Установите их (Debian, Ubuntu): {command}" if command else "Установите пакеты, в которых есть эти файлы"
    ) + f", затем запустите GPT Desk снова. В других дистрибутивах пакеты называются иначе ({other})."
    tried = ", ".join(c.platform for c in checks)
    raise PlatformLibrariesMissing(
        Text(
            f"The window cannot open: Qt's '{first.platform}' platform plugin ({first.plugin}) needs system "
            f"libraries that are not installed: {libs}. {fix_en} Tried: {tried}. The terminal commands "
            '(`gptdesk generate "Жили-были"`) work without them.',
            f"Окно не может открыться: модулю платформы Qt «{first.platform}» ({first.plugin}) нужны системные "
            f"библиотеки, которые не установлены: {libs}. {fix_ru} Проверены платформы: {tried}. Команды "
            'терминала (`gptdesk generate "Жили-были"`) работают и без них.',
        ),
        first.platform,
        first.missing,
    )
