"""The model manager dialog: the catalog and the cache, memory per dtype, download / cancel / delete / use."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Qt, QThread, QUrl, Signal, Slot
from PySide6.QtGui import QBrush, QCloseEvent, QColor, QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptdesk.errors import DownloadCancelled, GptDeskError
from gptdesk.i18n import Text, current_language
from gptdesk.models.adapters import list_adapters
from gptdesk.models.cost import available_memory, format_bytes
from gptdesk.models.gguf.converted import cache_total, gguf_root
from gptdesk.models.hub.disk import FreeSpace, free_disk_space
from gptdesk.models.hub.download import pull
from gptdesk.models.hub.progress import DownloadProgress
from gptdesk.models.hub.settings import HubSettings, RetryPolicy
from gptdesk.models.manage import SHOWN_DTYPES, ModelRow, delete_converted, delete_model, find_row, list_models
from gptdesk.ui.quant_costs import QuantCostsPanel
from gptdesk.ui.tables import cell, fits_tip
from gptdesk.ui.workers import start_in_thread

_ID_ROLE = Qt.ItemDataRole.UserRole + 1
_PROGRESS_STEPS = 1000

_COLUMNS: tuple[tuple[str, Text], ...] = (
    ("model", Text("Model", "Модель")),
    ("params", Text("Parameters", "Параметры")),
    ("download", Text("Download", "Загрузка")),
    ("disk", Text("On disk", "На диске")),
    ("converted", Text("GGUF copies", "Копии GGUF")),
    ("adapters", Text("Adapters", "Адаптеры")),
    *((f"ram_{d}", Text(f"RAM {d}", f"ОЗУ {d}")) for d in SHOWN_DTYPES),
    ("licence", Text("Licence", "Лицензия")),
    ("status", Text("Status", "Состояние")),
)
_COL = {key: index for index, (key, _) in enumerate(_COLUMNS)}


class DownloadWorker(QObject):
    """Runs one pull() off the GUI thread; Cancel sets `cancel` directly (a queued signal would wait).

    Signals:
        progress(DownloadProgress): the download moved on (at most ten times a second).
        finished(str): the snapshot folder, once every file is whole and checked.
        failed(BaseException): the download stopped (DownloadCancelled when the user cancelled).
    """

    progress = Signal(object)
    finished = Signal(str)
    failed = Signal(object)

    def __init__(self, name: str, hub: HubSettings, free_space: FreeSpace | None, retry: RetryPolicy | None) -> None:
        super().__init__()
        self.name = name
        self.hub = hub
        self.free_space = free_space
        self.retry = retry
        self.cancel = threading.Event()

    @Slot()
    def run(self) -> None:
        try:
            path = pull(
                self.name,
                hub=self.hub,
                progress=self.progress.emit,
                cancel=self.cancel,
                free_space=self.free_space,
                retry=self.retry,
            )
        except BaseException as exc:  # shown in the dialog; nothing half-registered is left
            self.failed.emit(exc)
            return
        self.finished.emit(str(path))


class ModelManagerDialog(QDialog):
    """Lists the catalog and the Hugging Face cache; downloads, cancels, deletes, opens and picks models.

    Signals:
        model_chosen(str): the user chose a model to load (a catalog id or a hub id for resolve()).
        download_progress(DownloadProgress): a running download moved on.
        download_finished(str, str): the model name and its snapshot folder.
        download_failed(object): the error that stopped a download (DownloadCancelled on Cancel).
    """

    model_chosen = Signal(str)
    download_progress = Signal(object)
    download_finished = Signal(str, str)
    download_failed = Signal(object)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        hub: HubSettings | None = None,
        free_space: FreeSpace | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("model_manager")
        self._hub = hub or HubSettings()
        self._free_space = free_space
        self._retry = retry
        self._rows: list[ModelRow] = []
        self._available = 0
        self._worker: DownloadWorker | None = None
        self._thread: QThread | None = None
        self._downloading: str | None = None
        self._message: Text | None = None
        self._message_error = False
        self._progress_text: Text | None = None

        self.machine_label = QLabel()
        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setObjectName("models")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.costs = QuantCostsPanel(self)

        self.download_button = QPushButton()
        self.cancel_button = QPushButton()
        self.delete_button = QPushButton()
        self.delete_converted_button = QPushButton()
        self.delete_converted_button.setObjectName("delete_converted")
        self.open_button = QPushButton()
        self.use_button = QPushButton()
        self.use_button.setDefault(True)
        actions = QHBoxLayout()
        for button in (
            self.download_button,
            self.cancel_button,
            self.delete_button,
            self.delete_converted_button,
            self.open_button,
        ):
            actions.addWidget(button)
        actions.addStretch(1)
        actions.addWidget(self.use_button)

        self.repo_label = QLabel()
        self.repo_edit = QLineEdit()
        self.repo_edit.setObjectName("hub_id")
        self.repo_label.setBuddy(self.repo_edit)
        self.add_button = QPushButton()
        by_id = QHBoxLayout()
        by_id.addWidget(self.repo_label)
        by_id.addWidget(self.repo_edit, 1)
        by_id.addWidget(self.add_button)

        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, _PROGRESS_STEPS)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_label = QLabel()
        self.progress_label.setWordWrap(True)
        self.message_label = QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.hub_box = QGroupBox()
        self.endpoint_edit = QLineEdit(self._hub.endpoint or "")
        self.endpoint_edit.setObjectName("endpoint")
        self.token_edit = QLineEdit(self._hub.token or "")
        self.token_edit.setObjectName("token")
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.endpoint_label = QLabel()
        self.token_label = QLabel()
        form = QFormLayout(self.hub_box)
        form.addRow(self.endpoint_label, self.endpoint_edit)
        form.addRow(self.token_label, self.token_edit)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(self.machine_label)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.costs)
        layout.addLayout(actions)
        layout.addLayout(by_id)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.progress_label)
        layout.addWidget(self.message_label)
        layout.addWidget(self.hub_box)
        layout.addWidget(self.buttons)

        self.download_button.clicked.connect(self._on_download_clicked)
        self.add_button.clicked.connect(self._on_add_clicked)
        self.repo_edit.returnPressed.connect(self._on_add_clicked)
        self.cancel_button.clicked.connect(self.cancel_download)
        self.delete_button.clicked.connect(self._on_delete_clicked)
        self.delete_converted_button.clicked.connect(self._on_delete_converted_clicked)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.use_button.clicked.connect(self._on_use_clicked)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemSelectionChanged.connect(self._show_costs)
        self.table.itemDoubleClicked.connect(lambda _item: self._on_use_clicked())

        self.resize(1040, 780)
        self.refresh()
        self.retranslate()

    # -- state -------------------------------------------------------------------------------------

    @property
    def hub_settings(self) -> HubSettings:
        """The endpoint and token typed in the dialog (empty: the environment's)."""
        return HubSettings(
            endpoint=self.endpoint_edit.text().strip() or None,
            token=self.token_edit.text().strip() or None,
            cache_dir=self._hub.cache_dir,
        )

    @property
    def downloading(self) -> str | None:
        """The model being downloaded now, if any."""
        return self._downloading

    def rows(self) -> list[ModelRow]:
        return list(self._rows)

    def row_index(self, name: str) -> int:
        """The table row of a catalog name, alias or hub id (-1 if absent)."""
        row = find_row(name, self._rows)
        return self._rows.index(row) if row is not None else -1

    def select(self, name: str) -> None:
        index = self.row_index(name)
        if index >= 0:
            self.table.selectRow(index)

    def selected(self) -> ModelRow | None:
        indexes = self.table.selectionModel().selectedRows()
        if not indexes:
            return None
        return self._rows[indexes[0].row()]

    def refresh(self) -> None:
        """Read the catalog, the cache and the measurements again and refill the tables, keeping the selection."""
        keep = self.selected()
        self._available = available_memory()
        self._rows = list_models(self._hub.resolved_cache(), available=self._available)
        self.table.setRowCount(len(self._rows))
        for index, row in enumerate(self._rows):
            self._cell(index, 0).setData(_ID_ROLE, row.id)
        self._fill_texts()
        if keep is not None:
            self.select(keep.id)
        self._update_buttons()
        self.costs.show_row(self.selected(), self._available, reload=True)

    def _show_costs(self) -> None:
        self.costs.show_row(self.selected(), self._available)

    # -- texts -------------------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def retranslate(self) -> None:
        lang = current_language()
        self.setWindowTitle(Text("Models", "Модели").get(lang))
        self.table.setHorizontalHeaderLabels([label.get(lang) for _, label in _COLUMNS])
        self.cancel_button.setText(Text("Cancel download", "Отменить загрузку").get(lang))
        self.delete_button.setText(Text("Delete", "Удалить").get(lang))
        self.delete_converted_button.setText(Text("Delete GGUF copies", "Удалить копии GGUF").get(lang))
        self.delete_converted_button.setToolTip(
            Text(
                "Delete the model's files converted for the llama.cpp engine; they are made again when needed.",
                "Удалить файлы модели, преобразованные для движка llama.cpp; при надобности они создаются заново.",
            ).get(lang)
        )
        self.open_button.setText(Text("Open folder", "Открыть папку").get(lang))
        self.use_button.setText(Text("Use", "Использовать").get(lang))
        self.repo_label.setText(Text("Any model on the hub:", "Любая модель с хаба:").get(lang))
        self.repo_edit.setPlaceholderText(
            Text(
                "owner/name, e.g. ai-forever/rugpt3small_based_on_gpt2",
                "владелец/имя, например ai-forever/rugpt3small_based_on_gpt2",
            ).get(lang)
        )
        self.add_button.setText(Text("Download", "Скачать").get(lang))
        self.hub_box.setTitle(Text("Hub", "Хаб").get(lang))
        self.endpoint_label.setText(Text("Address (mirror):", "Адрес (зеркало):").get(lang))
        self.endpoint_edit.setPlaceholderText(
            Text("HF_ENDPOINT or https://huggingface.co", "HF_ENDPOINT или https://huggingface.co").get(lang)
        )
        self.token_label.setText(Text("Access token:", "Токен доступа:").get(lang))
        self.token_edit.setPlaceholderText(
            Text(
                "only for gated or private models; default: HF_TOKEN or `hf auth login`",
                "только для закрытых моделей; по умолчанию HF_TOKEN или `hf auth login`",
            ).get(lang)
        )
        self._fill_texts()
        self.costs.retranslate()
        self._update_buttons()
        self._show_message()
        if self._progress_text is not None:
            self.progress_label.setText(self._progress_text.get(lang))

    def _fill_texts(self) -> None:
        lang = current_language()
        free = available_memory()
        disk_free = self._disk_free()
        machine = Text(
            "This computer: {mem} of memory available now; {disk} free for downloads in {dir}. "
            "GGUF copies for the llama.cpp engine: {gguf} in {gguf_dir}.",
            "Этот компьютер: сейчас доступно {mem} памяти; для загрузок свободно {disk} в {dir}. "
            "Копии GGUF для движка llama.cpp: {gguf} в {gguf_dir}.",
        )
        self.machine_label.setText(
            machine.get(lang).format(
                mem=format_bytes(free, lang),
                disk=format_bytes(disk_free, lang) if disk_free is not None else "?",
                dir=self._hub.resolved_cache(),
                gguf=format_bytes(cache_total(), lang),
                gguf_dir=gguf_root(),
            )
        )
        way_out = Text(
            " Choose another dtype, the quantized engine or a smaller model.",
            " Выберите другой тип данных, квантованный движок или модель поменьше.",
        )
        red = QBrush(QColor(180, 30, 30))
        try:
            adapters = list_adapters()
        except (GptDeskError, OSError):
            adapters = []  # an unreadable adapters folder shows none; `gptdesk adapters ls` names the problem
        for index, row in enumerate(self._rows):
            names = {row.id, row.name, *row.aliases}
            mine = [a.manifest for a in adapters if a.manifest.base_model in names]
            cells: dict[str, str] = {
                "model": row.title.get(lang) if row.in_catalog else row.id,
                "params": f"{row.params / 1e6:.0f}M" if row.params else "?",
                "download": format_bytes(row.download_bytes, lang) if row.download_bytes else "?",
                "disk": format_bytes(row.disk_bytes, lang) if row.disk_bytes else "—",
                "converted": ", ".join(f"{f.quant} {format_bytes(f.bytes, lang)}" for f in row.converted) or "—",
                "adapters": ", ".join(m.name for m in mine) or "—",
                "licence": row.licence or Text("see its hub page", "см. страницу на хабе").get(lang),
                "status": self._status_text(row).get(lang),
            }
            for key, text in cells.items():
                self._cell(index, _COL[key]).setText(text)
            self._cell(index, _COL["model"]).setToolTip(f"{row.id}\n{self._description(row).get(lang)}")
            self._cell(index, _COL["converted"]).setToolTip("\n".join(str(f.path) for f in row.converted))
            self._cell(index, _COL["adapters"]).setToolTip(
                "\n".join(
                    Text(
                        f"{m.name}: rank {m.rank}, taught on {', '.join(m.texts_files)}; held-out bits per character "
                        f"{m.heldout_bpc_before:.3f} → {m.heldout_bpc_after:.3f}; {m.created[:10]}",
                        f"{m.name}: ранг {m.rank}, обучен на {', '.join(m.texts_files)}; бит на символ на проверке "
                        f"{m.heldout_bpc_before:.3f} → {m.heldout_bpc_after:.3f}; {m.created[:10]}",
                    ).get(lang)
                    for m in mine
                )
            )
            for dtype in SHOWN_DTYPES:
                item = self._cell(index, _COL[f"ram_{dtype}"])
                need = row.ram_bytes.get(dtype)
                if need is None:
                    item.setText("?")
                    item.setToolTip("")
                    continue
                fits = row.fits.get(dtype, False)
                item.setText(f"{format_bytes(need, lang)} {'✓' if fits else '✗'}")
                tip = fits_tip(fits, format_bytes(need, lang), format_bytes(free, lang))
                item.setToolTip((tip if fits else tip + way_out).get(lang))
                item.setForeground(QBrush() if fits else red)

    def _cell(self, row: int, column: int) -> QTableWidgetItem:
        return cell(self.table, row, column)

    def _description(self, row: ModelRow) -> Text:
        from gptdesk.models.catalog import find_entry

        entry = find_entry(row.id)
        text = entry.description if entry is not None else Text("", "")
        # What each converted file for the llama.cpp engine holds (K-quants fall back on narrow rows).
        from gptdesk.models.gguf.cache import cached_files
        from gptdesk.models.gguf.sizes import describe

        for _path, manifest in cached_files(row.id):
            text = text + Text("\nllama.cpp: ", "\nllama.cpp: ") + describe(manifest)
        return text

    def _status_text(self, row: ModelRow) -> Text:
        if row.id == self._downloading:
            return Text("downloading…", "загружается…")
        text = row.status_text()
        if row.status == "partial":
            text = text + Text(
                f" ({format_bytes(row.partial_bytes)}, can resume)",
                f" ({format_bytes(row.partial_bytes, 'ru')}, можно продолжить)",
            )
        return text

    def _disk_free(self) -> int | None:
        try:
            return (self._free_space or free_disk_space)(self._hub.resolved_cache())
        except OSError:
            return None

    def _update_buttons(self) -> None:
        lang = current_language()
        row = self.selected()
        busy = self._downloading is not None
        can_download = row is not None and row.status in ("absent", "partial")
        resume = row is not None and row.status == "partial"
        self.download_button.setText(
            (Text("Resume download", "Продолжить загрузку") if resume else Text("Download", "Скачать")).get(lang)
        )
        self.download_button.setEnabled(can_download and not busy)
        self.add_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.delete_button.setEnabled(
            row is not None and row.status in ("ready", "partial") and row.id != self._downloading
        )
        self.delete_converted_button.setEnabled(row is not None and bool(row.converted))
        self.open_button.setEnabled(row is not None and (row.local_path is not None or bool(row.repo_dirs)))
        self.use_button.setEnabled(row is not None and row.status in ("ready", "embedded"))

    def _set_message(self, text: Text | None, *, error: bool = False) -> None:
        self._message = text
        self._message_error = error
        self._show_message()

    def _show_message(self) -> None:
        self.message_label.setText(self._message.get() if self._message is not None else "")
        self.message_label.setStyleSheet("color: #b41e1e;" if self._message_error else "")

    # -- actions -----------------------------------------------------------------------------------

    def start_download(self, name: str) -> bool:
        """Start downloading `name` (a catalog name or hub id) in a worker thread; False if one is running."""
        if self._downloading is not None or not name.strip():
            return False
        row = find_row(name, self._rows)
        self._downloading = row.id if row is not None else name.strip()
        self._set_message(None)
        self.progress_bar.setValue(0)
        self._progress_text = Text("Asking the hub for the file list…", "Запрос списка файлов у хаба…")
        self.progress_label.setText(self._progress_text.get())
        worker = DownloadWorker(name.strip(), self.hub_settings, self._free_space, self._retry)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self._worker = worker
        self._thread = start_in_thread(worker, "model-download", parent=self)
        self._fill_texts()
        self._update_buttons()
        return True

    def cancel_download(self) -> None:
        """Stop the running download at the next received block; what was fetched stays for a resume."""
        if self._worker is not None:
            self._worker.cancel.set()
            self._progress_text = Text("Cancelling…", "Отмена…")
            self.progress_label.setText(self._progress_text.get())

    def _on_download_clicked(self) -> None:
        row = self.selected()
        if row is not None:
            self.start_download(row.id)

    def _on_add_clicked(self) -> None:
        self.start_download(self.repo_edit.text())

    def _on_delete_clicked(self) -> None:
        row = self.selected()
        if row is None or row.status not in ("ready", "partial"):
            return
        lang = current_language()
        question = Text(
            "Delete {name} from the cache ({size}, GGUF copies included)? Other programs that use the Hugging "
            "Face cache lose it too.",
            "Удалить {name} из кэша ({size} вместе с копиями GGUF)? Другие программы, которые пользуются кэшем "
            "Hugging Face, тоже её лишатся.",
        )
        answer = QMessageBox.question(
            self,
            Text("Delete model", "Удаление модели").get(lang),
            question.get(lang).format(name=row.id, size=format_bytes(row.disk_bytes + row.converted_bytes, lang)),
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            freed = delete_model(row.id, self._hub.resolved_cache())
        except (GptDeskError, OSError) as exc:
            self._set_message(_error_text(exc), error=True)
            return
        self._set_message(
            Text("Deleted {name}: {size} freed.", "Удалена {name}: освобождено {size}.").format(
                name=row.id, size=format_bytes(freed, lang)
            )
        )
        self.refresh()

    def _on_delete_converted_clicked(self) -> None:
        """Delete the selected model's GGUF copies (no question: they are made again from the download)."""
        row = self.selected()
        if row is None or not row.converted:
            return
        try:
            freed = delete_converted(row.id)
        except (GptDeskError, OSError) as exc:
            self._set_message(_error_text(exc), error=True)
            return
        self._set_message(
            Text(
                "Deleted the GGUF copies of {name}: {size} freed.",
                "Удалены копии GGUF модели {name}: освобождено {size}.",
            ).format(name=row.id, size=format_bytes(freed, current_language()))
        )
        self.refresh()

    def _on_open_clicked(self) -> None:
        row = self.selected()
        if row is None:
            return
        folder: Path | None = row.local_path or (row.repo_dirs[0] if row.repo_dirs else None)
        if folder is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def _on_use_clicked(self) -> None:
        row = self.selected()
        if row is None or row.status not in ("ready", "embedded"):
            return
        self.model_chosen.emit(row.id)
        self.accept()

    # -- worker signals ----------------------------------------------------------------------------

    def _on_progress(self, progress: DownloadProgress) -> None:
        self.progress_bar.setValue(int(progress.fraction * _PROGRESS_STEPS))
        self._progress_text = progress.text()
        self.progress_label.setText(self._progress_text.get())
        self.download_progress.emit(progress)

    def _on_finished(self, path: str) -> None:
        name = self._downloading or ""
        self._end_download()
        self.progress_bar.setValue(_PROGRESS_STEPS)
        self._set_message(
            Text(
                "{name} is downloaded and checked: choose Use to load it.",
                "{name} скачана и проверена: нажмите «Использовать», чтобы загрузить её.",
            ).format(name=name)
        )
        self.refresh()
        self.select(name)
        self.download_finished.emit(name, path)

    def _on_failed(self, exc: BaseException) -> None:
        self._end_download()
        self._set_message(_error_text(exc), error=not isinstance(exc, DownloadCancelled))
        self.refresh()
        self.download_failed.emit(exc)

    def _end_download(self) -> None:
        self._downloading = None
        self._worker = None
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.quit()
            thread.wait()
            thread.deleteLater()
        self._progress_text = None
        self.progress_label.setText("")

    # -- closing -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Cancel a running download and wait for its thread (the partial file stays for a resume); close the
        perplexity dialog opened from the cost panel."""
        self.costs.stop()
        thread = self._thread
        if self._worker is not None:
            self._worker.cancel.set()
        if thread is not None:
            thread.quit()
            thread.wait()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop()
        super().closeEvent(event)

    def reject(self) -> None:
        self.stop()
        super().reject()


def _error_text(exc: BaseException) -> Text:
    if isinstance(exc, GptDeskError):
        return exc.text
    return Text(
        f"The download failed unexpectedly ({type(exc).__name__}: {exc}). Please report it.",
        f"Загрузка неожиданно прервалась ({type(exc).__name__}: {exc}). Сообщите об этом.",
    )
