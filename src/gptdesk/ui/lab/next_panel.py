"""The next-token view in the window: raw and final probabilities of the next token, live under the settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptdesk.engine.base import Engine
from gptdesk.lab.nextview import NextTokenContext, NextTokenView, format_probability
from gptdesk.lab.source import encode, logits_source
from gptdesk.settings.generation import GenerationSettings
from gptdesk.ui.lab.charts import NextTokenChart
from gptdesk.ui.workers import CallWorker, WorkerThreads

#: Knobs the view moves live: (settings field, minimum, maximum, step, decimals).
LIVE_KNOBS: tuple[tuple[str, float, float, float, int], ...] = (
    ("temperature", 0.05, 5.0, 0.05, 2),
    ("top_k", 0, 1000, 1, 0),
    ("top_p", 0.01, 1.0, 0.01, 2),
    ("repetition_penalty", 0.5, 10.0, 0.05, 2),
)


class NextTokenPanel(QWidget):
    """The chart, its figures and a table of candidates for one context; the knobs redraw without a model call.

    Signals:
        context_loaded(): the model's scores for a new context arrived (the one model call).
        view_updated(object): the NextTokenView now shown.
        failed(object): loading the context failed (the exception).
    """

    context_loaded = Signal()
    view_updated = Signal(object)
    failed = Signal(object)

    def __init__(self, threads: WorkerThreads, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("next_token_panel")
        self._threads = threads
        self.context: NextTokenContext | None = None
        self.view: NextTokenView | None = None
        self.base = GenerationSettings()
        self.last_update_ms = 0.0
        self._context_text = ""
        self._chosen: int | None = None  # the token the run took here, when opened from the inspector

        self.context_label = QLabel()
        self.context_label.setWordWrap(True)
        self.context_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sample_box = QCheckBox()
        self.sample_box.setObjectName("lab_do_sample")
        self.knobs: dict[str, QDoubleSpinBox | QSpinBox] = {}
        self.knob_labels: dict[str, QLabel] = {}
        form = QFormLayout()
        form.addRow(self.sample_box)
        for name, lo, hi, step, decimals in LIVE_KNOBS:
            box: QDoubleSpinBox | QSpinBox
            if decimals:
                box = QDoubleSpinBox()
                box.setDecimals(decimals)
                box.setRange(lo, hi)
                box.setSingleStep(step)
                box.valueChanged.connect(self._on_knob_changed)
            else:
                box = QSpinBox()
                box.setRange(int(lo), int(hi))
                box.valueChanged.connect(self._on_knob_changed)
            box.setObjectName(f"lab_{name}")
            box.setKeyboardTracking(True)
            label = QLabel()
            label.setBuddy(box)
            self.knobs[name] = box
            self.knob_labels[name] = label
            form.addRow(label, box)
        self.sample_box.toggled.connect(self._on_knob_changed)
        self.figures = QLabel()
        self.figures.setObjectName("lab_figures")
        # No word wrap: a wrapping label in this column got the height of one line (Qt's height-for-width).
        self.figures.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notes = QLabel()
        self.notes.setObjectName("lab_notes")
        self.notes.setWordWrap(True)
        self.png_button = QPushButton()
        self.svg_button = QPushButton()
        self.png_button.clicked.connect(lambda: self._export_dialog("png"))
        self.svg_button.clicked.connect(lambda: self._export_dialog("svg"))
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.addLayout(form)
        side_layout.addWidget(self.figures)
        side_layout.addWidget(self.notes)
        buttons = QHBoxLayout()
        buttons.addWidget(self.png_button)
        buttons.addWidget(self.svg_button)
        side_layout.addLayout(buttons)
        side_layout.addStretch(1)

        self.chart = NextTokenChart()
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("lab_candidates")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        charts = QSplitter(Qt.Orientation.Vertical)
        charts.addWidget(self.chart)
        charts.addWidget(self.table)
        charts.setSizes([360, 160])
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(charts)
        body.addWidget(side)
        body.setSizes([760, 260])
        layout = QVBoxLayout(self)
        layout.addWidget(self.context_label)
        layout.addWidget(body, 1)
        self.set_settings(self.base)
        self.retranslate()

    # -- settings --------------------------------------------------------------------------------

    def set_settings(self, settings: GenerationSettings) -> None:
        """Take the window's settings as the base; the knobs start from them."""
        self.base = settings
        widgets = [self.sample_box, *self.knobs.values()]
        for widget in widgets:
            widget.blockSignals(True)
        self.sample_box.setChecked(settings.do_sample)
        for name, box in self.knobs.items():
            box.setValue(getattr(settings, name))
        for widget in widgets:
            widget.blockSignals(False)
        self._redraw()

    def settings(self) -> GenerationSettings:
        """The base settings with the knobs' values."""
        values: dict[str, Any] = {name: box.value() for name, box in self.knobs.items()}
        values["do_sample"] = self.sample_box.isChecked()
        return self.base.updated(**values)

    def _on_knob_changed(self, *_: object) -> None:
        self._update_enabled()
        self._redraw()

    def _update_enabled(self) -> None:
        sampling = self.sample_box.isChecked() and self.base.num_beams == 1
        for name in ("temperature", "top_k", "top_p"):
            self.knobs[name].setEnabled(sampling)

    # -- context ---------------------------------------------------------------------------------

    def load(self, engine: Engine, prompt_ids: list[int], generated_ids: list[int], chosen: int | None = None) -> None:
        """Fetch the model's scores for this context in a worker (the one model call)."""
        self._chosen = chosen

        def call(_progress: Callable[..., None]) -> NextTokenContext:
            return NextTokenContext(logits_source(engine), prompt_ids, generated_ids)

        self._start(call)

    def load_prompt(self, engine: Engine, prompt: str) -> None:
        self._chosen = None

        def call(_progress: Callable[..., None]) -> NextTokenContext:
            source = logits_source(engine)
            return NextTokenContext(source, encode(source, prompt) if prompt.strip() else [], [])

        self._start(call)

    def _start(self, call: Callable[[Callable[..., None]], NextTokenContext]) -> None:
        worker = CallWorker(call)
        worker.finished.connect(self._on_context_loaded)
        worker.failed.connect(self.failed)
        self.context_label.setText(self.tr("Reading the model's scores…"))
        self._threads.start("lab-next", worker)

    def _on_context_loaded(self, context: object) -> None:
        assert isinstance(context, NextTokenContext)
        self.context = context
        from gptdesk.engine.tokens import decode

        text = decode(context.source.tokenizer, context.ids)
        self._context_text = text if len(text) <= 160 else "…" + text[-159:]
        self._redraw()
        self.context_loaded.emit()

    # -- drawing ---------------------------------------------------------------------------------

    def _redraw(self) -> None:
        if self.context is None:
            self._update_titles()
            return
        try:
            settings = self.settings()
        except Exception:
            return
        started = time.perf_counter()
        view = self.context.view(settings)
        self.chart.set_view(view)
        self.last_update_ms = (time.perf_counter() - started) * 1000
        self.view = view
        self._fill_table(view)
        self._update_titles()
        self.view_updated.emit(view)

    def _fill_table(self, view: NextTokenView) -> None:
        status = self._status_texts()
        self.table.setRowCount(len(view.candidates))
        for row, c in enumerate(view.candidates):
            mark = "  ◀" if c.token_id == self._chosen else ""
            texts = (
                "«" + c.piece.replace("\n", "↵") + "»" + mark,
                format_probability(c.raw),
                format_probability(c.final),
                status[c.status] + (self.tr(" (penalized)") if c.penalized else ""),
            )
            for column, text in enumerate(texts):
                self.table.setItem(row, column, QTableWidgetItem(text))

    def _status_texts(self) -> dict[str, str]:
        return {
            "kept": self.tr("in play"),
            "top_k": self.tr("cut by top-k"),
            "top_p": self.tr("cut by top-p"),
            "no_repeat_ngram": self.tr("banned: would repeat an n-gram"),
            "min_length": self.tr("banned: text shorter than the minimum"),
            "not_greedy": self.tr("not the greedy choice"),
        }

    def _update_titles(self) -> None:
        if self.context is None:
            self.context_label.setText(self.tr("Open the view on the prompt or on a generated token."))
            self.figures.setText("")
            self.notes.setText("")
            return
        self.context_label.setText(
            self.tr("Next token after: “{text}” ({n} tokens)").format(
                text=self._context_text.replace("\n", "↵"), n=len(self.context.ids)
            )
        )
        view = self.view
        if view is None:
            return
        self.figures.setText(
            self.tr(
                "Entropy: {entropy:.2f} bits (raw {raw:.2f})\nTokens in play: {n}\nProbability mass kept: {mass}\n"
                "Greedy choice: “{piece}” at {p}"
            ).format(
                entropy=view.entropy_bits,
                raw=view.raw_entropy_bits,
                n=view.in_play,
                mass=format_probability(view.mass_kept),
                piece=view.greedy_piece.replace("\n", "↵"),
                p=format_probability(view.greedy_final),
            )
        )
        self.notes.setText(self._note_text(view))

    def _note_text(self, view: NextTokenView) -> str:
        if view.mode == "greedy":
            return self.tr(
                "Sampling is off: temperature, top-k and top-p change nothing. The model always takes the most "
                "likely token."
            )
        if view.mode == "beams":
            return self.tr(
                "With {n} beams the model keeps the {n} continuations with the best total log-probability and "
                "extends each; shown are the probabilities after penalties and bans that the beams add up."
            ).format(n=self.base.num_beams)
        return ""

    # -- export ----------------------------------------------------------------------------------

    def export(self, path: Path) -> Path:
        return self.chart.export(path)

    def _export_dialog(self, fmt: str) -> None:
        name, _ = QFileDialog.getSaveFileName(self, self.tr("Save the chart"), f"next-token.{fmt}", f"*.{fmt}")
        if name:
            self.export(Path(name))

    # -- language --------------------------------------------------------------------------------

    def retranslate(self) -> None:
        self.sample_box.setText(self.tr("Sampling (do_sample)"))
        names = {
            "temperature": self.tr("&Temperature"),
            "top_k": self.tr("Top-&k"),
            "top_p": self.tr("Top-&p"),
            "repetition_penalty": self.tr("&Repetition penalty"),
        }
        for name, label in self.knob_labels.items():
            label.setText(names[name])
            self.knobs[name].setAccessibleName(names[name].replace("&", ""))
        self.png_button.setText(self.tr("Save as P&NG…"))
        self.svg_button.setText(self.tr("Save as S&VG…"))
        self.chart.setAccessibleName(self.tr("Next-token chart"))
        self.chart.setAccessibleDescription(
            self.tr("Bars of the top candidates: raw probability beside the probability after the settings")
        )
        self.table.setAccessibleName(self.tr("Next-token candidates"))
        self.table.setHorizontalHeaderLabels(
            [self.tr("Token"), self.tr("Raw"), self.tr("After settings"), self.tr("What the settings did")]
        )
        self.figures.setAccessibleName(self.tr("Next-token figures"))
        if self.view is not None:
            self._fill_table(self.view)
        self._update_titles()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
