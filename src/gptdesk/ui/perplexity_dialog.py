"""Tools > "How well does this model know my text?": bits per character of a model on the user's text."""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QThread, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from gptdesk.errors import GptDeskError
from gptdesk.evaluate.perplexity import METHOD, SCORING_ENGINES, PerplexityProgress, PerplexityResult
from gptdesk.i18n import Text, current_language
from gptdesk.ui.workers import start_in_thread


class PerplexityWorker(QObject):
    """Loads a local engine for scoring and measures one text, off the GUI thread.

    Signals:
        loading(Text, float | None): the model is being found, converted or loaded.
        progress(PerplexityProgress): a window was scored.
        finished(PerplexityResult): the measure is done (or stopped: `complete` is False).
        failed(BaseException): loading or scoring raised.
    """

    loading = Signal(object, object)
    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(object)

    def __init__(
        self,
        text: str,
        model: str | None,
        engine: str,
        quant: str | None,
        context: int,
        cancel: threading.Event,
        name: str = "",
    ) -> None:
        super().__init__()
        self.text = text
        self.name = name  # the text's file name, for the measure the model manager shows
        self.model = model
        self.engine = engine
        self.quant = quant
        self.context = context
        self.cancel = cancel
        self.label = ""

    @Slot()
    def run(self) -> None:
        from gptdesk.errors import ConversionCancelled
        from gptdesk.evaluate.perplexity import load_scorer, measure
        from gptdesk.models.measured import keep_measure

        def loading(text: Text, fraction: float | None) -> None:
            # A Stop during a conversion (minutes for a large model) ends it here: the converter
            # reports progress often and cleans up what it began when this raises.
            if self.cancel.is_set():
                raise ConversionCancelled(Text("Stopped before the measure began.", "Остановлено до начала замера."))
            self.loading.emit(text, fraction)

        try:
            with load_scorer(self.model, engine=self.engine, quant=self.quant, progress=loading) as scorer:
                self.label = f"{scorer.engine.info.model_id} ({scorer.label})"
                context = min(self.context or scorer.n_positions, scorer.n_positions)
                result = measure(
                    self.text,
                    scorer.tokenizer,
                    scorer.score,
                    context=context,
                    progress=self.progress.emit,
                    cancel=self.cancel,
                )
                keep_measure(result, scorer.engine.info.model_id, scorer.label, self.name, self.text)
        except BaseException as exc:  # shown in the dialog; the thread ends cleanly
            self.failed.emit(exc)
            return
        self.finished.emit(result)


class PerplexityDialog(QDialog):
    """The user's text (typed, pasted or opened), the model and engine, Measure / Stop, the figures.

    Signals:
        measure_finished(PerplexityResult): a measure ended (complete ones are kept in measured.json).
    """

    measure_finished = Signal(object)

    def __init__(self, parent: QWidget | None = None, *, model: str | None = None) -> None:
        super().__init__(parent)
        from gptdesk.models.gguf.sizes import DEFAULT_QUANT, QUANT_TYPES

        self.setObjectName("perplexity_dialog")
        self.model = model
        self._cancel = threading.Event()
        self._thread: QThread | None = None
        self._worker: PerplexityWorker | None = None
        self._status: Text | None = None
        self.measured: PerplexityResult | None = None
        self._opened: tuple[str, str] | None = None  # the opened file's name and its text as shown

        self.text_edit = QPlainTextEdit()
        self.text_edit.setObjectName("perplexity_text")
        self.open_button = QPushButton()
        self.open_button.clicked.connect(self._on_open_clicked)
        self.model_label = QLabel()
        self.engine_combo = QComboBox()
        self.engine_combo.addItems(list(SCORING_ENGINES))
        self.quant_combo = QComboBox()
        self.quant_combo.addItems(list(QUANT_TYPES))
        self.quant_combo.setCurrentText(DEFAULT_QUANT)
        self.engine_combo.currentTextChanged.connect(self._on_engine_changed)
        self.context_spin = QSpinBox()
        self.context_spin.setRange(0, 8192)
        self.context_spin.setSingleStep(64)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.measured_label = QLabel()
        self.measured_label.setObjectName("perplexity_result")
        self.measured_label.setWordWrap(True)
        self.method_label = QLabel()
        self.method_label.setWordWrap(True)
        self.measure_button = QPushButton()
        self.measure_button.setDefault(True)
        self.measure_button.clicked.connect(self.start)
        self.stop_button = QPushButton()
        self.stop_button.clicked.connect(self.stop)
        self.close_button = QPushButton()
        self.close_button.clicked.connect(self.close)

        form = QFormLayout()
        self.model_row_label = QLabel()
        self.engine_row_label = QLabel()
        self.quant_row_label = QLabel()
        self.context_row_label = QLabel()
        form.addRow(self.model_row_label, self.model_label)
        form.addRow(self.engine_row_label, self.engine_combo)
        form.addRow(self.quant_row_label, self.quant_combo)
        form.addRow(self.context_row_label, self.context_spin)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        buttons.addWidget(self.measure_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        self.text_label = QLabel()
        self.text_label.setBuddy(self.text_edit)
        layout.addWidget(self.text_label)
        layout.addWidget(self.text_edit, 1)
        layout.addLayout(form)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status_label)
        layout.addWidget(self.measured_label)
        layout.addWidget(self.method_label)
        layout.addLayout(buttons)
        self.resize(640, 560)
        self.retranslate()
        self._update_buttons()

    # -- texts -----------------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("How well does this model know my text?"))
        self.text_label.setText(self.tr("&Text (type, paste, or open a UTF-8 file):"))
        self.open_button.setText(self.tr("&Open file…"))
        self.model_row_label.setText(self.tr("Model:"))
        self.model_label.setText(self.model or self.tr("the embedded model"))
        self.engine_row_label.setText(self.tr("Engine:"))
        self.quant_row_label.setText(self.tr("llama.cpp type:"))
        self.context_row_label.setText(self.tr("Window (tokens):"))
        self.context_spin.setSpecialValueText(self.tr("the model's context"))
        self.context_spin.setToolTip(self.tr("Windows move by half of this; 0 uses the model's whole context."))
        self.measure_button.setText(self.tr("&Measure"))
        self.stop_button.setText(self.tr("&Stop"))
        self.close_button.setText(self.tr("Close"))
        lang = current_language()
        self.method_label.setText(self.tr("Lower is better.") + " " + METHOD.get(lang))
        if self._status is not None:
            self.status_label.setText(self._status.get(lang))
        if self.measured is not None:
            self._show_result(self.measured)

    def _set_status(self, text: Text | None) -> None:
        self._status = text
        self.status_label.setText("" if text is None else text.get(current_language()))

    # -- running ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _update_buttons(self) -> None:
        self.measure_button.setEnabled(not self.running)
        self.stop_button.setEnabled(self.running and not self._cancel.is_set())
        self.open_button.setEnabled(not self.running)
        self.quant_combo.setEnabled(self.engine_combo.currentText() != "transformers")

    def _on_engine_changed(self, _engine: str) -> None:
        self._update_buttons()

    def _on_open_clicked(self) -> None:
        name, _ = QFileDialog.getOpenFileName(
            self, self.tr("Open a text file"), "", self.tr("Text (*.txt);;All files (*)")
        )
        if name:
            self.load_file(Path(name))

    def load_file(self, path: Path) -> bool:
        from gptdesk.evaluate.perplexity import read_text_file

        try:
            text = read_text_file(path)
        except GptDeskError as exc:
            self._set_status(exc.text)
            return False
        self.text_edit.setPlainText(text)
        self._opened = (path.name, self.text_edit.toPlainText())
        return True

    def start(self) -> bool:
        """Measure the text in a worker; False (with the reason shown) when it cannot start."""
        if self.running:
            return False
        text = self.text_edit.toPlainText()
        if not text.strip():
            self._set_status(Text("Type, paste or open a text first.", "Сначала введите, вставьте или откройте текст."))
            return False
        engine = self.engine_combo.currentText()
        quant = None if engine == "transformers" else self.quant_combo.currentText()
        self._cancel = threading.Event()
        self.measured = None
        self.measured_label.clear()
        self.progress_bar.setValue(0)
        self._set_status(Text("Loading the model…", "Загрузка модели…"))
        # "" stands for text typed or pasted in this window (the model manager says so in either language).
        name = self._opened[0] if self._opened is not None and self._opened[1] == text else ""
        worker = PerplexityWorker(text, self.model, engine, quant, self.context_spin.value(), self._cancel, name)
        worker.loading.connect(self._on_loading)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self._worker = worker
        self._thread = start_in_thread(worker, "perplexity", on_ended=self._on_thread_finished)
        self._update_buttons()
        return True

    def stop(self) -> None:
        """Stop after the window being scored (set directly: the worker is busy and reads no signals)."""
        if self.running:
            self._cancel.set()
            self._set_status(Text("Stopping after the current window…", "Остановка после текущего окна…"))
            self._update_buttons()

    def _on_loading(self, text: Text, fraction: float | None) -> None:
        if not self._cancel.is_set():
            self._set_status(text)
        if fraction is None:
            self.progress_bar.setRange(0, 0)  # busy
        else:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(int(fraction * 1000))

    def _on_progress(self, p: PerplexityProgress) -> None:
        from gptdesk.models.hub.progress import format_duration

        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(int(p.fraction * 1000))
        if self._cancel.is_set():
            return
        lang = current_language()
        eta = "" if p.eta_s is None else format_duration(p.eta_s, lang)
        so_far = "" if p.bits_per_char is None else f"{p.bits_per_char:.4f}"
        self._set_status(
            Text(
                f"{p.tokens_done:,} of {p.tokens_total:,} tokens; {so_far} bits per character so far; {eta} left",
                f"{p.tokens_done:,} из {p.tokens_total:,} токенов; пока {so_far} бит на символ; осталось {eta}",
            )
        )

    def _on_finished(self, result: PerplexityResult) -> None:
        self.measured = result
        self._set_status(
            Text("Done.", "Готово.")
            if result.complete
            else Text(
                f"Stopped: the figures cover the first {result.characters:,} of {result.total_characters:,} "
                "characters.",
                f"Остановлено: оценка по первым {result.characters:,} из {result.total_characters:,} символов.",
            )
        )
        self._show_result(result)
        self.measure_finished.emit(result)

    def _show_result(self, r: PerplexityResult) -> None:
        label = self._worker.label if self._worker is not None else ""
        self.measured_label.setText(
            Text(
                f"{label}: {r.bits_per_char:.4f} bits per character, perplexity {r.perplexity:.2f} "
                f"({r.tokens:,} tokens, {r.characters:,} characters, {r.windows} windows of {r.context}, "
                f"{r.seconds:.1f} s)",
                f"{label}: {r.bits_per_char:.4f} бит на символ, перплексия {r.perplexity:.2f} "
                f"({r.tokens:,} токенов, {r.characters:,} символов, окон: {r.windows} по {r.context}, "
                f"{r.seconds:.1f} с)",
            ).get(current_language())
            if r.tokens
            else ""
        )

    def _on_failed(self, exc: BaseException) -> None:
        from gptdesk.errors import ConversionCancelled

        if isinstance(exc, ConversionCancelled) and self._cancel.is_set():
            self._set_status(Text("Stopped before the measure began.", "Остановлено до начала замера."))
        elif isinstance(exc, GptDeskError):
            self._set_status(exc.text)
        else:
            self._set_status(
                Text(
                    f"The measure failed unexpectedly ({type(exc).__name__}: {exc}). Please report it.",
                    f"Измерение неожиданно прервалось ({type(exc).__name__}: {exc}). Сообщите об этом.",
                )
            )
        self.progress_bar.setRange(0, 1000)

    def _on_thread_finished(self) -> None:
        if self._thread is not None:
            self._thread.deleteLater()
        self._thread = None
        self._update_buttons()

    def _stop_and_wait(self) -> None:
        # A window that stays open on a slow model can be stopped; closing waits for that window.
        self.stop()
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait()

    def closeEvent(self, event: QCloseEvent) -> None:
        self._stop_and_wait()
        super().closeEvent(event)  # QDialog's calls reject(), which hides the dialog

    def reject(self) -> None:
        # Not self.close(): inside closeEvent a second close() does nothing, so QDialog saw the dialog
        # still visible and ignored the close (Close, Esc and the title bar's button all failed).
        self._stop_and_wait()
        super().reject()
