"""Switching the interface language at run time, and remembering the choice."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QSettings, Signal
from PySide6.QtGui import QAction, QActionGroup

from gptdesk.i18n import Lang, current_language
from gptdesk.ui.translations import Translations

LANGUAGE_NAMES: dict[Lang, str] = {"ru": "Русский", "en": "English"}


class LanguageSwitcher(QObject):
    """The Language menu's actions; choosing one installs its catalog and retranslates every widget.

    Signals:
        changed(str): the interface language is now this ("ru" or "en").
    """

    changed = Signal(str)

    def __init__(self, translations: Translations | None, settings: QSettings, parent: QObject) -> None:
        super().__init__(parent)
        self.translations = translations
        self.settings = settings
        self.group = QActionGroup(self)
        self.actions: dict[str, QAction] = {}
        for lang, name in LANGUAGE_NAMES.items():
            action = QAction(name, self)
            action.setCheckable(True)
            action.triggered.connect(lambda _checked=False, code=lang: self.apply(code))
            self.group.addAction(action)
            self.actions[lang] = action
        self.actions[current_language()].setChecked(True)

    @property
    def saved(self) -> str | None:
        """The language chosen in an earlier session, if any."""
        value = self.settings.value("language")
        return str(value) if value in LANGUAGE_NAMES else None

    def apply(self, lang: str) -> Lang:
        """Switch to `lang` now (Russian or English; anything else is English) and remember it."""
        code: Lang = "ru" if lang == "ru" else "en"
        if self.translations is not None:
            self.translations.apply(code)
        else:
            from gptdesk.i18n import set_language

            set_language(code)
        # Qt posts LanguageChange to the top-level widgets; deliver it now, so every widget
        # (and anything that reads its texts right after) is in the new language at once.
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LanguageChange)
        self.actions[code].setChecked(True)
        self.settings.setValue("language", code)
        self.changed.emit(code)
        return code
