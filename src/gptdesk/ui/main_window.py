"""The main window: it assembles the features (generation, models, parameters, tokens, history, language)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QByteArray, QEvent, QLocale, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QDockWidget, QMainWindow, QScrollArea, QVBoxLayout, QWidget

from gptdesk.engine.base import Engine
from gptdesk.errors import SettingsError
from gptdesk.history.errors import HistoryError
from gptdesk.history.export import FORMATS
from gptdesk.history.store import HistoryStore, data_dir
from gptdesk.i18n import Text
from gptdesk.models.catalog import find_entry
from gptdesk.settings.generation import GenerationSettings
from gptdesk.ui.estimate_panel import EstimatePanel
from gptdesk.ui.generation import GenerationController, GenerationView
from gptdesk.ui.history_actions import HistoryActions
from gptdesk.ui.history_panel import HistoryPanel
from gptdesk.ui.history_state import HistoryKeeper
from gptdesk.ui.inspector import TokenInspector
from gptdesk.ui.lab.window import LabFeature
from gptdesk.ui.language import LanguageSwitcher
from gptdesk.ui.loading import ModelLoader
from gptdesk.ui.messages import Messages
from gptdesk.ui.model_picker import ModelPicker
from gptdesk.ui.params import ParametersPanel
from gptdesk.ui.status import StatusFigures
from gptdesk.ui.story.window import StoryFeature
from gptdesk.ui.translations import Translations
from gptdesk.ui.widgets import MessageBar
from gptdesk.ui.workers import WorkerThreads

if TYPE_CHECKING:  # imported when the dialog opens: it brings pyqtgraph
    from gptdesk.ui.teach_dialog import TeachDialog

#: Tools > Kept cache: -1 is automatic (one full context of the model), 0 keeps nothing.
CACHE_AUTO = -1
CACHE_CHOICES = (CACHE_AUTO, 0, 2048, 8192, 32768)


class MainWindow(QMainWindow):
    """The GPT Desk window.

    Signals:
        model_loaded(object): a model (an Engine) was loaded and is now in use.
        model_failed(object): loading failed (the exception); the previous model stays in use.
        generation_started(object): a generation began (its history id, or None without history).
        token_received(object): a streamed TokenEvent was shown.
        leading_beam_shown(object): a beam search's leading hypothesis (LeadingBeam) is shown.
        generation_finished(object): the Finished event of a generation that ended.
        generation_failed(object): the exception of a generation that failed.
        language_changed(str): the interface language changed ("ru" or "en").
    """

    model_loaded = Signal(object)
    model_failed = Signal(object)
    generation_started = Signal(object)
    token_received = Signal(object)
    leading_beam_shown = Signal(object)
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
        self.engine: Engine | None = None
        self._closing = False
        self._qsettings = QSettings(str(settings_file or data_dir() / "gui.ini"), QSettings.Format.IniFormat)
        self.threads = WorkerThreads()

        # Widgets.
        self.message_bar = MessageBar()
        self.messages = Messages(self.message_bar)
        self.model_picker = ModelPicker()
        self.view = GenerationView()
        self.params = ParametersPanel()
        self.inspector = TokenInspector()
        self.history = HistoryPanel(store)
        self.figures = StatusFigures(self.statusBar())
        self._build_central()
        self._build_docks()

        # Features.
        self.keeper = HistoryKeeper(store, self.messages, self.threads, error=store_error, parent=self)
        self.teach_dialog: TeachDialog | None = None  # Tools > Teach the model my texts…, while it is open
        # Left of the figures, where a warning is seen; it stays until history saves again.
        self.statusBar().insertPermanentWidget(0, self.keeper.button)
        self.generation = GenerationController(
            self.view, self.inspector, self.figures, self.messages, self.keeper, self.threads
        )
        self.loader = ModelLoader(
            self,
            self.model_picker,
            self.figures,
            self.messages,
            self.threads,
            current=lambda: self.engine,
            busy=lambda: self.generation.busy,
        )
        self.history_actions = HistoryActions(
            self,
            self.keeper,
            self.history,
            self.params,
            self.figures,
            self.messages,
            self.generation,
            self.loader,
            current=lambda: self.engine,
        )
        self.estimate = EstimatePanel(self.params, self.prompt_edit, self.inspector, busy=lambda: self.generation.busy)
        self.language = LanguageSwitcher(translations, self._qsettings, self)
        self.lab = LabFeature(
            self,
            self.threads,
            current=lambda: self.engine,
            store=store,
            settings=lambda: self.params.current,
            apply_settings=self.params.set_settings,
            prompt=self.prompt_edit.toPlainText,
            inspector=self.inspector,
            show_message=self.show_message,
        )
        self.stories = StoryFeature(
            self,
            self.threads,
            current=lambda: self.engine,
            store=store,
            settings=lambda: self.params.current,
            prompt=self.prompt_edit.toPlainText,
            show_message=self.show_message,
        )
        self._connect()
        self._build_actions()
        self._build_menus()

        self.resize(1320, 860)
        self._restore_state()
        self.retranslate()
        self._update_actions()
        if store_error is not None or (store is not None and store.problem is not None):
            store_error = store_error or (store.problem if store is not None else None)
        if store_error is not None:
            self.messages.show(store_error.text, "warning")

    # -- construction ----------------------------------------------------------------------------

    def _build_central(self) -> None:
        view = self.view
        # The widgets tests and shortcuts reach directly.
        self.prompt_label = view.prompt_label
        self.prompt_edit = view.prompt_edit
        self.generate_button = view.generate_button
        self.continue_button = view.continue_button
        self.copy_button = view.copy_button
        self.clear_button = view.clear_button
        self.output_label = view.output_label
        self.output = view.output
        self.status_labels = self.figures.labels
        self.load_progress = self.figures.load_progress
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.model_picker, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.message_bar)
        layout.addWidget(view, 1)
        self.setCentralWidget(central)

    def _dock(self, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget()
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        scroll = QScrollArea()
        scroll.setWidget(self.params)
        scroll.setWidgetResizable(True)
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.params_dock = self._dock("parameters_dock", scroll, right)
        self.inspector_dock = self._dock("inspector_dock", self.inspector, right)
        self.tabifyDockWidget(self.params_dock, self.inspector_dock)
        self.params_dock.raise_()
        self.history_dock = self._dock("history_dock", self.history, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.resizeDocks([self.history_dock, self.params_dock], [280, 420], Qt.Orientation.Horizontal)

    def _connect(self) -> None:
        self.generate_button.clicked.connect(self._on_generate_button_clicked)
        self.continue_button.clicked.connect(self.continue_generation)
        self.copy_button.clicked.connect(self.copy_output)
        self.clear_button.clicked.connect(self.clear_output)
        generation = self.generation
        generation.started.connect(self._on_generation_started)
        generation.token_received.connect(self.token_received)
        generation.leading_beam_shown.connect(self.leading_beam_shown)
        generation.finished.connect(self._on_generation_finished)
        generation.failed.connect(self._on_generation_failed)
        generation.state_changed.connect(self._update_actions)
        self.loader.loaded.connect(self._on_model_loaded)
        self.loader.failed.connect(self._on_model_failed)
        self.loader.state_changed.connect(self._on_loading_changed)
        self.params.settings_changed.connect(self._on_settings_changed)
        self.language.changed.connect(self._on_language_changed)
        self.keeper.store_changed.connect(self._on_store_changed)

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
        self.act_open_folder = self._action(lambda: self.loader.on_model_requested("folder", None), "Ctrl+O")
        self.act_remote = self._action(lambda: self.loader.on_model_requested("remote", None), "Ctrl+Shift+O")
        self.act_manage_models = self._action(self.open_model_manager, "Ctrl+Shift+M")
        self.act_perplexity = self._action(self.open_perplexity)
        self.act_teach = self._action(self.open_teach)
        # Tools > llama.cpp type: the quantization the fast engine loads (kept between sessions).
        from gptdesk.models.gguf.sizes import DEFAULT_QUANT, QUANT_TYPES

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
        self.loader.quant = self.quant
        # Tools > llama.cpp threads: automatic (one per physical core) or a number, kept between sessions.
        from gptdesk.engine.llamacpp.native import physical_cores

        self.cores = physical_cores()
        counts = list(range(0, self.cores + 1))  # 0: automatic
        self.threads_choice = self._saved_choice("threads", counts, 0)
        self.threads_group, self.act_threads = self._choice_actions(counts, self.threads_choice, self.set_threads)
        self.loader.threads_wanted = self.threads_choice or None
        # Tools > Kept cache: how many tokens of earlier texts llama.cpp keeps for the next generation.
        self.cache_choice = self._saved_choice("cache_tokens", list(CACHE_CHOICES), CACHE_AUTO)
        self.cache_group, self.act_cache = self._choice_actions(
            list(CACHE_CHOICES), self.cache_choice, self.set_cache_tokens
        )
        self.loader.cache_tokens_wanted = None if self.cache_choice == CACHE_AUTO else self.cache_choice
        self.act_quit = self._action(self.close, QKeySequence.StandardKey.Quit)
        self.act_focus_prompt = self._action(self.prompt_edit.setFocus, "Ctrl+L")
        self.act_focus_model = self._action(self.model_picker.combo.setFocus, "Ctrl+M")
        self.act_search_history = self._action(self._focus_history_search, "Ctrl+F")
        self.act_export_all = {fmt: self._action(partial(self.history_actions.export, None, fmt)) for fmt in FORMATS}
        self.act_languages = self.language.actions

    def _saved_choice(self, key: str, choices: list[int], default: int) -> int:
        """A menu's choice kept between sessions, or `default` when it is missing or no longer offered."""
        try:
            saved = int(str(self._qsettings.value(key, default)))
        except ValueError:
            return default
        return saved if saved in choices else default

    def _choice_actions(
        self, choices: list[int], checked: int, choose: Callable[[int], None]
    ) -> tuple[QActionGroup, dict[int, QAction]]:
        """Exclusive, checkable actions for a Tools submenu (their texts are set by retranslate)."""
        group = QActionGroup(self)
        actions: dict[int, QAction] = {}
        for value in choices:
            action = QAction(str(value), self)
            action.setCheckable(True)
            action.setChecked(value == checked)
            action.triggered.connect(lambda _checked=False, n=value: choose(n))
            group.addAction(action)
            actions[value] = action
        return group, actions

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
        bar.addMenu(self.lab.menu)
        bar.addMenu(self.stories.menu)
        self.tools_menu = bar.addMenu("")
        self.tools_menu.addAction(self.act_perplexity)
        self.tools_menu.addAction(self.act_teach)
        self.quant_menu = self.tools_menu.addMenu("")
        for action in self.act_quants.values():
            self.quant_menu.addAction(action)
        self.threads_menu = self.tools_menu.addMenu("")
        for action in self.act_threads.values():
            self.threads_menu.addAction(action)
        self.cache_menu = self.tools_menu.addMenu("")
        for action in self.act_cache.values():
            self.cache_menu.addAction(action)
        self.adapter_menu = self.tools_menu.addMenu("")
        self.adapter_menu.setToolTipsVisible(True)
        self.adapter_menu.aboutToShow.connect(self.fill_adapter_menu)
        self.fill_adapter_menu()
        self.language_menu = bar.addMenu("")
        for action in self.act_languages.values():
            self.language_menu.addAction(action)

    # -- language --------------------------------------------------------------------------------

    def set_language(self, lang: str) -> None:
        """Switch the interface language now (Russian or English) and remember the choice."""
        self.language.apply(lang)

    @property
    def saved_language(self) -> str | None:
        return self.language.saved

    def _on_language_changed(self, code: str) -> None:
        # Number fields follow the language: "0,7" in Russian, "0.7" in English.
        self.setLocale(QLocale(QLocale.Language.Russian if code == "ru" else QLocale.Language.English))
        self.retranslate()
        self.language_changed.emit(code)

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def retranslate(self) -> None:
        if not hasattr(self, "language"):  # a LanguageChange can arrive before the features exist
            return
        self.setWindowTitle(self.tr("GPT Desk"))
        self.view.retranslate()
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
        self.act_teach.setText(self.tr("&Teach the model my texts…"))
        self.quant_menu.setTitle(self.tr("llama.cpp &type (speed against quality)"))
        self.threads_menu.setTitle(self.tr("llama.cpp t&hreads"))
        self.threads_menu.setToolTipsVisible(True)
        self.act_threads[0].setText(self.tr("Automatic: one per core ({n})").format(n=self.cores))
        busy_tip = self.tr(
            "Fewer threads than cores help when other programs keep the processor busy: a llama.cpp thread "
            "that waits for one the system has paused holds up every step."
        )
        for count, action in self.act_threads.items():
            action.setToolTip(busy_tip)
            if count:
                action.setText(self.tr("Threads: {n}").format(n=count))
        self.adapter_menu.setTitle(self.tr("&Adapter (taught on your texts)"))
        self.fill_adapter_menu()
        self.cache_menu.setTitle(self.tr("Kept &cache (continuing without waiting)"))
        self.cache_menu.setToolTipsVisible(True)
        cache_tip = self.tr(
            "llama.cpp keeps the model's state for the texts it has just read, so Continue, Reproduce and a "
            "second variant start at once. Each kept token costs memory ({mb} MB per 1,000 tokens for the "
            "loaded model); the least recently used texts go first."
        )
        for tokens, action in self.act_cache.items():
            action.setToolTip(cache_tip.format(mb=self._cache_mb_per_1000()))
            if tokens == CACHE_AUTO:
                action.setText(self.tr("Automatic: one full context of the model"))
            elif tokens == 0:
                action.setText(self.tr("Off: read the whole text every time"))
            else:
                action.setText(self.tr("Up to {n} tokens").format(n=f"{tokens:,}".replace(",", "\u202f")))
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
        self.figures.retranslate()
        self.figures.show_model(self.engine, loading=self.loader.loading)
        self.generation.update_live_figures()
        self.messages.retranslate()
        self.estimate.update()
        self.lab.retranslate()
        self.stories.retranslate()

    # -- messages --------------------------------------------------------------------------------

    def show_message(self, text: Text, level: str = "info") -> None:
        self.messages.show(text, level)

    # -- models ----------------------------------------------------------------------------------

    @property
    def loading(self) -> bool:
        return self.loader.loading

    def start(self, model: str | None = None) -> None:
        """After show(): look for local models and load `model` (None: the embedded one)."""
        self.loader.scan()
        self.loader.load_model(model)

    def load_model(self, name: str | None, *, kind: str = "catalog", label: str = "") -> bool:
        """Load a catalog model, hub id or folder in a worker (None: the embedded model)."""
        return self.loader.load_model(name, kind=kind, label=label)

    def set_quant(self, quant: str) -> None:
        """Tools > llama.cpp type: kept between sessions; the model on llama.cpp is loaded again in it."""
        self.quant = quant
        self.act_quants[quant].setChecked(True)
        self._qsettings.setValue("quant", quant)
        self.loader.set_quant(quant)

    def set_threads(self, count: int) -> None:
        """Tools > llama.cpp threads (0: automatic): kept between sessions; a model on llama.cpp is loaded again."""
        self.threads_choice = count
        self.act_threads[count].setChecked(True)
        self._qsettings.setValue("threads", count)
        self.loader.set_threads(count or None)

    def set_cache_tokens(self, tokens: int) -> None:
        """Tools > Kept cache (CACHE_AUTO: one full context): kept between sessions; a model on llama.cpp
        is loaded again with the new limit."""
        self.cache_choice = tokens
        self.act_cache[tokens].setChecked(True)
        self._qsettings.setValue("cache_tokens", tokens)
        self.loader.set_cache_tokens(None if tokens == CACHE_AUTO else tokens)

    def fill_adapter_menu(self) -> None:
        """Tools > Adapter: "None" and the adapters `gptdesk tune` made for the model loaded now."""
        from gptdesk.errors import GptDeskError
        from gptdesk.models.adapters import adapters_for

        self.adapter_menu.clear()
        self.adapter_group = QActionGroup(self)
        engine = self.loader.current()
        try:
            found = adapters_for(engine.info.model_id) if engine is not None else []
        except (GptDeskError, OSError):
            found = []  # an unreadable adapters folder lists none; applying one names the problem
        current = engine.info.adapter if engine is not None else None
        self.act_adapters: dict[str | None, QAction] = {}
        for adapter in [None, *found]:
            name = adapter.manifest.name if adapter is not None else None
            action = QAction(self.tr("None: the model as it is") if name is None else name, self)
            action.setCheckable(True)
            action.setChecked(name == current)
            if adapter is not None:
                m = adapter.manifest
                action.setToolTip(
                    self.tr("Taught on {files}: held-out bits per character {before:.3f} → {after:.3f}").format(
                        files=", ".join(m.texts_files), before=m.heldout_bpc_before, after=m.heldout_bpc_after
                    )
                )
            action.triggered.connect(lambda _checked=False, n=name: self.set_adapter(n))
            self.adapter_group.addAction(action)
            self.adapter_menu.addAction(action)
            self.act_adapters[name] = action
        if not found:
            hint = QAction(self.tr("No adapters for this model: make one with `gptdesk tune`"), self)
            hint.setEnabled(False)
            self.adapter_menu.addAction(hint)

    def set_adapter(self, name: str | None) -> None:
        """Tools > Adapter: the model is loaded again with the adapter (None: without one)."""
        self.loader.set_adapter(name)

    def _cache_mb_per_1000(self) -> str:
        """Float16 keys and values of 1,000 tokens for the loaded model (or ruGPT-3 Large's 24 x 1536)."""
        engine = self.loader.current()
        layers, width = (engine.info.n_layer, engine.info.n_embd) if engine is not None else (24, 1536)
        return f"{2 * layers * width * 2 * 1000 / 1e6:.0f}"

    def _local_model(self) -> str | None:
        """The loaded local model as the loaders take it (None: none, or a remote one: the embedded model)."""
        if self.engine is None or not self.engine.capabilities.local:
            return None
        info = self.engine.info
        # A catalog or hub model by its id (its converted files are found again); a folder by its path.
        return info.model_id if find_entry(info.model_id) is not None else info.source

    def open_teach(self) -> None:
        """Tools > Teach the model my texts… (LoRA on the loaded local model, else the embedded one)."""
        from gptdesk.ui.teach_dialog import TeachDialog

        dialog = TeachDialog(self._local_model(), self.prompt_edit.toPlainText(), self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.adapter_ready.connect(self.set_adapter)
        dialog.destroyed.connect(self._on_teach_dialog_gone)
        self.teach_dialog = dialog
        dialog.show()

    def _on_teach_dialog_gone(self) -> None:
        self.teach_dialog = None

    def open_perplexity(self) -> None:
        """Tools > How well does this model know my text? (the loaded local model, else the embedded one)."""
        from gptdesk.ui.perplexity_dialog import PerplexityDialog

        model = self._local_model()
        dialog = PerplexityDialog(self, model=model)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.perplexity_dialog = dialog
        dialog.show()

    def connect_remote(self, url: str, model: str | None = None, api_key: str | None = None) -> bool:
        return self.loader.connect_remote(url, model, api_key)

    def open_model_manager(self) -> None:
        self.loader.open_model_manager()

    def set_engine(self, engine: Engine, *, kind: str = "catalog", key: object = None, label: str = "") -> None:
        """Use `engine` from now on (the caller closes the previous one)."""
        self.engine = engine
        # The model and the libraries behind it live as long as the engine: move them out of the
        # garbage collector's sight. A full collection over torch's and transformers' ~400,000
        # objects held the GIL, and so froze the window, for 300-470 ms (measured in the tests).
        gc.freeze()
        entry = find_entry(engine.info.model_id) if kind == "catalog" else None
        if entry is not None:
            self.model_picker.set_current("catalog", entry.id)
        else:
            self.model_picker.set_current(
                kind, key if key is not None else engine.info.model_id, label or engine.info.model_id
            )
        self.figures.show_model(engine, loading=self.loader.loading)
        self._update_actions()
        self.estimate.set_engine(engine)

    def _on_model_loaded(self, engine: object, kind: str, key: object, label: str) -> None:
        old = self.engine
        self.set_engine(engine, kind=kind, key=key, label=label)  # type: ignore[arg-type]
        if old is not None and old is not engine:
            old.close()
        self.messages.clear_errors()
        self.model_loaded.emit(engine)

    def _on_model_failed(self, exc: object) -> None:
        self._update_actions()
        self.model_failed.emit(exc)

    def _on_loading_changed(self) -> None:
        self.figures.show_model(self.engine, loading=self.loader.loading)
        self._update_actions()

    # -- generating ------------------------------------------------------------------------------

    @property
    def generating(self) -> bool:
        return self.generation.busy

    def _settings_or_message(self) -> GenerationSettings | None:
        try:
            return self.params.settings()
        except SettingsError as exc:
            self.messages.show(Text("Fix the settings first: ", "Сначала исправьте параметры: ") + exc.text, "error")
            return None

    def generate(self) -> bool:
        """Continue the prompt in the editor with the current settings. False if it could not start."""
        prompt = self.prompt_edit.toPlainText()
        settings = self._settings_or_message()
        if settings is None or self.loader.loading:
            return False
        return self.generation.start(self.engine, prompt, settings, kind="new", base_prompt=prompt)

    def continue_generation(self) -> bool:
        """Extend the shown text (the selected variant) from where it stopped."""
        if self.generation.shown is None or self.generation.busy:
            return False
        settings = self._settings_or_message()
        if settings is None or self.loader.loading:
            return False
        return self.generation.continue_shown(self.engine, settings)

    def stop(self) -> None:
        """Stop the running generation at the next token."""
        if self.generation.stop():
            self.generate_button.setEnabled(False)

    def _on_generate_button_clicked(self) -> None:
        if self.generation.busy:
            self.stop()
        else:
            self.generate()

    def copy_output(self) -> None:
        self.generation.copy()

    def clear_output(self) -> None:
        self.generation.clear()

    def reproduce(self, gen_id: int) -> bool:
        """Run a past generation again with its model, settings and seed."""
        return self.history_actions.reproduce(gen_id)

    def open_record(self, gen_id: int) -> None:
        """Show a past generation: its prompt, text and settings; Continue extends it."""
        self.history_actions.open_record(gen_id)

    def _on_generation_started(self, gen_id: object) -> None:
        self._update_actions()
        self.history.refresh()
        if isinstance(gen_id, int):
            self.history.select(gen_id)
        self.generation_started.emit(gen_id)

    def _on_generation_finished(self, finished: object) -> None:
        self.history.refresh()
        self._update_actions()
        self.generation_finished.emit(finished)

    def _on_generation_failed(self, exc: object) -> None:
        self.history.refresh()
        self._update_actions()
        self.generation_failed.emit(exc)

    def _update_actions(self) -> None:
        if not hasattr(self, "act_generate"):
            return
        busy = self.generation.busy
        loading = self.loader.loading
        ready = self.engine is not None and not loading
        valid = self.params.current is not None
        self.act_generate.setEnabled(ready and not busy and valid)
        self.act_stop.setEnabled(busy)
        self.act_continue.setEnabled(ready and not busy and valid and self.generation.shown is not None)
        self.continue_button.setEnabled(self.act_continue.isEnabled())
        self.generate_button.setEnabled((ready and valid) or busy)
        self.model_picker.setEnabled(not busy and not loading)
        self.act_open_folder.setEnabled(not busy and not loading)
        self.act_remote.setEnabled(not busy and not loading)
        self.act_manage_models.setEnabled(not busy and not loading)
        self.history.reproduce_button.setEnabled(not busy and not loading and self.history.selected_id() is not None)
        self.view.set_busy(busy)
        if not valid and not busy:
            self.view.show_invalid_settings()

    def _on_settings_changed(self, _settings: object) -> None:
        self._update_actions()
        self.estimate.schedule()

    def _on_store_changed(self, store: object) -> None:
        self.store = store if isinstance(store, HistoryStore) else None
        self.history.store = self.store
        self.history.refresh()

    def _focus_history_search(self) -> None:
        self.history_dock.show()
        self.history_dock.raise_()
        self.history.search.setFocus()
        self.history.search.selectAll()

    # -- threads and closing ---------------------------------------------------------------------

    def wait_for_workers(self) -> None:
        """Block until every worker thread has ended (after stopping the generation)."""
        self.threads.wait_all()

    def closeEvent(self, event: QCloseEvent) -> None:
        # Stop first (the engine halts within a token), then quit and wait for every worker, so no
        # thread outlives the window and the recorder has written the last of the output.
        self.generation.shutdown()
        self.lab.stop()
        self.stories.stop()
        if self.teach_dialog is not None:
            self.teach_dialog.wait_for_worker()  # a tuning run stops after its step (its checkpoint is kept)
        self.wait_for_workers()
        self.generation.collect()
        if not self.keeper.confirm_close():  # generations the history could not take: export them?
            self.generation.closing = False
            event.ignore()
            return
        self._closing = True
        self.loader.closing = True
        self.keeper.closing = True
        self.threads.running.clear()
        self.figures.stop()
        self.estimate.stop()
        self._qsettings.setValue("geometry", self.saveGeometry())
        self._qsettings.setValue("state", self.saveState())
        self._qsettings.sync()
        # A closed window still receives LanguageChange (and retranslates): nothing may reach the
        # closed engine then (a closed llama.cpp model crashed the process when tokenizing).
        self.estimate.engine = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self.keeper.close()
        super().closeEvent(event)

    def _restore_state(self) -> None:
        geometry = self._qsettings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = self._qsettings.value("state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
