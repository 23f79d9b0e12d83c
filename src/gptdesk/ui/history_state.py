"""Whether history is saving, said persistently in the status bar; what it could not save is kept and retried."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QStyle, QToolButton, QWidget

from gptdesk.engine.base import Engine
from gptdesk.errors import GptDeskError
from gptdesk.history.errors import HistoryError, HistoryUnavailableError
from gptdesk.history.export import export
from gptdesk.history.recorder import Backlog, LiveRecorder
from gptdesk.history.store import GenerationRecord, HistoryStore, default_path, open_history
from gptdesk.i18n import Text
from gptdesk.settings.generation import GenerationSettings
from gptdesk.ui.messages import Messages
from gptdesk.ui.workers import CallWorker, Progress, WorkerThreads

#: How long the GUI thread waits for another program's lock when storing a prompt: longer would
#: freeze the window; a prompt that meets the lock is kept in memory and written by the retries.
BEGIN_TIMEOUT_S = 0.05
#: How long the recorder's own writes (off the GUI thread) wait for a lock before keeping the rest
#: in memory: another GPT Desk holds it for milliseconds; longer would delay the end of a generation.
WRITE_TIMEOUT_S = 1.0
#: Milliseconds between background attempts to reopen or write the history while it is off.
RETRY_MS = 3000

_OFF = HistoryUnavailableError(Text("History is turned off.", "История отключена."), "off")


class HistoryKeeper(QObject):
    """The window's side of the history store.

    Every generation gets a recorder; one the store cannot take (damaged, locked, read-only, full)
    is kept in memory (`backlog`) and written by a background retry once the store can take it.
    While that is so, `button` in the status bar says so until it is resolved, with the reason, a
    retry and an export of what is kept; closing the window offers the export.

    Signals:
        store_changed(object): a new HistoryStore (or None) is in use (reopened after a fault).
        state_changed(): saving stopped or resumed, or the number of kept generations changed.
    """

    store_changed = Signal(object)
    state_changed = Signal()

    def __init__(
        self,
        store: HistoryStore | None,
        messages: Messages,
        threads: WorkerThreads,
        *,
        error: HistoryError | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.store = store
        self.path = store.path if store is not None else default_path()
        self.messages = messages
        self.threads = threads
        self.backlog = Backlog()
        self.closing = False
        #: Why history is not saving now (None: it is).
        self.problem: HistoryError | None = store.problem if store is not None else error or _OFF
        self._retrying = False
        self._parent = parent
        self.button = QToolButton()
        self.button.setObjectName("history_state")
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.button.setAutoRaise(True)
        self.button.setIcon(self.button.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning))
        self.button.setToolButtonStyle(self.button.toolButtonStyle().ToolButtonTextBesideIcon)
        self.menu = QMenu(self.button)
        self.act_retry = QAction(self.menu)
        self.act_retry.triggered.connect(lambda _=False: self.retry())
        self.act_export = QAction(self.menu)
        self.act_export.triggered.connect(lambda _=False: self.export_unsaved())
        self.menu.addAction(self.act_retry)
        self.menu.addAction(self.act_export)
        self.button.setMenu(self.menu)
        self._timer = QTimer(self)
        self._timer.setInterval(RETRY_MS)
        self._timer.timeout.connect(self.retry)
        self.button.installEventFilter(self)
        self._update()

    # -- state -----------------------------------------------------------------------------------

    @property
    def saving(self) -> bool:
        """Whether new generations go to the history now, and nothing is waiting to be written."""
        return self.problem is None and len(self.backlog) == 0

    @property
    def readable(self) -> bool:
        return self.store is not None

    def _update(self) -> None:
        saving = self.saving
        self.button.setVisible(not saving)
        if saving:
            self._timer.stop()
        elif not self._timer.isActive() and not self.closing:
            self._timer.start()
        self.retranslate()
        self.state_changed.emit()

    def retranslate(self) -> None:
        count = len(self.backlog)
        reason = self.problem.reason if self.problem is not None and hasattr(self.problem, "reason") else ""
        if self.store is None:
            title = self.tr("History is off")
        elif self.store.read_only:
            title = self.tr("History is read-only")
        elif reason == "locked":
            title = self.tr("History is locked")
        else:
            title = self.tr("History is not saving")
        if count:
            title += " · " + self.tr("{n} not saved").format(n=count)
        self.button.setText(title)
        lines = []
        if self.problem is not None:
            lines.append(self.problem.text.get())
        if self.store is not None:
            lines.append(self.tr("Past generations can still be browsed and searched."))
        lines.append(
            self.tr(
                "New generations are kept in memory and saved when the history can be written again "
                "(GPT Desk retries every few seconds). Export them to keep them in a file now."
            )
        )
        tip = "\n\n".join(lines)
        self.button.setToolTip(tip)
        self.button.setAccessibleName(title)
        self.button.setAccessibleDescription(tip)
        self.act_retry.setText(self.tr("&Try again now"))
        self.act_export.setText(self.tr("&Export generations not saved…"))
        self.act_export.setEnabled(count > 0)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.button and event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        return super().eventFilter(watched, event)

    # -- recording -------------------------------------------------------------------------------

    def begin(
        self,
        prompt: str,
        settings: GenerationSettings,
        *,
        seed: int,
        engine: Engine,
        kind: str,
        parent_id: int | None,
    ) -> LiveRecorder:
        """A recorder for a generation about to start: into the history, or kept in memory."""
        recorder = LiveRecorder.start_or_keep(
            self.store,
            prompt,
            settings,
            seed=seed,
            info=engine.info,
            engine=engine.name,
            kind=kind,
            parent_id=parent_id,
            timeout=BEGIN_TIMEOUT_S,
            write_timeout=WRITE_TIMEOUT_S,
        )
        if recorder.writing:
            self.messages.clear()
        elif recorder.error is not None and self.problem is None:
            self.problem = recorder.error
            self._update()
        return recorder

    def end(self, recorder: LiveRecorder | None) -> None:
        """The recorder's generation ended: keep it if the history does not hold it."""
        if recorder is None:
            return
        pending = recorder.unsaved()
        if pending is None:
            return
        self.backlog.add(pending)
        if self.problem is None:
            self.problem = recorder.error
        self._update()

    def report_failure(self, exc: object) -> None:
        if self.closing:
            return
        text = exc.text if isinstance(exc, GptDeskError) else Text(str(exc), str(exc))
        self.messages.show(Text("History: ", "История: ") + text, "warning")

    def record(self, gen_id: int) -> GenerationRecord | None:
        if self.store is None:
            return None
        try:
            return self.store.get(gen_id)
        except HistoryError as exc:
            self.report_failure(exc)
            return None

    # -- retrying --------------------------------------------------------------------------------

    def retry(self) -> None:
        """In a worker: reopen the history if needed, check it can be written, write what is kept."""
        if self._retrying or self.closing or self.saving:
            return
        self._retrying = True
        store, path, backlog = self.store, self.path, self.backlog

        def attempt(_progress: Progress) -> tuple[HistoryStore | None, HistoryError | None, int]:
            current = store
            if current is None or current.read_only:
                try:
                    current = open_history(path)
                except HistoryError as exc:
                    return store, exc, 0
            try:
                current.check_writable()
                written = backlog.write_to(current)
            except HistoryError as exc:
                return current, exc, 0
            return current, None, written

        worker = CallWorker(attempt)
        worker.finished.connect(self._on_retried)
        worker.failed.connect(self._on_retry_failed)
        self.threads.start("history", worker)

    def _on_retried(self, result: object) -> None:
        self._retrying = False
        if self.closing or not isinstance(result, tuple):
            return
        store, problem, written = result
        if store is not self.store:
            old, self.store = self.store, store
            if old is not None:
                old.close()
            self.store_changed.emit(store)
        self.problem = problem
        self._update()
        if self.saving:
            self.messages.show(
                Text(
                    f"History is saving again; {written} kept generations were written to it.",
                    f"История снова сохраняется; записано отложенных генераций: {written}.",
                )
                if written
                else Text("History is saving again.", "История снова сохраняется."),
                "info",
            )

    def _on_retry_failed(self, exc: object) -> None:
        self._retrying = False  # a bug, not the environment: say it, and keep what is kept
        self.report_failure(exc)

    # -- exporting and closing -------------------------------------------------------------------

    def export_unsaved(self) -> bool:
        """Save the kept generations to a file the user picks. True if they were written."""
        pending = self.backlog.items()
        if not pending:
            return True
        json_filter, markdown_filter = self.tr("JSON (*.json)"), self.tr("Markdown (*.md)")
        path, chosen = QFileDialog.getSaveFileName(
            self._parent,
            self.tr("Export generations not saved in history"),
            str(Path.home() / "gptdesk-not-saved.json"),
            f"{json_filter};;{markdown_filter}",
        )
        if not path:
            return False
        fmt = (
            "markdown" if path.endswith(".md") or (chosen == markdown_filter and "." not in Path(path).name) else "json"
        )
        try:
            Path(path).write_text(export([p.record() for p in pending], fmt), encoding="utf-8")
        except OSError as exc:
            self.messages.show(
                Text(
                    f"Could not write {path}: {exc.strerror or exc}. Choose another folder.",
                    f"Не удалось записать {path}: {exc.strerror or exc}. Выберите другую папку.",
                ),
                "error",
            )
            return False
        self.messages.show(
            Text(
                f"Exported {len(pending)} generations not saved in history to {path}.",
                f"Генерации, не сохранённые в истории ({len(pending)}), экспортированы в {path}.",
            ),
            "info",
        )
        return True

    def confirm_close(self) -> bool:
        """Before the window closes: write what is kept if the history is back, else ask the user."""
        if not len(self.backlog):
            return True
        store = self.store
        if store is not None and not store.read_only:
            try:
                store.check_writable()
                self.backlog.write_to(store, timeout=1.0)
                return True
            except HistoryError:
                pass
        answer = self.ask_on_close(len(self.backlog))
        if answer == "export":
            return self.export_unsaved()
        return answer == "discard"

    def ask_on_close(self, count: int) -> str:
        """ "export", "discard" or "cancel" (a dialog; tests replace it)."""
        box = QMessageBox(self._parent)
        box.setIcon(QMessageBox.Icon.Warning)
        box.setWindowTitle(self.tr("Generations not saved"))
        problem = self.problem.text.get() if self.problem is not None else ""
        box.setText(self.tr("{n} generations could not be saved in history.").format(n=count))
        box.setInformativeText(problem + "\n\n" + self.tr("Export them to a file before closing?"))
        export_button = box.addButton(self.tr("&Export…"), QMessageBox.ButtonRole.AcceptRole)
        discard_button = box.addButton(self.tr("Close &without saving"), QMessageBox.ButtonRole.DestructiveRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(export_button)
        box.exec()
        clicked = box.clickedButton()
        if clicked is export_button:
            return "export"
        if clicked is discard_button:
            return "discard"
        return "cancel"

    def close(self) -> None:
        self.closing = True
        self._timer.stop()
        if self.store is not None:
            self.store.close()
