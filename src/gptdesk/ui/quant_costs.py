"""The model manager's "what each llama.cpp type costs" panel: file, memory, measured speed and quality per type."""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)
from shiboken6 import Shiboken

from gptdesk.i18n import Lang, Text, current_language
from gptdesk.models import measured
from gptdesk.models.catalog import EMBEDDED_ID, find_entry
from gptdesk.models.cost import format_bytes
from gptdesk.models.gguf.sizes import DEFAULT_QUANT
from gptdesk.models.manage import COST_TYPES, ModelRow, TypeCost, type_costs
from gptdesk.ui.perplexity_dialog import PerplexityDialog
from gptdesk.ui.tables import cell, fits_tip

_COLUMNS: tuple[tuple[str, Text], ...] = (
    ("type", Text("Type", "Тип")),
    ("file", Text("File", "Файл")),
    ("ram", Text("RAM", "ОЗУ")),
    ("speed", Text("Speed on this computer", "Скорость на этом компьютере")),
    ("quality", Text("Quality (bits/char, lower is better)", "Качество (бит на символ, меньше — лучше)")),
)
COL = {key: index for index, (key, _) in enumerate(_COLUMNS)}
_REFERENCE = "transformers fp32"
#: The bench's row keys for the types the panel shows, in its order (fp32 is the reference).
_BENCH_CONFIGS = "fp32,f16,q8_0,q6_K,q5_K_M,q4_K_M,q4_0"
_RED = QColor(180, 30, 30)


def text_name(name: str) -> Text:
    """A measured text's name as the store keeps it, in words where it is no file name."""
    if name == "":
        return Text("text typed in the window", "текст, набранный в окне")
    if name == "-":
        return Text("standard input", "стандартный ввод")
    return Text(name, name)


def _num(value: float, spec: str, lang: Lang) -> str:
    """A number with the language's decimal separator (a comma in Russian, as format_bytes writes)."""
    text = format(value, spec)
    return text.replace(".", ",") if lang == "ru" else text


def _bench_shape(row: ModelRow) -> str | None:
    """The `gptdesk bench --shapes` name whose random model has this row's shape, if any."""
    from gptdesk.evaluate.bench import SHAPES

    if row.shape is None:
        return None
    for key, model_id in SHAPES.items():
        entry = find_entry(model_id)
        if entry is not None and entry.shape == row.shape:
            return key
    return None


class QuantCostsPanel(QGroupBox):
    """For the model selected in the manager: one row per type with its file, RAM, speed and quality.

    Speed and quality come from measured.json (what `gptdesk bench` and the perplexity tool kept);
    it is read again by reload(), never on every selection change. "Measure on my text…" opens the
    perplexity dialog on the selected model and type, and the panel reloads when a measure is done.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("quant_costs_box")
        self._row: ModelRow | None = None
        self._available = 0
        self._measurements = measured.load()
        self.costs: list[TypeCost] = []
        self.perplexity_dialog: PerplexityDialog | None = None

        self.table = QTableWidget(0, len(_COLUMNS))
        self.table.setObjectName("quant_costs")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        # Compact lines, and room for all of them: seven types fit without a scroll bar.
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.note_label = QLabel()
        self.note_label.setWordWrap(True)
        self.note_label.setObjectName("quant_costs_note")
        self.measure_button = QPushButton()
        self.measure_button.setObjectName("measure_on_my_text")
        self.measure_button.clicked.connect(self.open_measure)
        self.table.itemSelectionChanged.connect(self._update_button)

        bottom = QHBoxLayout()
        bottom.addWidget(self.note_label, 1)
        bottom.addWidget(self.measure_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addLayout(bottom)
        self.retranslate()

    # -- what is shown ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Read measured.json again (a small file) and show it."""
        self._measurements = measured.load()
        self._fill()

    def show_row(self, row: ModelRow | None, available: int, *, reload: bool = False) -> None:
        """Show one model's costs (none: an empty table); `reload` reads measured.json again first."""
        if reload:
            self._measurements = measured.load()
        self._row = row
        self._available = available
        self._fill()

    def selected_type(self) -> str:
        """The type of the selected line ("f32" for transformers fp32), the default type when none is."""
        indexes = self.table.selectionModel().selectedRows()
        if not indexes or not self.costs:
            return DEFAULT_QUANT
        return self.costs[indexes[0].row()].type

    def select_type(self, quant: str) -> None:
        for index, cost in enumerate(self.costs):
            if cost.type == quant:
                self.table.selectRow(index)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def retranslate(self) -> None:
        lang = current_language()
        self.table.setHorizontalHeaderLabels([label.get(lang) for _, label in _COLUMNS])
        self.table.setAccessibleName(
            Text("What each llama.cpp type costs", "Во что обходится каждый тип llama.cpp").get(lang)
        )
        self.measure_button.setText(Text("Measure on my text…", "Измерить на моём тексте…").get(lang))
        self.measure_button.setToolTip(
            Text(
                "Measure how well the selected model knows a text of yours, at the type selected above "
                "(Tools › “How well does this model know my text?”).",
                "Измерить, насколько выбранная модель знает ваш текст, с типом, выбранным выше "
                "(Инструменты › «Насколько модель знает мой текст?»).",
            ).get(lang)
        )
        self.note_label.setText(
            Text(
                "Speed: `gptdesk bench` on this computer (random weights of the same shape). Quality: your own "
                "measures. The embedded model's figures from `gptdesk bench` show the typical cost order.",
                "Скорость — `gptdesk bench` на этом компьютере (случайные веса той же формы). Качество — ваши "
                "собственные замеры. Цифры `gptdesk bench` для встроенной модели показывают обычный порядок цен.",
            ).get(lang)
        )
        self._fill()

    def _fill(self) -> None:
        lang = current_language()
        row = self._row
        keep = self.selected_type() if self.costs else None
        self.costs = type_costs(row, self._available, self._measurements) if row is not None else []
        if row is None:
            self.setTitle(
                Text(
                    "What each llama.cpp type costs (select a model above)",
                    "Во что обходится каждый тип llama.cpp (выберите модель выше)",
                ).get(lang)
            )
        else:
            name = row.title.get(lang) if row.in_catalog else row.id
            self.setTitle(
                Text(
                    f"What each llama.cpp type costs for {name}", f"Во что обходится каждый тип llama.cpp — {name}"
                ).get(lang)
            )
        self.table.setRowCount(len(self.costs))
        for index, cost in enumerate(self.costs):
            assert row is not None
            cells = {
                "type": self._type_cell(cost, lang),
                "file": self._file_cell(cost, lang),
                "ram": self._ram_cell(cost, lang),
                "speed": self._speed_cell(cost, row, lang),
                "quality": self._quality_cell(cost, lang),
            }
            for key, (text, tip) in cells.items():
                item = self._cell(index, COL[key])
                item.setText(text)
                item.setToolTip(tip)
            ram = self._cell(index, COL["ram"])
            ram.setForeground(QBrush(_RED) if cost.ram_bytes is not None and not cost.fits else QBrush())
        if keep is not None:
            self.select_type(keep)
        self._fit_height()
        self._update_button()

    def _fit_height(self) -> None:
        # Exactly the header and every type's line: the models table above gets the rest of the room.
        lines = 1 + len(COST_TYPES)
        header = self.table.horizontalHeader().sizeHint().height()
        rows = lines * self.table.verticalHeader().defaultSectionSize()
        self.table.setFixedHeight(header + rows + 2 * self.table.frameWidth())

    def _cell(self, row: int, column: int) -> QTableWidgetItem:
        return cell(self.table, row, column)

    # -- one cell each: (text, tooltip) ----------------------------------------------------------

    @staticmethod
    def _type_cell(cost: TypeCost, lang: Lang) -> tuple[str, str]:
        if cost.type == "f32":
            return _REFERENCE, Text(
                "The reference: the transformers engine at full precision, what the other types are compared with.",
                "Эталон: движок transformers с полной точностью, с ним сравниваются остальные типы.",
            ).get(lang)
        if cost.type == DEFAULT_QUANT:
            return cost.type + Text(" (default)", " (по умолчанию)").get(lang), ""
        return cost.type, ""

    @staticmethod
    def _file_cell(cost: TypeCost, lang: Lang) -> tuple[str, str]:
        if cost.file_bytes is None:
            return "?", Text(
                "The model's shape is unknown until its download is complete.",
                "Форма модели неизвестна, пока загрузка не закончена.",
            ).get(lang)
        if cost.file_path is not None:
            return format_bytes(cost.file_bytes, lang), str(cost.file_path)
        tip = (
            Text(
                "Estimated from the model's shape: its weights in float32 (what transformers reads).",
                "Оценка по форме модели: её веса в float32 (то, что читает transformers).",
            )
            if cost.type == "f32"
            else Text(
                "Estimated from the model's shape: no GGUF file of this type is cached yet (it is made on first use).",
                "Оценка по форме модели: файла GGUF этого типа в кэше ещё нет (он создаётся при первом использовании).",
            )
        )
        return "≈ " + format_bytes(cost.file_bytes, lang), tip.get(lang)

    def _ram_cell(self, cost: TypeCost, lang: Lang) -> tuple[str, str]:
        if cost.ram_bytes is None:
            return "?", ""
        need, free = format_bytes(cost.ram_bytes, lang), format_bytes(self._available, lang)
        tip = fits_tip(cost.fits, need, free)
        if cost.engine == "llamacpp":
            tip = tip + Text(
                " Counted as the llama.cpp engine allocates it (no torch runtime), the test it applies before loading.",
                " Посчитано так, как выделяет память движок llama.cpp (без среды torch), — эту проверку он делает "
                "перед загрузкой.",
            )
        return f"{need} {'✓' if cost.fits else '✗'}", tip.get(lang)

    @staticmethod
    def _speed_cell(cost: TypeCost, row: ModelRow, lang: Lang) -> tuple[str, str]:
        s = cost.speed
        if s is None:
            shape = _bench_shape(row)
            if shape is not None:
                how = Text(
                    f"Not measured yet. Measure it on this computer with "
                    f"`gptdesk bench --shapes {shape} --configs {_BENCH_CONFIGS}` (random weights of this shape).",
                    f"Ещё не измерено. Измерьте на этом компьютере командой "
                    f"`gptdesk bench --shapes {shape} --configs {_BENCH_CONFIGS}` (случайные веса этой формы).",
                )
            else:
                how = Text(
                    "Not measured: `gptdesk bench` measures only the ruGPT-3 shapes (`gptdesk bench --shapes "
                    "small,large`), and speed is shown only for a model of exactly the measured shape.",
                    "Не измерено: `gptdesk bench` измеряет только формы ruGPT-3 (`gptdesk bench --shapes "
                    "small,large`), а скорость показывается только для модели ровно измеренной формы.",
                )
            return "—", how.get(lang)
        unit = Text("tok/s", "ток/с").get(lang)
        text = f"{_num(s.tokens_per_second, '.1f', lang)} {unit}"
        if cost.type != "f32" and s.x_fp32 is not None:
            text += f" ({_num(s.x_fp32, '.1f', lang)}× fp32)"
        tip = Text(
            f"`gptdesk bench`, {s.when}: {s.shape} shape with random weights, {s.engine}, {s.threads} threads, "
            f"peak memory {format_bytes(s.peak_rss_bytes)}.",
            f"`gptdesk bench`, {s.when}: форма {s.shape}, случайные веса, {s.engine}, потоков: {s.threads}, "
            f"пик памяти {format_bytes(s.peak_rss_bytes, 'ru')}.",
        )
        return text, tip.get(lang)

    @staticmethod
    def _quality_cell(cost: TypeCost, lang: Lang) -> tuple[str, str]:
        if not cost.quality:
            return "—", Text(
                "Not measured yet: choose “Measure on my text…”, or Tools › “How well does this model know my "
                "text?” in the main window.",
                "Ещё не измерено: нажмите «Измерить на моём тексте…» или выберите в главном окне "
                "Инструменты › «Насколько модель знает мой текст?».",
            ).get(lang)
        newest = cost.quality[0]
        text = f"{_num(newest.bits_per_char, '.4f', lang)}, {text_name(newest.text).get(lang)}"
        if cost.versus is not None:
            ref, percent = cost.versus
            pct = _num(percent, "+.2f", lang)
            text += Text(f", {pct}% vs {ref}", f", {pct}% к {ref}").get(lang)
        lines = [Text("Measured texts (newest first):", "Измеренные тексты (сначала новые):").get(lang)]
        for e in cost.quality:
            chars_ru = f"{e.characters:,}".replace(",", "\u00a0")
            lines.append(
                Text(
                    f"{text_name(e.text).en}: {e.bits_per_char:.4f} bits/char, perplexity {e.perplexity:.2f}, "
                    f"{e.characters:,} characters, {e.engine}, {e.when}",
                    f"{text_name(e.text).ru}: {_num(e.bits_per_char, '.4f', 'ru')} бит/символ, перплексия "
                    f"{_num(e.perplexity, '.2f', 'ru')}, "
                    f"символов: {chars_ru}, {e.engine}, {e.when}",
                ).get(lang)
            )
        return text, "\n".join(lines)

    # -- measuring -------------------------------------------------------------------------------

    def _update_button(self) -> None:
        row = self._row
        self.measure_button.setEnabled(row is not None and row.local_path is not None)

    def open_measure(self) -> None:
        """Open the perplexity dialog on the selected model and type; reload when it measures or closes."""
        row = self._row
        if row is None or row.local_path is None:
            return
        quant = self.selected_type()
        dialog = PerplexityDialog(self.window(), model=None if row.id == EMBEDDED_ID else row.id)
        if quant == "f32":
            dialog.engine_combo.setCurrentText("transformers")
        else:
            dialog.engine_combo.setCurrentText("llamacpp")
            dialog.quant_combo.setCurrentText(quant)
        dialog.measure_finished.connect(self.reload)
        dialog.finished.connect(self.reload)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.stop()  # one at a time: the previous one stops after its current window
        self.perplexity_dialog = dialog
        dialog.show()

    def stop(self) -> None:
        """Close the perplexity dialog opened here, if it is still open: it is the manager's child, so the
        manager (deleted on close) must not take a measuring thread down with it."""
        dialog, self.perplexity_dialog = self.perplexity_dialog, None
        if dialog is not None and Shiboken.isValid(dialog):
            dialog.close()  # its closeEvent stops the measure and waits for the thread
