"""Tools › Teach the model my texts…: LoRA tuning (gptdesk.tune) in a worker, with a live loss chart and Stop.

At the end it shows the held-out bits per character before and after, and two generations from one prompt
and seed side by side, without and with the new adapter; "Use this adapter" applies it in the main window.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")  # never another Qt binding that happens to be installed

import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QCloseEvent, QColor
from PySide6.QtWidgets import (
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gptdesk.errors import TuneCancelled
from gptdesk.i18n import Text
from gptdesk.tune.data import default_name
from gptdesk.tune.train import TuneProgress, TuneResult
from gptdesk.ui.messages import error_text
from gptdesk.ui.workers import CallWorker, start_in_thread

# The side-by-side generations at the end: this many new tokens from the prompt, with this seed.
COMPARE_TOKENS = 60
COMPARE_SEED = 1
TRAIN_COLOR = QColor("#1f6feb")
HELDOUT_COLOR = QColor("#e5534b")


@dataclass
class TeachOutcome:
    """What a finished run gives the dialog: the result, and the two generations to compare."""

    result: TuneResult
    without: str = ""
    with_adapter: str = ""


class _Relay(QObject):
    """Carries the tuning's progress from the worker thread to the dialog (a queued signal)."""

    progress = Signal(object)


class TeachDialog(QDialog):
    """Choose text files, a name and a time budget; teach the model; compare without and with the adapter.

    Signals:
        adapter_ready(str): "Use this adapter" was clicked for the adapter made here.
    """

    adapter_ready = Signal(str)

    def __init__(self, model: str | None, prompt: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("teach_dialog")
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.model = model  # the main window's model (None: the embedded one)
        self.prompt = prompt.strip() or "Жили-были"
        self.outcome: TeachOutcome | None = None
        self.steps: list[tuple[int, float | None, float | None]] = []
        self._cancel: threading.Event | None = None
        self._thread: Any = None
        self._close_when_done = False
        self._status = Text("", "")
        self._relay = _Relay()
        self._relay.progress.connect(self._on_progress)

        self.files = QListWidget()
        self.files.setObjectName("teach_files")
        self.add_button = QPushButton()
        self.add_button.clicked.connect(self._choose_files)
        self.remove_button = QPushButton()
        self.remove_button.clicked.connect(self._remove_selected)
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("teach_name")
        self.minutes = QDoubleSpinBox()
        self.minutes.setObjectName("teach_minutes")
        self.minutes.setRange(0.1, 600.0)
        self.minutes.setDecimals(1)
        self.minutes.setValue(10.0)
        self.model_label = QLabel(model or "embedded")
        self.start_button = QPushButton()
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton()
        self.stop_button.clicked.connect(self.stop)
        self.progress_bar = QProgressBar()
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.chart = pg.PlotWidget(background="w")
        self.chart.setObjectName("teach_chart")
        self.chart.setMenuEnabled(False)
        self.chart.showGrid(y=True, alpha=0.3)
        self.legend = self.chart.addLegend(offset=(-10, 10))
        self.train_curve = self.chart.plot([], [], pen=pg.mkPen(TRAIN_COLOR, width=2))
        self.heldout_curve = self.chart.plot(
            [], [], pen=pg.mkPen(HELDOUT_COLOR, width=2), symbol="o", symbolBrush=HELDOUT_COLOR, symbolSize=6
        )
        self.result_label = QLabel()
        self.result_label.setWordWrap(True)
        self.without_text = QPlainTextEdit()
        self.without_text.setReadOnly(True)
        self.with_text = QPlainTextEdit()
        self.with_text.setReadOnly(True)
        self.without_label, self.with_label = QLabel(), QLabel()
        self.use_button = QPushButton()
        self.use_button.clicked.connect(self._use)

        self.form = QFormLayout()
        self.form_labels = [QLabel() for _ in range(4)]
        file_buttons = QHBoxLayout()
        file_buttons.addWidget(self.add_button)
        file_buttons.addWidget(self.remove_button)
        file_buttons.addStretch(1)
        files_box = QWidget()
        files_layout = QVBoxLayout(files_box)
        files_layout.setContentsMargins(0, 0, 0, 0)
        files_layout.addWidget(self.files)
        files_layout.addLayout(file_buttons)
        fields: tuple[QWidget, ...] = (files_box, self.model_label, self.name_edit, self.minutes)
        for label, field in zip(self.form_labels, fields, strict=True):
            self.form.addRow(label, field)
        self.form_labels[0].setBuddy(self.files)
        self.form_labels[2].setBuddy(self.name_edit)
        self.form_labels[3].setBuddy(self.minutes)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.progress_bar, 1)
        compare = QHBoxLayout()
        for label, text in ((self.without_label, self.without_text), (self.with_label, self.with_text)):
            column = QVBoxLayout()
            column.addWidget(label)
            column.addWidget(text)
            compare.addLayout(column)
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addLayout(buttons)
        layout.addWidget(self.status_label)
        layout.addWidget(self.chart, 1)
        layout.addWidget(self.result_label)
        layout.addLayout(compare)
        layout.addWidget(self.use_button, 0, Qt.AlignmentFlag.AlignRight)
        self.resize(900, 760)
        self.retranslate()
        self._update_buttons()

    # -- input -----------------------------------------------------------------------------------

    def add_files(self, paths: list[Path]) -> None:
        for path in paths:
            self.files.addItem(str(path))
        if not self.name_edit.text() and self.files.count():
            self.name_edit.setText(default_name(self.files.item(0).text()))
        self._update_buttons()

    def paths(self) -> list[Path]:
        return [Path(self.files.item(i).text()) for i in range(self.files.count())]

    def _choose_files(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(self, self.tr("Texts to teach the model"), "", "*.txt;;*")
        self.add_files([Path(n) for n in names])

    def _remove_selected(self) -> None:
        for item in self.files.selectedItems():
            self.files.takeItem(self.files.row(item))
        self._update_buttons()

    # -- running ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._cancel is not None

    def start(self) -> bool:
        """Teach the model in a worker; False when a run is going or no file is chosen."""
        if self.running or not self.paths():
            return False
        paths, name, minutes, model, prompt = (
            self.paths(),
            self.name_edit.text().strip(),
            self.minutes.value(),
            self.model,
            self.prompt,
        )
        cancel = threading.Event()
        relay = self._relay

        def call(_progress: Any) -> TeachOutcome:
            return _teach(paths, name, minutes, model, prompt, cancel, relay.progress.emit)

        self._cancel = cancel
        self.outcome = None
        self.steps = []
        self._draw()
        self.result_label.clear()
        self.without_text.clear()
        self.with_text.clear()
        self.progress_bar.setRange(0, 0)
        self._set_status(Text("Reading the texts and loading the model…", "Чтение текстов и загрузка модели…"))
        worker = CallWorker(call)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        self._worker = worker
        self._thread = start_in_thread(worker, "teach", parent=self, on_ended=self._on_thread_ended)
        self._update_buttons()
        return True

    def stop(self) -> None:
        """Stop after the current step; what was learnt is kept as a checkpoint (`gptdesk tune --resume`)."""
        if self._cancel is not None:
            self._cancel.set()
            self._set_status(Text("Stopping after this step…", "Остановка после текущего шага…"))

    def _on_progress(self, p: object) -> None:
        if not isinstance(p, TuneProgress):
            return
        if p.phase == "train":
            if not self.steps or self.steps[-1][0] != p.step:
                self.steps.append((p.step, p.loss, None))
            if p.heldout_loss is not None:
                step, train_loss, _ = self.steps[-1]
                self.steps[-1] = (step, train_loss, p.heldout_loss)
            self._draw()
        fraction = p.fraction
        if fraction is None and p.eta_s is not None and p.elapsed_s > 0:
            fraction = p.elapsed_s / (p.elapsed_s + p.eta_s)
        if fraction is not None:
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(round(1000 * fraction))
        phases = {
            "measure": Text(
                "Measuring the held-out text before teaching…", "Измерение проверочного текста до обучения…"
            ),
            "evaluate": Text(
                "Measuring the held-out text after teaching…", "Измерение проверочного текста после обучения…"
            ),
        }
        if p.phase in phases:
            self._set_status(phases[p.phase])
        else:
            loss = f"{p.loss:.3f}" if p.loss is not None else "—"
            eta = f"{p.eta_s / 60:.1f}" if p.eta_s is not None else "—"
            self._set_status(
                Text(
                    f"Step {p.step}: loss {loss}, {p.tokens_per_s:.0f} tokens/s, about {eta} min left",
                    f"Шаг {p.step}: потери {loss}, {p.tokens_per_s:.0f} токенов/с, осталось около {eta} мин",
                )
            )

    def _draw(self) -> None:
        train = [(s, loss) for s, loss, _ in self.steps if loss is not None]
        held = [(s, h) for s, _, h in self.steps if h is not None]
        self.train_curve.setData([s for s, _ in train], [v for _, v in train])
        self.heldout_curve.setData([s for s, _ in held], [v for _, v in held])

    def _on_finished(self, outcome: object) -> None:
        self._cancel = None
        assert isinstance(outcome, TeachOutcome)
        self.outcome = outcome
        r = outcome.result
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(1000)
        if r.stopped:
            self._set_status(
                Text(
                    f"Stopped at step {r.steps}; what was learnt is kept. Go on with: gptdesk tune … --name "
                    f"{self.name_edit.text().strip()} --resume",
                    f"Остановлено на шаге {r.steps}; изученное сохранено. Продолжить: gptdesk tune … --name "
                    f"{self.name_edit.text().strip()} --resume",
                )
            )
        else:
            assert r.adapter is not None and r.bpc_after is not None
            gain = (r.improvement or 0.0) * 100
            self._set_status(
                Text(f"Adapter '{r.adapter.manifest.name}' saved.", f"Адаптер «{r.adapter.manifest.name}» сохранён.")
            )
            self.result_label.setText(
                self.tr(
                    "Held-out bits per character: {before:.4f} before, {after:.4f} after ({gain:+.1f}% lower)"
                ).format(before=r.bpc_before, after=r.bpc_after, gain=gain)
            )
            self.without_text.setPlainText(outcome.without)
            self.with_text.setPlainText(outcome.with_adapter)
        self._update_buttons()

    def _on_failed(self, exc: object) -> None:
        self._cancel = None
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        if isinstance(exc, TuneCancelled):
            self._set_status(
                Text(
                    "Stopped before the first step: nothing to keep.", "Остановлено до первого шага: сохранять нечего."
                )
            )
        else:
            self._set_status(
                error_text(exc) if isinstance(exc, BaseException) else Text(str(exc), str(exc)), error=True
            )
        self._update_buttons()

    def _use(self) -> None:
        if self.outcome is not None and self.outcome.result.adapter is not None:
            self.adapter_ready.emit(self.outcome.result.adapter.manifest.name)

    # -- state and language ----------------------------------------------------------------------

    def _set_status(self, text: Text, *, error: bool = False) -> None:
        self._status = text
        self.status_label.setText(text.get())
        self.status_label.setStyleSheet("color: #b00020;" if error else "")

    def _update_buttons(self) -> None:
        running = self.running
        self.start_button.setEnabled(not running and self.files.count() > 0)
        self.stop_button.setEnabled(running)
        for widget in (self.add_button, self.remove_button, self.name_edit, self.minutes):
            widget.setEnabled(not running)
        made = self.outcome is not None and self.outcome.result.adapter is not None
        self.use_button.setEnabled(made and not running)

    def retranslate(self) -> None:
        self.setWindowTitle(self.tr("Teach the model my texts — GPT Desk"))
        for label, text in zip(
            self.form_labels,
            (self.tr("&Texts"), self.tr("Model"), self.tr("Adapter &name"), self.tr("Time &budget, minutes")),
            strict=True,
        ):
            label.setText(text)
        self.files.setAccessibleName(self.tr("Texts to teach the model"))
        self.add_button.setText(self.tr("&Add files…"))
        self.remove_button.setText(self.tr("&Remove"))
        self.start_button.setText(self.tr("T&each"))
        self.stop_button.setText(self.tr("S&top"))
        self.use_button.setText(self.tr("&Use this adapter"))
        self.without_label.setText(self.tr("Without the adapter (seed {seed})").format(seed=COMPARE_SEED))
        self.with_label.setText(self.tr("With the adapter (same prompt and seed)"))
        self.chart.setLabel("left", self.tr("loss"))
        self.chart.setLabel("bottom", self.tr("step"))
        self.legend.clear()
        self.legend.addItem(self.train_curve, self.tr("training loss"))
        self.legend.addItem(self.heldout_curve, self.tr("held-out loss"))
        self.status_label.setText(self._status.get())

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        # Closing during a run stops it after its step (the checkpoint is kept) without waiting for that step
        # (a Large model's step takes tens of seconds): the dialog hides, and closes once its worker has ended.
        if self.running:
            self.stop()
            self._close_when_done = True
            self.hide()
            event.ignore()
            return
        super().closeEvent(event)

    def wait_for_worker(self) -> None:
        """Stop the run and wait for its worker (the application is quitting)."""
        self.stop()
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait()

    def _on_thread_ended(self) -> None:
        if self._thread is not None:
            self._thread.wait()  # ended already: the object may go with the dialog now
        if self._close_when_done:
            self.close()


def _teach(
    paths: list[Path],
    name: str,
    minutes: float,
    model: str | None,
    prompt: str,
    cancel: threading.Event,
    progress: Any,
) -> TeachOutcome:
    """The worker's job: read the texts, tune, then generate from the prompt without and with the adapter."""
    from gptdesk.engine import load_engine, run_to_end
    from gptdesk.models.obtain import obtain
    from gptdesk.settings.presets import get_preset
    from gptdesk.tune.data import read_texts
    from gptdesk.tune.options import TuneOptions
    from gptdesk.tune.train import tune

    texts = read_texts(paths)
    resolved = obtain(model, allow_download=False)
    result = tune(
        texts, resolved, name or default_name(paths[0]), TuneOptions(minutes=minutes), progress=progress, cancel=cancel
    )
    outcome = TeachOutcome(result)
    if result.adapter is None or cancel.is_set():
        return outcome
    settings = get_preset("balanced").settings(max_new_tokens=COMPARE_TOKENS, seed=COMPARE_SEED)
    for adapter in (None, result.adapter.manifest.name):
        engine = load_engine(model, engine="auto", **({"adapter": adapter} if adapter else {}))
        try:
            text = run_to_end(engine.stream(prompt, settings)).text
        finally:
            engine.close()
        if adapter is None:
            outcome.without = text
        else:
            outcome.with_adapter = text
    return outcome
