"""The window's languages through Qt's translation system: .ts sources compiled to .qm catalogs.

Source strings are English (`self.tr(...)` in the widgets); `locale/gptdesk_ru.ts` holds the
Russian ones and is compiled to `gptdesk_ru.qm` with the lupdate and lrelease tools that ship in
the PySide6 wheel. After changing a user-facing string run

    python -m gptdesk.ui.translations

which re-extracts the strings (keeping existing translations), reports untranslated ones and
compiles the catalog. Texts that also serve the CLI and the server (setting help, error
messages) stay in gptdesk.i18n.Text and follow the same language switch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

from gptdesk.i18n import LANGUAGES, Lang, current_language, set_language

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
TS_FILE = LOCALE_DIR / "gptdesk_ru.ts"
QM_FILE = LOCALE_DIR / "gptdesk_ru.qm"
_LOCALE_VARS = ("GPTDESK_LANG", "LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")


def detect_language(explicit: str | None = None) -> Lang:
    """--lang if given, else GPTDESK_LANG or the POSIX locale variables, else the system locale."""
    if explicit in LANGUAGES:
        return explicit
    if any(os.environ.get(var) for var in _LOCALE_VARS):
        return current_language()
    # Windows and macOS set no locale variables; Qt asks the system.
    return "ru" if QLocale.system().language() == QLocale.Language.Russian else "en"


class Translations:
    """Installs GPT Desk's and Qt's own catalogs for a language; switching works at run time.

    Installing or removing a translator sends QEvent.LanguageChange to every widget, whose
    changeEvent() then sets its texts again.
    """

    _shared: Translations | None = None

    @classmethod
    def instance(cls, app: QCoreApplication) -> Translations:
        """The application's one set of translators (a second set could not remove the first's)."""
        if cls._shared is None or cls._shared._app is not app:
            cls._shared = cls(app)
        return cls._shared

    def __init__(self, app: QCoreApplication) -> None:
        self._app = app
        self._ours = QTranslator(app)
        self._qt = QTranslator(app)
        self._installed = False
        self.language: Lang = "en"

    def apply(self, lang: Lang) -> None:
        if self._installed:
            self._app.removeTranslator(self._ours)
            self._app.removeTranslator(self._qt)
            self._installed = False
        set_language(lang)
        self.language = lang
        QLocale.setDefault(QLocale(QLocale.Language.Russian if lang == "ru" else QLocale.Language.English))
        if lang == "ru":
            if not self._ours.load(str(QM_FILE)):
                raise FileNotFoundError(f"the Russian catalog {QM_FILE} is missing; reinstall GPT Desk")
            # Qt's own strings (standard buttons, context menus); optional, so a missing file is fine.
            self._qt.load("qtbase_ru", QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath))
            self._app.installTranslator(self._qt)
            self._app.installTranslator(self._ours)
            self._installed = True
        else:
            # No catalog to install, so tell the widgets ourselves.
            from PySide6.QtCore import QEvent

            QCoreApplication.sendEvent(self._app, QEvent(QEvent.Type.LanguageChange))


def _tool(name: str) -> str:
    import PySide6

    folder = Path(PySide6.__file__).resolve().parent
    for candidate in (folder / name, folder / f"{name}.exe"):
        if candidate.exists():
            return str(candidate)
    raise FileNotFoundError(f"{name} is not in the PySide6 wheel at {folder}")


def sources() -> list[str]:
    return sorted(str(p) for p in Path(__file__).resolve().parent.rglob("*.py"))  # ui/lab/ too


def extract(ts_file: Path) -> None:
    """Run lupdate over the window's sources into `ts_file` (existing translations are kept)."""
    subprocess.run(
        [_tool("lupdate"), *sources(), "-locations", "none", "-no-obsolete", "-ts", str(ts_file)],
        check=True,
        capture_output=True,
    )


def compile_catalog(ts_file: Path, qm_file: Path) -> None:
    subprocess.run([_tool("lrelease"), str(ts_file), "-qm", str(qm_file)], check=True, capture_output=True)


def untranslated(ts_file: Path) -> list[tuple[str, str]]:
    """(context, source) of every message in `ts_file` without a finished translation."""
    missing = []
    for context in ET.parse(ts_file).getroot().iter("context"):
        name = context.findtext("name") or ""
        for message in context.iter("message"):
            translation = message.find("translation")
            # A plural message holds its forms in <numerusform> children, each of which must be filled.
            forms = [] if translation is None else translation.findall("numerusform")
            texts = [f.text for f in forms] if forms else [None if translation is None else translation.text]
            if (
                translation is None
                or translation.get("type") in ("unfinished", "vanished", "obsolete")
                or not all((text or "").strip() for text in texts)
            ):
                missing.append((name, message.findtext("source") or ""))
    return missing


def main() -> int:
    extract(TS_FILE)
    missing = untranslated(TS_FILE)
    compile_catalog(TS_FILE, QM_FILE)
    for context, source in missing:
        print(f"untranslated: [{context}] {source!r}", file=sys.stderr)
    print(f"{TS_FILE.name}: {len(missing)} untranslated; compiled {QM_FILE.name}")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
