"""The main window: prompt, streamed output, parameters, models, live figures, tokens and history."""

from __future__ import annotations

import gc
import importlib
import random
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psutil
from PySide6.QtCore import QByteArray, QCoreApplication, QEvent, QLocale, QSettings, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from gptdesk.engine.base import Engine, Finished, Notice, TokenEvent, TokenPiece
from gptdesk.errors import GptDeskError, InsufficientMemoryError, SettingsError
from gptdesk.estimate import DTYPE_BYTES, CostEstimate, ModelShape, check_affordable, estimate, fits_in_memory
from gptdesk.estimate import format_bytes as _format_bytes
from gptdesk.history.errors import HistoryError
from gptdesk.history.export import FORMATS, export
from gptdesk.history.recorder import LiveRecorder
from gptdesk.history.store import GenerationRecord, HistoryStore, data_dir
from gptdesk.i18n import Lang, Text, current_language
from gptdesk.models.catalog import CATALOG, EMBEDDED_ID, find_entry
from gptdesk.settings import GenerationSettings
from gptdesk.ui.history_panel import HistoryPanel
from gptdesk.ui.inspector import TokenInspector
from gptdesk.ui.model_picker import ModelPicker, RemoteDialog
from gptdesk.ui.params import ParametersPanel
from gptdesk.ui.translations import Translations
from gptdesk.ui.widgets import MessageBar, OutputPane
from gptdesk.ui.workers import CallWorker, GenerationWorker, Progress, start_in_thread, warm_up

#: Alternatives asked of the engine for every generated token (the inspector shows them).
TOP_ALTERNATIVES = 5

_EMPTY_PROMPT = Text(
    "The prompt is empty. Type the beginning of a text for the model to continue, e.g. «Москва — столица».",
    "Затравка пуста. Введите начало текста, которое модель продолжит, например «Москва — столица».",
)


def error_text(exc: BaseException) -> Text:
    """What to tell the user about an exception: our typed errors say it; anything else is a bug."""
    if isinstance(exc, GptDeskError):
        return exc.text
    if isinstance(exc, ModuleNotFoundError) and "gptdesk.engine.remote" in str(exc):
        return Text(
            "The remote engine is not part of this build of GPT Desk (gptdesk.engine.remote is missing). "
            "Update GPT Desk to use remote servers.",
            "Удалённый движок не входит в эту сборку GPT Desk (нет gptdesk.engine.remote). Обновите "
            "GPT Desk, чтобы работать с удалёнными серверами.",
        )
    return Text(
        f"Internal error ({type(exc).__name__}: {exc}). Please report it with what you did.",
        f"Внутренняя ошибка ({type(exc).__name__}: {exc}). Сообщите о ней, описав свои действия.",
    )


def _number(value: float | None, digits: int) -> str:
    """A figure for the status bar, with the language's decimal separator ("—" when unknown)."""
    if value is None:
        return "—"
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if current_language() == "ru" else text


def is_local(engine: Engine) -> bool:
    """Engines that run here (tokenize and estimate locally); a remote engine runs elsewhere."""
    return engine.name != "remote"


def engine_shape(engine: Engine) -> ModelShape:
    shape = getattr(engine, "shape", None)
    if isinstance(shape, ModelShape):
        return shape
    info = engine.info
    return ModelShape(info.n_layer, info.n_embd, info.n_head, info.n_positions, info.vocab_size)


@dataclass
class _Generation:
    """The running generation, as the GUI thread sees it."""

    worker: GenerationWorker
    thread: QThread
    cancel: threading.Event
    recorder: LiveRecorder | None
    prompt: str
    base_prompt: str  # what the output pane's text continues (for Continue)
    kind: str
    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    last_token: float | None = None
    tokens: int = 0
    stop_requested: float | None = None
    tokens_after_stop: int = 0


class MainWindow(QMainWindow):
    """The GPT Desk window.

    Signals:
        model_loaded(object): a model (an Engine) was loaded and is now in use.
        model_failed(object): loading failed (the exception); the previous model stays in use.
        generation_started(object): a generation began (its history id, or None without history).
        token_received(object): a streamed TokenEvent was shown.
        generation_finished(object): the Finished event of a generation that ended.
        generation_failed(object): the exception of a generation that failed.
        language_changed(str): the interface language changed ("ru" or "en").
    """

    model_loaded = Signal(object)
    model_failed = Signal(object)
    generation_started = Signal(object)
    token_received = Signal(object)
    generation_finished = Signal(object)
    generation_failed = Signal(object)
    language_changed = Signal(str)

    def __init__(
        self,
        *,
        store: HistoryStore | None,
        translations: Translations | None = None,
        store_error: HistoryError | None = None,
        settings_file: Path | None = None,
    ) -> None:
        super().__init__()
        self.setObjectName("main_window")
        self.store = store
        self.translations = translations
        self.engine: Engine | None = None
        self.loading = False
        self._gen: _Generation | None = None
        self._threads: dict[str, tuple[QThread, CallWorker | GenerationWorker]] = {}
        self._last: tuple[int | None, str] | None = None  # (history id, base prompt) of the shown text
        self._pending: Callable[[], object] | None = None  # run once the model being loaded is ready
        self._load_target: tuple[str, object, str] = ("catalog", EMBEDDED_ID, "")
        self._message: tuple[Text, str] | None = None
        self._closing = False
        self._token_cache: tuple[str, list[TokenPiece]] | None = None
        self.last_finished: Finished | None = None
        self.stop_latency: float | None = None  # seconds from Stop to the end of the last generation
        self._process = psutil.Process()
        self._qsettings = QSettings(str(settings_file or data_dir() / "gui.ini"), QSettings.Format.IniFormat)

        self._build_central()
        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_status_bar()

        self._estimate_timer = QTimer(self)
        self._estimate_timer.setSingleShot(True)
        self._estimate_timer.setInterval(250)
        self._estimate_timer.timeout.connect(self._update_estimate)
        self.prompt_edit.textChanged.connect(self._estimate_timer.start)
        self.params.settings_changed.connect(self._on_settings_changed)

        self._ram_timer = QTimer(self)
        self._ram_timer.setInterval(1000)
        self._ram_timer.timeout.connect(self._update_ram)
        self._ram_timer.start()
        self._stats_timer = QTimer(self)
        self._stats_timer.setInterval(200)
        self._stats_timer.timeout.connect(self._update_live_figures)
        self._pending_tokens: list[TokenEvent] = []
        self._token_timer = QTimer(self)
        self._token_timer.setSingleShot(True)
        self._token_timer.setInterval(25)  # ~40 updates a second: smooth, and cheap at any speed
        self._token_timer.timeout.connect(self._show_pending_tokens)

        self.resize(1320, 860)
        self._restore_state()
        self.retranslate()
        self._update_ram()
        self._update_actions()
        if store_error is not None:
            self.show_message(store_error.text, "warning")

    # -- construction ----------------------------------------------------------------------------

    def _build_central(self) -> None:
        self.message_bar = MessageBar()
        self.prompt_label = QLabel()
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setObjectName("prompt")
        self.prompt_edit.setTabChangesFocus(True)
        self.prompt_label.setBuddy(self.prompt_edit)
        font = self.prompt_edit.font()
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.prompt_edit.setFont(font)

        self.generate_button = QPushButton()
        self.generate_button.setObjectName("generate")
        self.generate_button.setDefault(False)
        self.generate_button.clicked.connect(self._on_generate_button_clicked)
        self.continue_button = QPushButton()
        self.continue_button.setObjectName("continue")
        self.continue_button.clicked.connect(self.continue_generation)
        self.copy_button = QPushButton()
        self.copy_button.setObjectName("copy")
        self.copy_button.clicked.connect(self.copy_output)
        self.clear_button = QPushButton()
        self.clear_button.setObjectName("clear")
        self.clear_button.clicked.connect(self.clear_output)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button)
        buttons.addWidget(self.continue_button)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.clear_button)

        self.output_label = QLabel()
        self.output = OutputPane()
        self.output_label.setBuddy(self.output)
        self.output.currentChanged.connect(self._on_variant_changed)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.prompt_label)
        top_layout.addWidget(self.prompt_edit)
        top_layout.addLayout(buttons)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.output_label)
        bottom_layout.addWidget(self.output)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(bottom)
        splitter.setSizes([260, 480])
        splitter.setChildrenCollapsible(False)

        self.model_picker = ModelPicker()
        self.model_picker.model_requested.connect(self._on_model_requested)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.model_picker, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.message_bar)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)

    def _build_docks(self) -> None:
        self.params = ParametersPanel()
        scroll = QScrollArea()
        scroll.setWidget(self.params)
        scroll.setWidgetResizable(True)
        self.params_dock = QDockWidget()
        self.params_dock.setObjectName("parameters_dock")
        self.params_dock.setWidget(scroll)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.params_dock)

        self.inspector = TokenInspector()
        self.inspector_dock = QDockWidget()
        self.inspector_dock.setObjectName("inspector_dock")
        self.inspector_dock.setWidget(self.inspector)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.inspector_dock)
        self.tabifyDockWidget(self.params_dock, self.inspector_dock)
        self.params_dock.raise_()

        self.history = HistoryPanel(self.store)
        self.history.open_requested.connect(self.open_record)
        self.history.reproduce_requested.connect(self.reproduce)
        self.history.export_requested.connect(self._on_export_requested)
        self.history.failed.connect(self._on_history_failed)
        self.history_dock = QDockWidget()
        self.history_dock.setObjectName("history_dock")
        self.history_dock.setWidget(self.history)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.history_dock)
        self.resizeDocks([self.history_dock, self.params_dock], [280, 420], Qt.Orientation.Horizontal)

    def _action(self, slot: Callable[[], Any], *shortcuts: QKeySequence | QKeySequence.StandardKey | str) -> QAction:
        action = QAction(self)
        action.triggered.connect(lambda _checked=False: slot())
        if shortcuts:
            action.setShortcuts([QKeySequence(s) for s in shortcuts])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.act_generate = self._action(self.generate, "Ctrl+Return", "Ctrl+Enter")
        self.act_stop = self._action(self.stop, "Esc")
        self.act_continue = self._action(self.continue_generation, "Ctrl+Shift+Return", "Ctrl+Shift+Enter")
        self.act_copy = self._action(self.copy_output, "Ctrl+Shift+C")
        self.act_clear = self._action(self.clear_output, "Ctrl+Shift+L")
        self.act_open_folder = self._action(lambda: self._on_model_requested("folder", None), "Ctrl+O")
        self.act_remote = self._action(lambda: self._on_model_requested("remote", None), "Ctrl+Shift+O")
        self.act_manage_models = self._action(self.open_model_manager, "Ctrl+Shift+M")
        self.act_perplexity = self._action(self.open_perplexity)
        # Tools > llama.cpp type: the quantization the fast engine loads (kept between sessions).
        from gptdesk.models.convert import DEFAULT_QUANT, QUANT_TYPES

        saved = str(self._qsettings.value("quant", DEFAULT_QUANT))
        self.quant = saved if saved in QUANT_TYPES else DEFAULT_QUANT
        self.quant_group = QActionGroup(self)
        self.act_quants: dict[str, QAction] = {}
        for quant in QUANT_TYPES:
            action = QAction(quant, self)
            action.setCheckable(True)
            action.setChecked(quant == self.quant)
            action.triggered.connect(lambda _checked=False, q=quant: self.set_quant(q))
            self.quant_group.addAction(action)
            self.act_quants[quant] = action
        self.act_quit = self._action(self.close, QKeySequence.StandardKey.Quit)
        self.act_focus_prompt = self._action(self._focus_prompt, "Ctrl+L")
        self.act_focus_model = self._action(self.model_picker.combo.setFocus, "Ctrl+M")
        self.act_search_history = self._action(self._focus_history_search, "Ctrl+F")
        self.act_export_all = {fmt: self._action(partial(self._on_export_requested, None, fmt)) for fmt in FORMATS}
        self.language_group = QActionGroup(self)
        self.act_languages: dict[str, QAction] = {}
        for lang, name in (("ru", "Русский"), ("en", "English")):
            action = QAction(name, self)
            action.setCheckable(True)
            action.triggered.connect(lambda _checked=False, code=lang: self.set_language(code))
            self.language_group.addAction(action)
            self.act_languages[lang] = action
        self.act_languages[current_language()].setChecked(True)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        self.file_menu = bar.addMenu("")
        self.file_menu.addAction(self.act_manage_models)
        self.file_menu.addAction(self.act_open_folder)
        self.file_menu.addAction(self.act_remote)
        self.export_menu = self.file_menu.addMenu("")
        for action in self.act_export_all.values():
            self.export_menu.addAction(action)
        self.file_menu.addSeparator()
        self.file_menu.addAction(self.act_quit)
        self.generation_menu = bar.addMenu("")
        for action in (self.act_generate, self.act_stop, self.act_continue, self.act_copy, self.act_clear):
            self.generation_menu.addAction(action)
        self.view_menu = bar.addMenu("")
        for action in (self.act_focus_prompt, self.act_focus_model, self.act_search_history):
            self.view_menu.addAction(action)
        self.view_menu.addSeparator()
        for dock in (self.history_dock, self.params_dock, self.inspector_dock):
            self.view_menu.addAction(dock.toggleViewAction())
        self.tools_menu = bar.addMenu("")
        self.tools_menu.addAction(self.act_perplexity)
        self.quant_menu = self.tools_menu.addMenu("")
        for action in self.act_quants.values():
            self.quant_menu.addAction(action)
        self.language_menu = bar.addMenu("")
        for action in self.act_languages.values():
            self.language_menu.addAction(action)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.status_labels: dict[str, QLabel] = {}
        for key in ("model", "device", "dtype", "ram", "speed", "first_token", "tokens"):
            label = QLabel("—")
            label.setObjectName(f"status_{key}")
            self.status_labels[key] = label
            bar.addPermanentWidget(label)
        self.load_progress = QProgressBar()
        self.load_progress.setObjectName("load_progress")
        self.load_progress.setMaximumWidth(220)
        self.load_progress.setRange(0, 100)
        self.load_progress.setTextVisible(True)
        self.load_progress.hide()
        # Permanent: a temporary status message would hide a normal status-bar widget.
        bar.insertPermanentWidget(0, self.load_progress)

    # -- language --------------------------------------------------------------------------------

    def set_language(self, lang: str) -> None:
        """Switch the interface language now (Russian or English) and remember the choice."""
        code: Lang = "ru" if lang == "ru" else "en"
        if self.translations is not None:
            self.translations.apply(code)
        else:
            from gptdesk.i18n import set_language

            set_language(code)
        # Qt posts LanguageChange to the top-level widgets; deliver it now, so every widget
        # (and anything that reads its texts right after) is in the new language at once.
        QCoreApplication.sendPostedEvents(None, QEvent.Type.LanguageChange)
        self.act_languages[code].setChecked(True)
        # Number fields follow the language: "0,7" in Russian, "0.7" in English.
        self.setLocale(QLocale(QLocale.Language.Russian if code == "ru" else QLocale.Language.English))
        self._qsettings.setValue("language", code)
        self.retranslate()
        self.language_changed.emit(code)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def retranslate(self) -> None:
        if not hasattr(self, "status_labels"):
            return
        self.setWindowTitle(self.tr("GPT Desk"))
        self.prompt_label.setText(self.tr("&Prompt (Ctrl+Enter generates, Esc stops):"))
        self.prompt_edit.setPlaceholderText(
            self.tr("Type the beginning of a text, e.g. «Жили-были старик со старухой», and press Ctrl+Enter.")
        )
        self.prompt_edit.setAccessibleName(self.tr("Prompt"))
        self.prompt_edit.setAccessibleDescription(self.tr("The text the model continues. Ctrl+Enter generates."))
        self.output_label.setText(self.tr("&Output:"))
        self.continue_button.setText(self.tr("Co&ntinue"))
        self.continue_button.setToolTip(self.tr("Continue the shown text from where it stopped (Ctrl+Shift+Enter)"))
        self.continue_button.setAccessibleName(self.tr("Continue"))
        self.copy_button.setText(self.tr("&Copy"))
        self.copy_button.setToolTip(self.tr("Copy the shown text to the clipboard (Ctrl+Shift+C)"))
        self.copy_button.setAccessibleName(self.tr("Copy output"))
        self.clear_button.setText(self.tr("C&lear"))
        self.clear_button.setToolTip(self.tr("Clear the output and the generated tokens (Ctrl+Shift+L)"))
        self.clear_button.setAccessibleName(self.tr("Clear output"))
        self._retranslate_generate_button()
        self.params_dock.setWindowTitle(self.tr("Parameters"))
        self.inspector_dock.setWindowTitle(self.tr("Tokens"))
        self.history_dock.setWindowTitle(self.tr("History"))
        self.file_menu.setTitle(self.tr("&File"))
        self.export_menu.setTitle(self.tr("&Export all history"))
        self.generation_menu.setTitle(self.tr("&Generation"))
        self.view_menu.setTitle(self.tr("&View"))
        self.language_menu.setTitle(self.tr("&Language"))
        self.tools_menu.setTitle(self.tr("&Tools"))
        self.act_perplexity.setText(self.tr("How well does this model know my text?…"))
        self.quant_menu.setTitle(self.tr("llama.cpp &type (speed against quality)"))
        self.act_generate.setText(self.tr("&Generate"))
        self.act_stop.setText(self.tr("&Stop"))
        self.act_continue.setText(self.tr("Co&ntinue"))
        self.act_copy.setText(self.tr("&Copy output"))
        self.act_clear.setText(self.tr("C&lear output"))
        self.act_open_folder.setText(self.tr("&Open model folder…"))
        self.act_remote.setText(self.tr("Connect to a &remote server…"))
        self.act_manage_models.setText(self.tr("&Models: download and manage…"))
        self.act_quit.setText(self.tr("&Quit"))
        self.act_focus_prompt.setText(self.tr("Go to the &prompt"))
        self.act_focus_model.setText(self.tr("Go to the &model list"))
        self.act_search_history.setText(self.tr("&Search history"))
        names = {"markdown": "Markdown", "json": "JSON", "text": self.tr("plain text")}
        for fmt, action in self.act_export_all.items():
            action.setText(self.tr("As {fmt}…").format(fmt=names[fmt]))
        tips = {
            "model": self.tr("The model in use"),
            "device": self.tr("Where it runs"),
            "dtype": self.tr("Number format of the weights"),
            "ram": self.tr("Memory used by GPT Desk"),
            "speed": self.tr("Tokens per second while generating"),
            "first_token": self.tr("Time to the first token"),
            "tokens": self.tr("Tokens generated so far"),
        }
        for key, tip in tips.items():
            self.status_labels[key].setToolTip(tip)
            self.status_labels[key].setAccessibleName(tip)
        self.load_progress.setAccessibleName(self.tr("Model loading progress"))
        self._update_model_labels()
        self._update_ram()
        self._update_live_figures()
        if self._message is not None:
            self.message_bar.show_message(self._message[0].get(), self._message[1])
        self._update_estimate()

    def _retranslate_generate_button(self) -> None:
        if self._gen is not None:
            self.generate_button.setText(self.tr("&Stop"))
            self.generate_button.setToolTip(self.tr("Stop generating (Esc)"))
            self.generate_button.setAccessibleName(self.tr("Stop"))
        else:
            self.generate_button.setText(self.tr("&Generate"))
            self.generate_button.setToolTip(self.tr("Continue the prompt with the model (Ctrl+Enter)"))
            self.generate_button.setAccessibleName(self.tr("Generate"))

    # -- messages --------------------------------------------------------------------------------

    def show_message(self, text: Text, level: str = "info") -> None:
        self._message = (text, level)
        self.message_bar.show_message(text.get(), level)

    def clear_message(self) -> None:
        self._message = None
        self.message_bar.hide()

    # -- models ----------------------------------------------------------------------------------

    def start(self, model: str | None = None) -> None:
        """After show(): look for local models and load `model` (None: the embedded one)."""
        self.scan_models()
        self.load_model(model)

    def scan_models(self) -> None:
        def scan(_progress: Progress) -> dict[str, Path | None]:
            from gptdesk.models.locate import find_local

            found: dict[str, Path | None] = {}
            for entry in CATALOG:
                try:
                    found[entry.id] = find_local(entry.id)
                except Exception:  # a damaged cache is not worth a message here; loading will say
                    found[entry.id] = None
            return found

        worker = CallWorker(scan)
        worker.finished.connect(self._on_scan_finished)
        self._start("scan", worker)

    def _on_scan_finished(self, presence: object) -> None:
        if isinstance(presence, dict):
            self.model_picker.set_presence(presence)

    def load_model(self, name: str | None, *, kind: str = "catalog", label: str = "") -> bool:
        """Load a catalog model, hub id or folder in a worker (None: the embedded model)."""

        quant = self.quant

        def load(progress: Progress) -> Engine:
            progress(Text("Starting the engine", "Запуск движка"), None)
            warm_up()
            from gptdesk.engine import load_engine

            # "auto": the quantized llama.cpp engine on a CPU when installed, else transformers;
            # beam search falls back to transformers with a notice.
            return load_engine(name, engine="auto", progress=progress, quant=quant)

        key: object = name
        if kind == "catalog":
            entry = find_entry(name or EMBEDDED_ID)
            key = entry.id if entry is not None else name
        return self.load_engine(load, kind=kind, key=key, label=label or str(name or EMBEDDED_ID))

    def open_model_manager(self) -> None:
        """The model manager (download, delete, use); choosing a model there loads it here."""
        from gptdesk.ui.model_manager import ModelManagerDialog

        dialog = ModelManagerDialog(self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.model_chosen.connect(self._on_model_chosen)
        self.model_manager = dialog
        dialog.show()

    def set_quant(self, quant: str) -> None:
        """The llama.cpp type for the next loads; the model loaded on llama.cpp is loaded again in it."""
        self.quant = quant
        self.act_quants[quant].setChecked(True)
        self._qsettings.setValue("quant", quant)
        kind, key, label = self._load_target
        if self.engine is not None and self.engine.info.engine == "llamacpp" and kind == "catalog":
            self.load_model(key if isinstance(key, str) else None, label=label)

    def open_perplexity(self) -> None:
        """Tools > How well does this model know my text? (for the loaded local model, else the embedded one)."""
        from gptdesk.ui.perplexity_dialog import PerplexityDialog

        local = self.engine is not None and self.engine.info.engine != "remote"
        dialog = PerplexityDialog(self, model=self.engine.info.model_id if local and self.engine else None)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.perplexity_dialog = dialog
        dialog.show()

    def _on_model_chosen(self, name: str) -> None:
        self.load_model(name)

    def connect_remote(self, url: str, model: str | None = None, api_key: str | None = None) -> bool:
        """Use a model on an OpenAI-compatible server (gptdesk.engine.remote, imported when needed)."""

        def connect(progress: Progress) -> Engine:
            progress(Text(f"Connecting to {url}", f"Подключение к {url}"), None)
            remote = importlib.import_module("gptdesk.engine.remote")
            engine: Engine = remote.RemoteEngine.connect(url, model=model, api_key=api_key)
            return engine

        return self.load_engine(connect, kind="remote", key=url, label=f"{model or '?'} @ {url}")

    def load_engine(self, call: Callable[[Progress], Engine], *, kind: str, key: object, label: str) -> bool:
        """Run `call` in a worker; on success its engine replaces the current one."""
        if self.loading or self._gen is not None:
            self.show_message(
                Text(
                    "Wait until the current generation or model load ends, then choose the model again.",
                    "Дождитесь окончания текущей генерации или загрузки модели и выберите модель снова.",
                ),
                "warning",
            )
            self.model_picker.revert()
            return False
        self.loading = True
        self._load_target = (kind, key, label)
        self.load_progress.setRange(0, 0)
        self.load_progress.setFormat(self.tr("Loading {model}…").format(model=label))
        self.load_progress.show()
        self._update_model_labels()
        worker = CallWorker(call)
        worker.progress.connect(self._on_load_progress)
        worker.finished.connect(self._on_model_loaded)
        worker.failed.connect(self._on_model_failed)
        self._start("load", worker)
        self._update_actions()
        return True

    def _on_load_progress(self, text: object, fraction: object) -> None:
        message = text.get() if isinstance(text, Text) else str(text)
        if isinstance(fraction, float | int):
            self.load_progress.setRange(0, 100)
            self.load_progress.setValue(round(float(fraction) * 100))
        else:
            self.load_progress.setRange(0, 0)
        self.load_progress.setFormat(message + " %p%")
        self.load_progress.setToolTip(message)

    def _on_model_loaded(self, engine: object) -> None:
        if self._closing:
            if hasattr(engine, "close"):
                engine.close()
            return
        kind, key, label = self._load_target
        self.loading = False
        self.load_progress.hide()
        old = self.engine
        self.set_engine(engine, kind=kind, key=key, label=label)  # type: ignore[arg-type]
        if old is not None and old is not engine:
            old.close()
        if self._message is not None and self._message[1] == "error":
            self.clear_message()
        self.model_loaded.emit(engine)
        pending, self._pending = self._pending, None
        if pending is not None:
            pending()

    def _on_model_failed(self, exc: object) -> None:
        if self._closing:
            return
        self.loading = False
        self.load_progress.hide()
        self._pending = None
        label = self._load_target[2]
        text = error_text(exc if isinstance(exc, BaseException) else RuntimeError(str(exc)))
        if self.engine is not None:
            current = self.engine.info.model_id
            tail = Text(
                f" The previous model ({current}) is still in use.",
                f" По-прежнему используется прежняя модель ({current}).",
            )
        else:
            tail = Text(
                " No model is loaded: choose one in the model list.", " Модель не загружена: выберите её в списке."
            )
        self.show_message(Text(f"Could not load {label}: ", f"Не удалось загрузить {label}: ") + text + tail, "error")
        self.model_picker.revert()
        self._update_model_labels()
        self._update_actions()
        self.model_failed.emit(exc)

    def set_engine(self, engine: Engine, *, kind: str = "catalog", key: object = None, label: str = "") -> None:
        """Use `engine` from now on (the caller closes the previous one)."""
        self.engine = engine
        # The model and the libraries behind it live as long as the engine: move them out of the
        # garbage collector's sight. A full collection over torch's and transformers' ~400,000
        # objects held the GIL, and so froze the window, for 300-470 ms (measured in the tests).
        gc.freeze()
        self._token_cache = None
        if kind == "catalog" and find_entry(engine.info.model_id) is not None:
            entry = find_entry(engine.info.model_id)
            assert entry is not None
            self.model_picker.set_current("catalog", entry.id)
        else:
            self.model_picker.set_current(
                kind, key if key is not None else engine.info.model_id, label or engine.info.model_id
            )
        self._update_model_labels()
        self._update_actions()
        self._update_estimate()

    def _on_model_requested(self, kind: str, key: object) -> None:
        if kind == "catalog":
            self.load_model(str(key), kind="catalog")
        elif kind == "folder" and key is None:
            folder = QFileDialog.getExistingDirectory(self, self.tr("Choose a model folder"))
            if folder:
                self.load_model(folder, kind="folder", label=Path(folder).name)
            else:
                self.model_picker.revert()
        elif kind == "folder":
            self.load_model(str(key), kind="folder", label=Path(str(key)).name)
        elif kind == "remote":
            dialog = RemoteDialog(self)
            if dialog.exec() == QDialog.DialogCode.Accepted:
                url, model, api_key = dialog.values()
                self.connect_remote(url, model, api_key)
            else:
                self.model_picker.revert()

    def _update_model_labels(self) -> None:
        labels = self.status_labels
        if self.engine is None:
            labels["model"].setText(self.tr("Model: loading…") if self.loading else self.tr("Model: none"))
            labels["device"].setText("—")
            labels["dtype"].setText("—")
            return
        info = self.engine.info
        labels["model"].setText(self.tr("Model: {name}").format(name=info.model_id))
        labels["device"].setText(self.tr("Device: {device}").format(device=info.device))
        labels["dtype"].setText(info.dtype)

    def _update_ram(self) -> None:
        try:
            rss = self._process.memory_info().rss
        except psutil.Error:  # the process table may be unreadable in a sandbox
            return
        self.status_labels["ram"].setText(self.tr("RAM: {size}").format(size=_format_bytes(rss, current_language())))

    # -- generating ------------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        return self._gen is not None

    def _on_generate_button_clicked(self) -> None:
        if self._gen is not None:
            self.stop()
        else:
            self.generate()

    def generate(self) -> bool:
        """Continue the prompt in the editor with the current settings. False if it could not start."""
        prompt = self.prompt_edit.toPlainText()
        try:
            settings = self.params.settings()
        except SettingsError as exc:
            self.show_message(Text("Fix the settings first: ", "Сначала исправьте параметры: ") + exc.text, "error")
            return False
        return self._start_generation(prompt, settings, kind="new", base_prompt=prompt)

    def continue_generation(self) -> bool:
        """Extend the shown text (the selected variant) from where it stopped."""
        if self._last is None or self._gen is not None:
            return False
        parent_id, base_prompt = self._last
        variant = max(0, self.output.currentIndex())
        shown = self.output.text(variant)
        try:
            settings = self.params.settings()
        except SettingsError as exc:
            self.show_message(Text("Fix the settings first: ", "Сначала исправьте параметры: ") + exc.text, "error")
            return False
        return self._start_generation(
            base_prompt + shown, settings, kind="continue", base_prompt=base_prompt, prefix=shown, parent_id=parent_id
        )

    def _estimate_for(self, prompt_tokens: int, settings: GenerationSettings) -> CostEstimate | None:
        if self.engine is None or not is_local(self.engine):
            return None
        info = self.engine.info
        _min_new, max_new = settings.resolve_lengths(prompt_tokens)
        return estimate(
            engine_shape(self.engine),
            dtype=info.dtype if info.dtype in DTYPE_BYTES else "float32",
            prompt_tokens=prompt_tokens,
            max_new_tokens=max_new,
            num_beams=settings.num_beams,
            num_return_sequences=settings.num_return_sequences,
            do_sample=settings.do_sample,
        )

    def _start_generation(
        self,
        prompt: str,
        settings: GenerationSettings,
        *,
        kind: str,
        base_prompt: str,
        prefix: str = "",
        parent_id: int | None = None,
    ) -> bool:
        engine = self.engine
        if self._gen is not None or self.loading or engine is None:
            if engine is None and not self.loading:
                self.show_message(
                    Text(
                        "No model is loaded: choose one in the model list.",
                        "Модель не загружена: выберите её в списке.",
                    ),
                    "error",
                )
            return False
        if not prompt.strip():
            self.show_message(_EMPTY_PROMPT, "error")
            self.prompt_edit.setFocus()
            return False
        pieces: list[TokenPiece] = []
        try:
            if is_local(engine):
                pieces = engine.tokenize(prompt)
                cost = self._estimate_for(len(pieces), settings)
                if cost is not None:
                    check_affordable(cost, weights_loaded=True)
        except (InsufficientMemoryError, SettingsError) as exc:
            self.show_message(Text("Not started: ", "Не запущено: ") + exc.text, "error")
            return False
        except GptDeskError as exc:
            self.show_message(exc.text, "error")
            return False
        seed = settings.seed if settings.seed is not None else random.randrange(2**31)
        recorder: LiveRecorder | None = None
        if self.store is not None:
            try:
                recorder = LiveRecorder.start(
                    self.store,
                    prompt,
                    settings,
                    seed=seed,
                    info=engine.info,
                    engine=engine.name,
                    kind=kind,
                    parent_id=parent_id,
                )
            except HistoryError as exc:
                self.show_message(
                    Text("This generation will not be saved in history: ", "Эта генерация не попадёт в историю: ")
                    + exc.text,
                    "warning",
                )
        else:
            self.clear_message()
        if recorder is not None:
            self.clear_message()
        cancel = threading.Event()
        worker = GenerationWorker(
            engine, prompt, settings.updated(seed=seed), cancel, recorder, top_alternatives=TOP_ALTERNATIVES
        )
        worker.token_received.connect(self._on_token_received)
        worker.notice_received.connect(self._on_notice_received)
        worker.finished.connect(self._on_generation_finished)
        worker.failed.connect(self._on_generation_failed)
        worker.history_failed.connect(self._on_history_failed)
        self.output.reset(settings.num_return_sequences, prefix, context=base_prompt)
        self.inspector.clear_generated()
        self.inspector.set_prompt_tokens(pieces)
        self.last_finished = None
        self._gen = _Generation(worker, QThread(), cancel, recorder, prompt, base_prompt, kind)
        self._gen.thread = self._start("generate", worker)
        self._stats_timer.start()
        self._update_live_figures()
        self._update_actions()
        self.history.refresh()
        if recorder is not None:
            self.history.select(recorder.gen_id)
        self.generation_started.emit(recorder.gen_id if recorder else None)
        return True

    def stop(self) -> None:
        """Stop the running generation at the next token (sets the engine's cancel event directly)."""
        gen = self._gen
        if gen is None or gen.cancel.is_set():
            return
        gen.cancel.set()
        gen.stop_requested = time.perf_counter()
        self.generate_button.setEnabled(False)
        self.statusBar().showMessage(self.tr("Stopping…"))

    def _on_token_received(self, event: object) -> None:
        gen = self._gen
        if gen is None or self._closing or not isinstance(event, TokenEvent):
            return
        # Only bookkeeping here; the widgets are updated in batches (_show_pending_tokens), so a
        # fast engine cannot queue more widget work than one pass of the event loop can do.
        now = time.perf_counter()
        self._pending_tokens.append(event)
        if not self._token_timer.isActive():
            self._token_timer.start()
        if event.token_id >= 0:
            gen.tokens += 1
            gen.last_token = now
            if gen.first_token is None:
                gen.first_token = now
            if gen.stop_requested is not None:
                gen.tokens_after_stop += 1

    def _show_pending_tokens(self) -> None:
        events, self._pending_tokens = self._pending_tokens, []
        if not events:
            return
        texts: dict[int, list[str]] = {}
        for event in events:
            texts.setdefault(event.sequence, []).append(event.text)
        for sequence, parts in texts.items():
            self.output.append(sequence, "".join(parts))
        self.inspector.add_generated_many(events)
        for event in events:
            self.token_received.emit(event)

    def _on_notice_received(self, notice: object) -> None:
        if isinstance(notice, Notice) and not self._closing:
            self.show_message(notice.text, "warning")

    def _end_generation(self) -> _Generation | None:
        self._token_timer.stop()
        self._show_pending_tokens()
        gen, self._gen = self._gen, None
        self._stats_timer.stop()
        self.generate_button.setEnabled(True)
        self.statusBar().clearMessage()
        if gen is not None and gen.stop_requested is not None:
            self.stop_latency = time.perf_counter() - gen.stop_requested
        self._update_actions()
        return gen

    def _on_generation_finished(self, finished: object) -> None:
        if self._closing or not isinstance(finished, Finished):
            return
        gen = self._end_generation()
        self.last_finished = finished
        if gen is not None:
            self._last = (gen.recorder.gen_id if gen.recorder else None, gen.base_prompt)
        t = finished.timings
        self._show_figures(
            tokens=max(finished.generated_tokens, default=0), speed=t.tokens_per_second, first=t.first_token
        )
        if finished.finish_reason == "cancelled":
            self.statusBar().showMessage(
                self.tr("Stopped after {n} tokens.").format(n=max(finished.generated_tokens, default=0)), 5000
            )
        self.history.refresh()
        self._update_actions()
        self.generation_finished.emit(finished)

    def _on_generation_failed(self, exc: object) -> None:
        if self._closing:
            return
        gen = self._end_generation()
        if gen is not None:
            self._last = (gen.recorder.gen_id if gen.recorder else None, gen.base_prompt)
        error = exc if isinstance(exc, BaseException) else RuntimeError(str(exc))
        self.show_message(Text("Generation failed: ", "Генерация не удалась: ") + error_text(error), "error")
        self.history.refresh()
        self._update_actions()
        self.generation_failed.emit(exc)

    def _on_history_failed(self, exc: object) -> None:
        if self._closing:
            return
        text = exc.text if isinstance(exc, GptDeskError) else Text(str(exc), str(exc))
        self.show_message(Text("History: ", "История: ") + text, "warning")

    def _on_variant_changed(self, index: int) -> None:
        if index >= 0:
            self.inspector.show_variant(index)

    def _update_live_figures(self) -> None:
        gen = self._gen
        if gen is None:
            return
        speed = None
        if gen.first_token is not None and gen.last_token is not None and gen.tokens > 1:
            elapsed = gen.last_token - gen.first_token
            speed = (gen.tokens - 1) / elapsed if elapsed > 0 else None
        first = gen.first_token - gen.started if gen.first_token is not None else None
        self._show_figures(tokens=gen.tokens, speed=speed, first=first)

    def _show_figures(self, *, tokens: int, speed: float | None, first: float | None) -> None:
        labels = self.status_labels
        labels["tokens"].setText(self.tr("Tokens: {n}").format(n=tokens))
        labels["speed"].setText(self.tr("{v} tok/s").format(v=_number(speed, 1)))
        labels["first_token"].setText(self.tr("First token: {s} s").format(s=_number(first, 2)))

    def _update_actions(self) -> None:
        busy = self._gen is not None
        ready = self.engine is not None and not self.loading
        valid = self.params.current is not None
        self.act_generate.setEnabled(ready and not busy and valid)
        self.act_stop.setEnabled(busy)
        self.act_continue.setEnabled(ready and not busy and valid and self._last is not None)
        self.continue_button.setEnabled(self.act_continue.isEnabled())
        self.generate_button.setEnabled((ready and valid) or busy)
        self.model_picker.setEnabled(not busy and not self.loading)
        self.act_open_folder.setEnabled(not busy and not self.loading)
        self.act_remote.setEnabled(not busy and not self.loading)
        self.act_manage_models.setEnabled(not busy and not self.loading)
        self.history.reproduce_button.setEnabled(
            not busy and not self.loading and self.history.selected_id() is not None
        )
        self._retranslate_generate_button()
        if not valid and not busy:
            self.generate_button.setToolTip(self.tr("The settings are invalid: see the Parameters panel"))

    def _on_settings_changed(self, _settings: object) -> None:
        self._update_actions()
        self._estimate_timer.start()

    def _update_estimate(self) -> None:
        engine = self.engine
        panel = self.params
        if engine is None:
            panel.set_estimate(self.tr("Load a model to see the cost."), True)
            return
        if not is_local(engine):
            panel.set_estimate(self.tr("The model runs on the server; its memory is not counted here."), True)
            return
        prompt = self.prompt_edit.toPlainText()
        if self._token_cache is None or self._token_cache[0] != prompt:
            try:
                self._token_cache = (prompt, engine.tokenize(prompt) if prompt else [])
            except GptDeskError as exc:
                panel.set_estimate(exc.text.get(), False)
                return
        pieces = self._token_cache[1]
        if self._gen is None:
            self.inspector.set_prompt_tokens(pieces)
        settings = panel.current
        if settings is None:
            panel.set_estimate(self.tr("Fix the settings to see the cost."), True)
            return
        try:
            cost = self._estimate_for(len(pieces), settings)
        except SettingsError as exc:
            panel.set_estimate(exc.text.get(), False)
            return
        if cost is None:
            return
        ok = fits_in_memory(cost, weights_loaded=True)
        text = self.tr("{n} prompt tokens, up to {m} new. ").format(n=len(pieces), m=cost.max_new_tokens)
        text += cost.describe()
        if not ok:
            text += " " + self.tr("This does not fit in the free memory: Generate will refuse it.")
        panel.set_estimate(text, ok)

    # -- output ----------------------------------------------------------------------------------

    def copy_output(self) -> None:
        text = self.output.full_text(max(0, self.output.currentIndex()))
        QGuiApplication.clipboard().setText(text)
        self.statusBar().showMessage(self.tr("Copied {n} characters.").format(n=len(text)), 3000)

    def clear_output(self) -> None:
        if self._gen is not None:
            return
        self.output.reset(1)
        self.inspector.clear_generated()
        self._last = None
        self.clear_message()
        self._update_actions()

    # -- history ---------------------------------------------------------------------------------

    def _record(self, gen_id: int) -> GenerationRecord | None:
        if self.store is None:
            return None
        try:
            return self.store.get(gen_id)
        except HistoryError as exc:
            self._on_history_failed(exc)
            return None

    def open_record(self, gen_id: int) -> None:
        """Show a past generation: its prompt, text and settings; Continue extends it."""
        if self._gen is not None:
            return
        record = self._record(gen_id)
        if record is None:
            return
        self.prompt_edit.setPlainText(record.prompt)
        self.output.set_texts(record.texts, context=record.prompt)
        self.inspector.clear_generated()
        with suppress(TypeError, ValueError):  # settings of another version: show the text anyway
            self.params.set_settings(record.settings)
        self._last = (record.id, record.prompt)
        self._show_figures(
            tokens=record.generated_tokens or 0, speed=record.tokens_per_second, first=record.first_token_s
        )
        self.statusBar().showMessage(
            self.tr("Generation #{id} of {when}, model {model}, seed {seed}.").format(
                id=record.id, when=record.created_at[:19].replace("T", " "), model=record.model_id, seed=record.seed
            ),
            8000,
        )
        self._update_actions()

    def reproduce(self, gen_id: int) -> bool:
        """Run a past generation again with its model, settings and seed."""
        record = self._record(gen_id)
        if record is None or self._gen is not None or self.loading:
            return False
        try:
            settings = record.reproduce_settings()
        except SettingsError as exc:
            self.show_message(Text("Cannot reproduce: ", "Нельзя повторить: ") + exc.text, "error")
            return False
        engine = self.engine
        if engine is not None and record.model_id and engine.info.model_id != record.model_id:
            if record.engine == "remote":
                self.show_message(
                    Text(
                        f"Generation #{record.id} was made on the server model {record.model_id}; connect to it "
                        "first (Remote server…), then reproduce.",
                        f"Генерация №{record.id} сделана серверной моделью {record.model_id}; сначала "
                        "подключитесь к ней («Удалённый сервер…»), затем повторите.",
                    ),
                    "warning",
                )
                return False
            self._pending = lambda: self._reproduce_now(record, settings)
            return self.load_model(record.model_id, kind="catalog" if find_entry(record.model_id) else "folder")
        return self._reproduce_now(record, settings)

    def _reproduce_now(self, record: GenerationRecord, settings: GenerationSettings) -> bool:
        self.prompt_edit.setPlainText(record.prompt)
        self.params.set_settings(settings)
        started = self._start_generation(
            record.prompt, settings, kind="reproduce", base_prompt=record.prompt, parent_id=record.id
        )
        engine = self.engine
        if started and engine is not None and record.model_revision and engine.info.revision != record.model_revision:
            self.show_message(
                Text(
                    f"The model's revision changed since generation #{record.id} ({record.model_revision} → "
                    f"{engine.info.revision}); the text may differ.",
                    f"Ревизия модели изменилась после генерации №{record.id} ({record.model_revision} → "
                    f"{engine.info.revision}); текст может отличаться.",
                ),
                "warning",
            )
        return started

    def _on_export_requested(self, ids: object, fmt: str) -> None:
        if self.store is None:
            return
        try:
            if isinstance(ids, list):
                records = [self.store.get(int(i)) for i in ids]
            else:
                records = self.store.find(self.history.search.text(), limit=1_000_000)
        except HistoryError as exc:
            self._on_history_failed(exc)
            return
        if not records:
            return
        suffix = FORMATS[fmt]
        default = f"gptdesk-{records[0].id}{suffix}" if len(records) == 1 else f"gptdesk-history{suffix}"
        path, _filter = QFileDialog.getSaveFileName(
            self, self.tr("Export history"), str(Path.home() / default), f"*{suffix}"
        )
        if not path:
            return
        try:
            Path(path).write_text(export(records, fmt), encoding="utf-8")
        except OSError as exc:
            self.show_message(
                Text(
                    f"Could not write {path}: {exc.strerror or exc}. Choose another folder.",
                    f"Не удалось записать {path}: {exc.strerror or exc}. Выберите другую папку.",
                ),
                "error",
            )
            return
        self.statusBar().showMessage(
            self.tr("Exported {n} generations to {path}.").format(n=len(records), path=path), 5000
        )

    # -- focus -----------------------------------------------------------------------------------

    def _focus_prompt(self) -> None:
        self.prompt_edit.setFocus()

    def _focus_history_search(self) -> None:
        self.history_dock.show()
        self.history_dock.raise_()
        self.history.search.setFocus()
        self.history.search.selectAll()

    # -- threads and closing ---------------------------------------------------------------------

    def _start(self, role: str, worker: CallWorker | GenerationWorker) -> QThread:
        previous = self._threads.pop(role, None)
        if previous is not None:
            previous[0].quit()  # it has reported already: this only joins the ended thread
            previous[0].wait()
        thread = start_in_thread(worker, f"gptdesk-{role}")
        self._threads[role] = (thread, worker)
        return thread

    def wait_for_workers(self) -> None:
        """Block until every worker thread has ended (after stopping the generation)."""
        for thread, _worker in list(self._threads.values()):
            thread.quit()
            thread.wait()

    def closeEvent(self, event: QCloseEvent) -> None:
        # Stop first (the engine halts within a token), then quit and wait for every worker, so no
        # thread outlives the window and the recorder has written the last of the output.
        self._closing = True
        if self._gen is not None:
            self._gen.cancel.set()
        self.wait_for_workers()
        self._threads.clear()
        self._stats_timer.stop()
        self._ram_timer.stop()
        self._estimate_timer.stop()
        self._qsettings.setValue("geometry", self.saveGeometry())
        self._qsettings.setValue("state", self.saveState())
        self._qsettings.sync()
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        if self.store is not None:
            self.store.close()
        super().closeEvent(event)

    def _restore_state(self) -> None:
        geometry = self._qsettings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self._qsettings.value("state")
        if isinstance(state, QByteArray):
            self.restoreState(state)

    @property
    def saved_language(self) -> str | None:
        value = self._qsettings.value("language")
        return str(value) if value in ("ru", "en") else None
