"""The model picker (embedded, catalog, a folder, a remote server) and the remote-server dialog."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from gptdesk.i18n import current_language
from gptdesk.models.catalog import CATALOG, EMBEDDED_ID
from gptdesk.models.cost import format_bytes

_KIND_ROLE = Qt.ItemDataRole.UserRole + 1
_KEY_ROLE = Qt.ItemDataRole.UserRole + 2


class ModelPicker(QWidget):
    """A combo box of models; choosing one asks the window to load it.

    Signals:
        model_requested(str, object): kind ("catalog", "folder", "remote") and key (a catalog id,
            a folder path, a URL; None for "folder" and "remote", which open a dialog first).
    """

    model_requested = Signal(str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel()
        self.combo = QComboBox()
        self.combo.setObjectName("model")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.combo.setMinimumContentsLength(28)
        self.label.setBuddy(self.combo)
        self.presence: dict[str, Path | None] = {}
        self._current: tuple[str, object] = ("catalog", EMBEDDED_ID)
        self._custom_label = ""
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 0, 4, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.combo)
        self._rebuild()
        self.combo.activated.connect(self._on_activated)
        self.retranslate()

    def _rebuild(self) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        for entry in CATALOG:
            self.combo.addItem("")
            index = self.combo.count() - 1
            self.combo.setItemData(index, "catalog", _KIND_ROLE)
            self.combo.setItemData(index, entry.id, _KEY_ROLE)
        kind, key = self._current
        if kind in ("folder", "remote"):
            self.combo.addItem("")
            index = self.combo.count() - 1
            self.combo.setItemData(index, kind, _KIND_ROLE)
            self.combo.setItemData(index, key, _KEY_ROLE)
        self.combo.insertSeparator(self.combo.count())
        for action in ("folder", "remote"):
            self.combo.addItem("")
            index = self.combo.count() - 1
            self.combo.setItemData(index, action, _KIND_ROLE)
            self.combo.setItemData(index, None, _KEY_ROLE)
        self.combo.blockSignals(False)
        self._update_texts()
        self._select_current()

    def _update_texts(self) -> None:
        lang = current_language()
        for index in range(self.combo.count()):
            kind = self.combo.itemData(index, _KIND_ROLE)
            key = self.combo.itemData(index, _KEY_ROLE)
            if kind == "catalog":
                entry = next(e for e in CATALOG if e.id == key)
                if key == EMBEDDED_ID:
                    state = self.tr("works offline")
                elif key not in self.presence:
                    state = "…"
                elif self.presence[key] is not None:
                    state = self.tr("on this computer")
                else:
                    state = self.tr("download {size}").format(size=format_bytes(entry.download_bytes, lang))
                self.combo.setItemText(index, f"{entry.title.get(lang)} — {state}")
                self.combo.setItemData(index, entry.description.get(lang), Qt.ItemDataRole.ToolTipRole)
            elif kind in ("folder", "remote") and key is not None:
                self.combo.setItemText(index, self._custom_label)
                self.combo.setItemData(index, str(key), Qt.ItemDataRole.ToolTipRole)
            elif kind == "folder":
                self.combo.setItemText(index, self.tr("Open folder…"))
                self.combo.setItemData(
                    index, self.tr("Load a GPT-2 model saved in a folder on this computer"), Qt.ItemDataRole.ToolTipRole
                )
            elif kind == "remote":
                self.combo.setItemText(index, self.tr("Remote server…"))
                self.combo.setItemData(
                    index,
                    self.tr("Use a model on an OpenAI-compatible server (vLLM, llama.cpp, Ollama, GPT Desk)"),
                    Qt.ItemDataRole.ToolTipRole,
                )

    def _select_current(self) -> None:
        kind, key = self._current
        for index in range(self.combo.count()):
            if self.combo.itemData(index, _KIND_ROLE) == kind and self.combo.itemData(index, _KEY_ROLE) == key:
                self.combo.setCurrentIndex(index)
                return

    def set_presence(self, presence: dict[str, Path | None]) -> None:
        self.presence = dict(presence)
        self._update_texts()

    def set_current(self, kind: str, key: object, label: str = "") -> None:
        """Show the loaded model as selected (a folder or a server gets an entry of its own)."""
        self._current = (kind, key)
        self._custom_label = label
        self._rebuild()

    def revert(self) -> None:
        """Select the loaded model again (after a cancelled dialog or a failed load)."""
        self._select_current()

    def _on_activated(self, index: int) -> None:
        kind = str(self.combo.itemData(index, _KIND_ROLE))
        key = self.combo.itemData(index, _KEY_ROLE)
        if (kind, key) == self._current:
            return
        self.model_requested.emit(kind, key)

    def request(self, kind: str, key: object = None) -> None:
        """Choose an entry as if the user had (used by tests and menu actions)."""
        for index in range(self.combo.count()):
            if self.combo.itemData(index, _KIND_ROLE) == kind and self.combo.itemData(index, _KEY_ROLE) == key:
                self.combo.setCurrentIndex(index)
                self._on_activated(index)
                return
        raise KeyError((kind, key))

    def retranslate(self) -> None:
        self.label.setText(self.tr("&Model:"))
        self.combo.setAccessibleName(self.tr("Model"))
        self.combo.setToolTip(self.tr("The model that writes the text; choosing another loads it"))
        self._update_texts()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


class RemoteDialog(QDialog):
    """Asks for an OpenAI-compatible server: its URL, the model name and an optional API key."""

    def __init__(self, parent: QWidget | None = None, *, url: str = "", model: str = "") -> None:
        super().__init__(parent)
        self.setObjectName("remote_dialog")
        self.url = QLineEdit(url or "http://127.0.0.1:8000/v1")
        self.url.setObjectName("remote_url")
        self.model = QLineEdit(model)
        self.model.setObjectName("remote_model")
        self.api_key = QLineEdit()
        self.api_key.setObjectName("remote_api_key")
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.explanation = QLabel()
        self.explanation.setWordWrap(True)
        form = QFormLayout()
        self.url_label = QLabel()
        self.model_label = QLabel()
        self.key_label = QLabel()
        for label, field in (
            (self.url_label, self.url),
            (self.model_label, self.model),
            (self.key_label, self.api_key),
        ):
            label.setBuddy(field)
            form.addRow(label, field)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.explanation)
        layout.addLayout(form)
        layout.addWidget(self.buttons)
        self.url.textChanged.connect(self._on_url_changed)
        self.retranslate()
        self._on_url_changed()

    def values(self) -> tuple[str, str | None, str | None]:
        """(base URL, model or None, API key or None)."""
        return self.url.text().strip(), self.model.text().strip() or None, self.api_key.text() or None

    def _on_url_changed(self, *_: object) -> None:
        ok = self.url.text().strip().startswith(("http://", "https://"))
        button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        button.setEnabled(ok)
        button.setToolTip("" if ok else self.tr("The URL must start with http:// or https://"))

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Remote server"))
        self.explanation.setText(
            self.tr(
                "Connect to a server that speaks the OpenAI completions protocol: vLLM, TGI, "
                "llama.cpp server, Ollama or another GPT Desk."
            )
        )
        self.url_label.setText(self.tr("Server &URL:"))
        self.model_label.setText(self.tr("M&odel (empty: the server's default):"))
        self.key_label.setText(self.tr("API &key (optional):"))
        self.url.setAccessibleName(self.tr("Server URL"))
        self.model.setAccessibleName(self.tr("Model name on the server"))
        self.api_key.setAccessibleName(self.tr("API key"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
