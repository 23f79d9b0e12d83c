"""The history sidebar: past generations, searchable; open, reproduce or export one or all."""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gptdesk.history.errors import HistoryError
from gptdesk.history.export import FORMATS
from gptdesk.history.store import GenerationRecord, HistoryStore

_ID_ROLE = Qt.ItemDataRole.UserRole + 1


def _when(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return iso


class HistoryPanel(QWidget):
    """Lists generations from the store, most recent first.

    Signals:
        open_requested(int): show this generation in the editor.
        reproduce_requested(int): run this generation again with its seed.
        export_requested(object, str): export these ids (None: all shown) in this format.
        failed(HistoryError): the store could not be read.
    """

    open_requested = Signal(int)
    reproduce_requested = Signal(int)
    export_requested = Signal(object, str)
    failed = Signal(object)

    def __init__(self, store: HistoryStore | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store = store
        self.records: list[GenerationRecord] = []
        self.search = QLineEdit()
        self.search.setObjectName("history_search")
        self.search.setClearButtonEnabled(True)
        self.search_label = QLabel()
        self.search_label.setBuddy(self.search)
        self.list = QListWidget()
        self.list.setObjectName("history_list")
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        self.list.itemActivated.connect(self._on_item_activated)
        self.list.currentItemChanged.connect(self._update_buttons)
        self.open_button = QPushButton()
        self.open_button.setObjectName("history_open")
        self.open_button.clicked.connect(self._on_open_clicked)
        self.reproduce_button = QPushButton()
        self.reproduce_button.setObjectName("history_reproduce")
        self.reproduce_button.clicked.connect(self._on_reproduce_clicked)
        self.export_button = QToolButton()
        self.export_button.setObjectName("history_export")
        self.export_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.export_menu = QMenu(self)
        self.export_actions: dict[tuple[str, str], QAction] = {}
        for scope in ("one", "all"):
            for fmt in FORMATS:
                action = self.export_menu.addAction("")
                action.triggered.connect(lambda _=False, s=scope, f=fmt: self._on_export_triggered(s, f))
                self.export_actions[(scope, fmt)] = action
            if scope == "one":
                self.export_menu.addSeparator()
        self.export_button.setMenu(self.export_menu)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(200)
        self._debounce.timeout.connect(self.refresh)
        self.search.textChanged.connect(self._debounce.start)

        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.reproduce_button)
        buttons.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.search_label)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self.retranslate()
        self.refresh()

    def refresh(self) -> None:
        """Read the list again from the store, keeping the selection where possible."""
        if self.store is None:
            self.list.clear()
            self._update_buttons()
            return
        selected = self.selected_id()
        try:
            self.records = self.store.find(self.search.text())
        except HistoryError as exc:
            self.failed.emit(exc)
            return
        self.list.clear()
        for record in self.records:
            item = QListWidgetItem(self._item_text(record))
            item.setData(_ID_ROLE, record.id)
            item.setToolTip(record.prompt[:500])
            self.list.addItem(item)
            if record.id == selected:
                self.list.setCurrentItem(item)
        self._update_buttons()

    def _item_text(self, record: GenerationRecord) -> str:
        status = {
            "running": self.tr("running"),
            "finished": self.tr("finished"),
            "cancelled": self.tr("stopped"),
            "failed": self.tr("failed"),
            "interrupted": self.tr("interrupted"),
        }.get(record.status, record.status)
        tokens = record.generated_tokens if record.generated_tokens is not None else "…"
        return f"{record.title(70) or '—'}\n{_when(record.created_at)} · {record.model_id or '?'} · {status} · {tokens}"

    def selected_id(self) -> int | None:
        item = self.list.currentItem()
        return int(item.data(_ID_ROLE)) if item is not None else None

    def select(self, gen_id: int) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(_ID_ROLE) == gen_id:
                self.list.setCurrentItem(item)
                return

    def _update_buttons(self, *_: object) -> None:
        has = self.selected_id() is not None
        self.open_button.setEnabled(has)
        self.reproduce_button.setEnabled(has)
        for (scope, _fmt), action in self.export_actions.items():
            action.setEnabled(has if scope == "one" else self.list.count() > 0)
        self.export_button.setEnabled(self.list.count() > 0)

    def _on_item_activated(self, item: QListWidgetItem) -> None:
        self.open_requested.emit(int(item.data(_ID_ROLE)))

    def _on_open_clicked(self) -> None:
        gen_id = self.selected_id()
        if gen_id is not None:
            self.open_requested.emit(gen_id)

    def _on_reproduce_clicked(self) -> None:
        gen_id = self.selected_id()
        if gen_id is not None:
            self.reproduce_requested.emit(gen_id)

    def _on_export_triggered(self, scope: str, fmt: str) -> None:
        if scope == "one":
            gen_id = self.selected_id()
            if gen_id is None:
                return
            self.export_requested.emit([gen_id], fmt)
        else:
            self.export_requested.emit(None, fmt)

    def retranslate(self) -> None:
        self.search_label.setText(self.tr("&Search history:"))
        self.search.setPlaceholderText(self.tr("Words from the prompt, the text or the model"))
        self.search.setAccessibleName(self.tr("Search history"))
        self.list.setAccessibleName(self.tr("Past generations"))
        self.open_button.setText(self.tr("&Open"))
        self.open_button.setToolTip(self.tr("Show this generation's prompt, text and settings"))
        self.open_button.setAccessibleName(self.tr("Open generation"))
        self.reproduce_button.setText(self.tr("&Reproduce"))
        self.reproduce_button.setToolTip(self.tr("Run it again with the same model, settings and seed"))
        self.reproduce_button.setAccessibleName(self.tr("Reproduce generation"))
        self.export_button.setText(self.tr("E&xport"))
        self.export_button.setToolTip(self.tr("Save one generation or the whole history to a file"))
        self.export_button.setAccessibleName(self.tr("Export"))
        names = {"markdown": "Markdown", "json": "JSON", "text": self.tr("plain text")}
        for (scope, fmt), action in self.export_actions.items():
            if scope == "one":
                action.setText(self.tr("This generation as {fmt}…").format(fmt=names[fmt]))
            else:
                action.setText(self.tr("All shown as {fmt}…").format(fmt=names[fmt]))
        for row, record in enumerate(self.records[: self.list.count()]):
            self.list.item(row).setText(self._item_text(record))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
