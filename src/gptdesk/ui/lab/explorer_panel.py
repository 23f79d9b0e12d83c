"""The settings explorer in the window: a grid of texts and figures, a heat map, per-cell actions, advice."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptdesk.engine.base import Engine
from gptdesk.errors import GptDeskError
from gptdesk.history.store import HistoryStore
from gptdesk.i18n import Text
from gptdesk.lab.advice import ADVICE_TOKENS, GOALS, Advice, advise, rule_text
from gptdesk.lab.explorer import (
    VARIABLE,
    Axis,
    Cell,
    CellResult,
    grid_from_group,
    parse_axis,
    plan_grid,
    run_grid,
    save_grid,
)
from gptdesk.lab.measures import MEASURES
from gptdesk.settings.generation import GenerationSettings
from gptdesk.settings.help import FIELD_HELP
from gptdesk.ui.lab.charts import HeatMapChart
from gptdesk.ui.messages import error_text
from gptdesk.ui.workers import CallWorker, WorkerThreads

_NONE = ""  # the second axis's "no second setting"


class _Relay(QObject):
    """Carries a worker's per-cell results to the GUI thread (queued: it lives in the GUI thread)."""

    cell_done = Signal(object)
    progress = Signal(int, int, int)


class ExplorerPanel(QWidget):
    """One prompt and seed, one or two settings swept; every cell generated in a worker, Stop keeps finished cells.

    Signals:
        grid_finished(object): the list of CellResult of a run that ended (all cells, or those before Stop).
        settings_chosen(object): the user made a cell's (or the advice's) settings the current ones.
        advice_ready(object): a suggestion (Advice) arrived.
        failed(object): a run failed (the exception).
    """

    grid_finished = Signal(object)
    settings_chosen = Signal(object)
    advice_ready = Signal(object)
    failed = Signal(object)

    def __init__(
        self,
        threads: WorkerThreads,
        current: Callable[[], Engine | None],
        store: HistoryStore | None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("explorer_panel")
        self._threads = threads
        self._current = current
        self._store = store
        self.base = GenerationSettings()
        self.axes: list[Axis] = []
        self.cells: list[Cell] = []
        self.results: dict[int, CellResult] = {}
        self.advice: Advice | None = None
        self.group_id: str | None = None
        self._cancel: threading.Event | None = None
        self._prompt = ""
        # The advice's search: seeds per setting and tokens per text (see lab/advice.py and docs/lab.md).
        self.advice_seeds: tuple[int, ...] = (1, 2)
        self.advice_tokens = ADVICE_TOKENS
        self._relay = _Relay()
        self._relay.cell_done.connect(self._on_cell_done)
        self._relay.progress.connect(self._on_progress)

        self.prompt_label = QLabel()
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setObjectName("explorer_prompt")
        self.prompt_edit.setTabChangesFocus(True)
        self.prompt_edit.setMaximumHeight(70)
        self.prompt_label.setBuddy(self.prompt_edit)
        # Each setting by its name in the interface's language, with the identifier the CLI takes (item data).
        self.axis1 = QComboBox()
        self.axis1.setObjectName("explorer_axis1")
        for name in VARIABLE:
            self.axis1.addItem(name, name)
        self.values1 = QLineEdit("0.5,0.8,1.1")
        self.values1.setObjectName("explorer_values1")
        self.axis2 = QComboBox()
        self.axis2.setObjectName("explorer_axis2")
        self.axis2.addItem("", _NONE)
        for name in VARIABLE:
            self.axis2.addItem(name, name)
        self.choose_axis(self.axis2, "top_p")
        self.values2 = QLineEdit("0.8,0.95")
        self.values2.setObjectName("explorer_values2")
        self.seed = QSpinBox()
        self.seed.setObjectName("explorer_seed")
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setValue(42)
        self.tokens = QSpinBox()
        self.tokens.setObjectName("explorer_tokens")
        self.tokens.setRange(1, 1024)
        self.tokens.setValue(40)
        self.form = QFormLayout()
        self.form_labels = [QLabel() for _ in range(6)]
        for label, widget in zip(
            self.form_labels, (self.axis1, self.values1, self.axis2, self.values2, self.seed, self.tokens), strict=True
        ):
            label.setBuddy(widget)
            self.form.addRow(label, widget)

        self.run_button = QPushButton()
        self.run_button.setObjectName("explorer_run")
        self.stop_button = QPushButton()
        self.stop_button.setObjectName("explorer_stop")
        self.stop_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setObjectName("explorer_progress")
        self.run_button.clicked.connect(self.run)
        self.stop_button.clicked.connect(self.stop)

        self.grid = QTableWidget(0, 0)
        self.grid.setObjectName("explorer_grid")
        self.grid.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.grid.setWordWrap(True)
        self.grid.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.grid.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.grid.currentCellChanged.connect(lambda *_: self._update_buttons())

        self.measure_label = QLabel()
        self.measure = QComboBox()
        self.measure.setObjectName("explorer_measure")
        for name in MEASURES:
            self.measure.addItem(name, name)
        self.measure_label.setBuddy(self.measure)
        self.measure.currentIndexChanged.connect(lambda _i: self._draw_heat_map())
        self.heat = HeatMapChart()

        self.copy_button = QPushButton()
        self.use_button = QPushButton()
        self.save_cell_button = QPushButton()
        self.save_grid_button = QPushButton()
        self.png_button = QPushButton()
        self.svg_button = QPushButton()
        self.copy_button.clicked.connect(self.copy_cell)
        self.use_button.clicked.connect(self.use_cell)
        self.save_cell_button.clicked.connect(lambda: self.save(cell_only=True))
        self.save_grid_button.clicked.connect(lambda: self.save(cell_only=False))
        self.png_button.clicked.connect(lambda: self._export_dialog("png"))
        self.svg_button.clicked.connect(lambda: self._export_dialog("svg"))

        self.groups_label = QLabel()
        self.groups = QComboBox()
        self.groups.setObjectName("explorer_groups")
        self.groups_label.setBuddy(self.groups)
        self.reproduce_button = QPushButton()
        self.reproduce_button.clicked.connect(self.reproduce_selected)

        self.goal_label = QLabel()
        self.goal = QComboBox()
        self.goal.setObjectName("explorer_goal")
        for goal in GOALS.values():
            self.goal.addItem("", goal.id)
        self.goal_label.setBuddy(self.goal)
        self.suggest_button = QPushButton()
        self.suggest_button.setObjectName("explorer_suggest")
        self.suggest_button.clicked.connect(self.suggest)
        self.use_advice_button = QPushButton()
        self.use_advice_button.clicked.connect(self.use_advice)
        # Read-only text, not a label: the reason runs to several lines, and a screen reader reads it whole.
        self.advice_text = QPlainTextEdit()
        self.advice_text.setObjectName("explorer_advice")
        self.advice_text.setReadOnly(True)
        self.advice_text.setTabChangesFocus(True)
        self.advice_text.setMinimumHeight(130)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(self.prompt_label)
        left_layout.addWidget(self.prompt_edit)
        left_layout.addLayout(self.form)
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.stop_button)
        left_layout.addLayout(run_row)
        left_layout.addWidget(self.progress)
        group_row = QHBoxLayout()
        group_row.addWidget(self.groups, 1)
        group_row.addWidget(self.reproduce_button)
        left_layout.addWidget(self.groups_label)
        left_layout.addLayout(group_row)
        goal_row = QHBoxLayout()
        goal_row.addWidget(self.goal, 1)
        goal_row.addWidget(self.suggest_button)
        left_layout.addWidget(self.goal_label)
        left_layout.addLayout(goal_row)
        left_layout.addWidget(self.advice_text)
        left_layout.addWidget(self.use_advice_button)
        left_layout.addStretch(1)

        cell_row = QHBoxLayout()
        for button in (self.copy_button, self.use_button, self.save_cell_button, self.save_grid_button):
            cell_row.addWidget(button)
        heat_row = QHBoxLayout()
        heat_row.addWidget(self.measure_label)
        heat_row.addWidget(self.measure, 1)
        heat_row.addWidget(self.png_button)
        heat_row.addWidget(self.svg_button)
        right = QSplitter(Qt.Orientation.Vertical)
        grid_box = QWidget()
        grid_layout = QVBoxLayout(grid_box)
        grid_layout.setContentsMargins(0, 0, 0, 0)
        grid_layout.addWidget(self.grid, 1)
        grid_layout.addLayout(cell_row)
        heat_box = QWidget()
        heat_layout = QVBoxLayout(heat_box)
        heat_layout.setContentsMargins(0, 0, 0, 0)
        heat_layout.addLayout(heat_row)
        heat_layout.addWidget(self.heat, 1)
        right.addWidget(grid_box)
        right.addWidget(heat_box)
        right.setSizes([420, 260])
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(left)
        body.addWidget(right)
        body.setSizes([300, 800])
        layout = QVBoxLayout(self)
        layout.addWidget(body)
        self.retranslate()
        self.refresh_groups()
        self._update_buttons()

    # -- state -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._cancel is not None

    def set_settings(self, settings: GenerationSettings) -> None:
        """The window's settings: every cell starts from them."""
        self.base = settings

    def set_prompt(self, prompt: str) -> None:
        self.prompt_edit.setPlainText(prompt)

    @staticmethod
    def choose_axis(combo: QComboBox, name: str) -> None:
        """Select the setting `name` (an identifier of lab.explorer.VARIABLE, or "" for none) in `combo`."""
        index = combo.findData(name)
        if index < 0:
            raise ValueError(f"no setting {name!r} in the explorer")
        combo.setCurrentIndex(index)

    def _axes_from_form(self) -> list[Axis]:
        axes = [parse_axis(f"{self.axis1.currentData()}={self.values1.text()}")]
        if self.axis2.currentData() != _NONE:
            axes.append(parse_axis(f"{self.axis2.currentData()}={self.values2.text()}"))
        return axes

    # -- running ---------------------------------------------------------------------------------

    def run(self) -> bool:
        """Plan the grid from the form and generate it; False (with a message) when it cannot start."""
        try:
            axes = self._axes_from_form()
            base = self.base.updated(seed=self.seed.value(), max_new_tokens=self.tokens.value(), max_length=None)
            cells = plan_grid(base, axes)
        except GptDeskError as exc:
            self.failed.emit(exc)
            return False
        return self._run(self.prompt_edit.toPlainText(), axes, cells)

    def _run(self, prompt: str, axes: list[Axis], cells: list[Cell]) -> bool:
        engine = self._current()
        if engine is None or self.running:
            return False
        self.axes, self.cells, self.results, self.group_id = axes, cells, {}, None
        self._layout_grid()
        cancel = threading.Event()
        self._cancel = cancel
        relay = self._relay

        def call(_progress: Callable[..., None]) -> list[CellResult]:
            return run_grid(
                engine,
                prompt,
                cells,
                cancel,
                on_cell=relay.cell_done.emit,
                on_progress=lambda done, total, tokens: relay.progress.emit(done, total, tokens),
            )

        worker = CallWorker(call)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_grid_failed)
        self._prompt = prompt
        self.progress.setRange(0, len(cells))
        self.progress.setValue(0)
        self._threads.start("lab-grid", worker)
        self._update_buttons()
        return True

    def stop(self) -> None:
        """Stop the grid within one token; finished cells stay."""
        if self._cancel is not None:
            self._cancel.set()

    def _on_progress(self, done: int, total: int, tokens: int) -> None:
        self.progress.setValue(done)
        self.progress.setFormat(self.tr("Cell {cell} of {total}").format(cell=min(done + 1, total), total=total))

    def _on_cell_done(self, result: object) -> None:
        assert isinstance(result, CellResult)
        self.results[result.cell.index] = result
        self._show_cell(result)
        self._draw_heat_map()

    def _on_finished(self, results: object) -> None:
        self._cancel = None
        assert isinstance(results, list)
        for result in results:  # the relay's queued signals may still be on their way
            if result.cell.index not in self.results:
                self._on_cell_done(result)
        self.progress.setValue(len(results))
        self.progress.setFormat(self.tr("{done} of {total} cells").format(done=len(results), total=len(self.cells)))
        self._update_buttons()
        self.grid_finished.emit(results)

    def _on_failed(self, exc: object) -> None:
        self._cancel = None
        self._update_buttons()
        self.failed.emit(exc)

    def _on_grid_failed(self, exc: object) -> None:
        """The cell that was running says it failed and why; the cells after it say they did not run."""
        reason = error_text(exc) if isinstance(exc, BaseException) else Text(str(exc), str(exc))
        failed_at = next((cell.index for cell in self.cells if cell.index not in self.results), None)
        for cell in self.cells:
            if cell.index in self.results:
                continue
            r, c = self._position(cell.index)
            if cell.index == failed_at:
                item = QTableWidgetItem(self.tr("Failed: {reason}").format(reason=reason.get()))
                item.setForeground(QColor("#b00020"))
            else:
                item = QTableWidgetItem(self.tr("not run"))
            item.setData(Qt.ItemDataRole.UserRole, cell.index)
            item.setToolTip(cell.label(self.axes))
            self.grid.setItem(r, c, item)
        if failed_at is not None:
            self.progress.setFormat(
                self.tr("Cell {cell} of {total} failed").format(cell=failed_at + 1, total=len(self.cells))
            )
        self._on_failed(exc)

    # -- grid ------------------------------------------------------------------------------------

    def _shape(self) -> tuple[list[str], list[str]]:
        rows = [self.axes[0].label(v) for v in self.axes[0].values] if self.axes else []
        columns = [self.axes[1].label(v) for v in self.axes[1].values] if len(self.axes) > 1 else [""]
        return rows, columns

    def _position(self, index: int) -> tuple[int, int]:
        columns = len(self.axes[1].values) if len(self.axes) > 1 else 1
        return divmod(index, columns)

    def _layout_grid(self) -> None:
        rows, columns = self._shape()
        self.grid.clear()
        self.grid.setRowCount(len(rows))
        self.grid.setColumnCount(len(columns))
        self.grid.setVerticalHeaderLabels(rows)
        self.grid.setHorizontalHeaderLabels(columns)
        for cell in self.cells:
            r, c = self._position(cell.index)
            item = QTableWidgetItem(self.tr("waiting…"))
            item.setData(Qt.ItemDataRole.UserRole, cell.index)
            self.grid.setItem(r, c, item)
        self._draw_heat_map()

    def _show_cell(self, result: CellResult) -> None:
        m = result.measures
        fluency = f"{m.mean_logprob:.2f}" if m.mean_logprob is not None else "—"
        tps = f"{m.tokens_per_second:.0f}" if m.tokens_per_second else "—"
        figures = self.tr(
            "repeated 3-grams {rep}, distinct-2 {dist}, fluency {flu}, {words} words, {tps} tok/s"
        ).format(rep=f"{m.repeated_3grams:.0%}", dist=f"{m.distinct_2:.0%}", flu=fluency, words=m.words, tps=tps)
        r, c = self._position(result.cell.index)
        item = QTableWidgetItem(f"{result.text.strip()}\n— {figures}")
        item.setData(Qt.ItemDataRole.UserRole, result.cell.index)
        item.setToolTip(result.cell.label(self.axes))
        self.grid.setItem(r, c, item)

    def _draw_heat_map(self) -> None:
        name = str(self.measure.currentData() or "repeated_3grams")
        rows, columns = self._shape()
        values = np.full((max(len(rows), 1), max(len(columns), 1)), np.nan)
        for index, result in self.results.items():
            r, c = self._position(index)
            v = result.measures.get(name)
            values[r, c] = np.nan if v is None else v
        self.heat.set_grid(values, rows or [""], columns, self.measure.currentText(), MEASURES.get(name))

    def selected(self) -> CellResult | None:
        item = self.grid.currentItem()
        if item is None:
            return None
        return self.results.get(int(item.data(Qt.ItemDataRole.UserRole)))

    # -- cell actions ----------------------------------------------------------------------------

    def copy_cell(self) -> None:
        result = self.selected()
        if result is not None:
            QGuiApplication.clipboard().setText(self._prompt + result.text)

    def use_cell(self) -> None:
        result = self.selected()
        if result is not None:
            self.settings_chosen.emit(result.cell.settings)

    def save(self, *, cell_only: bool) -> str | None:
        """Store the selected cell, or every finished cell, in the history as one group; returns the group id."""
        engine = self._current()
        if self._store is None or engine is None:
            return None
        chosen = [self.selected()] if cell_only else [self.results[i] for i in sorted(self.results)]
        results = [r for r in chosen if r is not None]
        if not results:
            return None
        try:
            group = save_grid(self._store, self._prompt, results, engine)
        except GptDeskError as exc:
            self.failed.emit(exc)
            return None
        if not cell_only:
            self.group_id = group
        self.refresh_groups()
        return group

    def refresh_groups(self) -> None:
        self.groups.clear()
        if self._store is None:
            return
        try:
            groups = self._store.groups()
        except GptDeskError:
            return
        for group_id, count, prompt in groups:
            short = prompt.replace("\n", " ")
            self.groups.addItem(f"{short[:40]} — {count} ({group_id})", group_id)
        self._update_buttons()

    def reproduce(self, group_id: str) -> bool:
        """Run a stored grid again: same prompt, settings and seed, so the same texts."""
        if self._store is None:
            return False
        try:
            prompt, axes, cells = grid_from_group(self._store, group_id)
        except GptDeskError as exc:
            self.failed.emit(exc)
            return False
        self.prompt_edit.setPlainText(prompt)
        return self._run(prompt, axes, cells)

    def reproduce_selected(self) -> None:
        group = self.groups.currentData()
        if group:
            self.reproduce(str(group))

    # -- advice ----------------------------------------------------------------------------------

    def suggest(self) -> bool:
        """Search the chosen goal's grid on the prompt in a worker; the advice arrives by advice_ready."""
        engine = self._current()
        if engine is None or self.running:
            return False
        goal = GOALS[str(self.goal.currentData())]
        prompt = self.prompt_edit.toPlainText()
        cancel = threading.Event()
        self._cancel = cancel
        relay = self._relay
        seeds, tokens = self.advice_seeds, self.advice_tokens

        def call(_progress: Callable[..., None]) -> Advice | None:
            return advise(
                engine,
                prompt,
                goal,
                seeds=seeds,
                max_new_tokens=tokens,
                cancel=cancel,
                on_progress=lambda d, t: relay.progress.emit(d - 1, t, 0),
            )

        worker = CallWorker(call)
        worker.finished.connect(self._on_advice)
        worker.failed.connect(self._on_failed)
        settings_count = len(goal.axes[0].values) * len(goal.axes[1].values)
        self.progress.setRange(0, (settings_count + 1) * len(seeds))
        self.advice_text.setPlainText(self.tr("Searching {n} settings…").format(n=settings_count))
        self._threads.start("lab-grid", worker)
        self._update_buttons()
        return True

    def _on_advice(self, advice: object) -> None:
        self._cancel = None
        self._update_buttons()
        if advice is None:
            self.advice_text.setPlainText(self.tr("Stopped."))
            return
        assert isinstance(advice, Advice)
        self.advice = advice
        self.advice_text.setPlainText(advice.reason.get() + "\n" + rule_text(advice.goal).get())
        self._update_buttons()
        self.advice_ready.emit(advice)

    def use_advice(self) -> None:
        if self.advice is not None:
            self.settings_chosen.emit(self.advice.settings)

    # -- export ----------------------------------------------------------------------------------

    def export(self, path: Path) -> Path:
        return self.heat.export(path)

    def _export_dialog(self, fmt: str) -> None:
        name, _ = QFileDialog.getSaveFileName(self, self.tr("Save the heat map"), f"explorer.{fmt}", f"*.{fmt}")
        if name:
            self.export(Path(name))

    # -- language --------------------------------------------------------------------------------

    def _update_buttons(self) -> None:
        running = self.running
        has_cell = self.selected() is not None
        self.run_button.setEnabled(not running)
        self.suggest_button.setEnabled(not running)
        self.reproduce_button.setEnabled(not running and self.groups.count() > 0)
        self.stop_button.setEnabled(running)
        for button in (self.copy_button, self.use_button):
            button.setEnabled(has_cell)
        self.save_cell_button.setEnabled(has_cell and self._store is not None)
        self.save_grid_button.setEnabled(bool(self.results) and not running and self._store is not None)
        self.use_advice_button.setEnabled(self.advice is not None)

    def _setting_label(self, name: str) -> str:
        """ "Temperature (temperature)": the setting's label in the window's language and its identifier."""
        if name == "preset":
            return self.tr("Preset (preset)")
        return f"{FIELD_HELP[name].label.get()} ({name})"

    def retranslate(self) -> None:
        self.prompt_label.setText(self.tr("&Prompt"))
        texts = (
            self.tr("&First setting"),
            self.tr("Its &values"),
            self.tr("S&econd setting"),
            self.tr("Its v&alues"),
            self.tr("&Seed"),
            self.tr("&New tokens per cell"),
        )
        for label, text in zip(self.form_labels, texts, strict=True):
            label.setText(text)
            buddy = label.buddy()
            if buddy is not None:
                buddy.setAccessibleName(text.replace("&", ""))
        self.prompt_edit.setAccessibleName(self.tr("Explorer prompt"))
        self.run_button.setText(self.tr("&Run grid"))
        self.stop_button.setText(self.tr("S&top"))
        self.copy_button.setText(self.tr("&Copy text"))
        self.use_button.setText(self.tr("&Make current settings"))
        self.save_cell_button.setText(self.tr("Save &cell"))
        self.save_grid_button.setText(self.tr("Save &grid to history"))
        self.measure_label.setText(self.tr("&Heat map of"))
        self.measure.setAccessibleName(self.tr("Measure shown in the heat map"))
        names = {
            "repeated_3grams": self.tr("repeated word 3-grams (lower is better)"),
            "distinct_2": self.tr("distinct-2 (higher is more varied)"),
            "mean_logprob": self.tr("fluency: mean log-probability (higher is better)"),
            "words": self.tr("length in words"),
            "tokens_per_second": self.tr("tokens per second"),
        }
        for i in range(self.measure.count()):
            self.measure.setItemText(i, names[str(self.measure.itemData(i))])
        for combo in (self.axis1, self.axis2):
            for i in range(combo.count()):
                name = str(combo.itemData(i))
                combo.setItemText(i, self._setting_label(name) if name else self.tr("(none)"))
        self.png_button.setText(self.tr("P&NG…"))
        self.svg_button.setText(self.tr("S&VG…"))
        self.groups_label.setText(self.tr("Saved &grids"))
        self.reproduce_button.setText(self.tr("Run &again"))
        self.goal_label.setText(self.tr("&Goal for suggested settings"))
        goal_names = {
            "close": self.tr("Stay close to the prompt"),
            "story": self.tr("A story"),
            "varied": self.tr("Varied, poem-like text"),
        }
        for i in range(self.goal.count()):
            self.goal.setItemText(i, goal_names[str(self.goal.itemData(i))])
        self.suggest_button.setText(self.tr("S&uggest settings"))
        self.use_advice_button.setText(self.tr("Use suggested settings"))
        self.grid.setAccessibleName(self.tr("Explorer grid: one generated text per cell with its figures"))
        self.heat.setAccessibleName(self.tr("Heat map of the chosen measure over the grid"))
        self.advice_text.setAccessibleName(self.tr("Suggested settings and the figures behind them"))
        self._draw_heat_map()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
