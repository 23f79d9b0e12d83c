"""Generating: the prompt and output view, and the controller that streams, throttles, stops and times."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from PySide6.QtCore import QEvent, QObject, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from gptdesk.engine.base import Engine, Finished, LeadingBeam, Notice, Timings, TokenEvent
from gptdesk.errors import GptDeskError, InsufficientMemoryError, SettingsError
from gptdesk.history.recorder import LiveRecorder
from gptdesk.i18n import Text
from gptdesk.settings.generation import GenerationSettings
from gptdesk.ui.estimate_panel import precheck
from gptdesk.ui.history_state import HistoryKeeper
from gptdesk.ui.inspector import TokenInspector
from gptdesk.ui.messages import Messages, error_text
from gptdesk.ui.status import StatusFigures, number
from gptdesk.ui.widgets import OutputPane
from gptdesk.ui.workers import GenerationWorker, WorkerThreads

#: Alternatives asked of the engine for every generated token (the inspector shows them).
TOP_ALTERNATIVES = 5

#: Milliseconds between updates of the output while tokens stream: ~40 a second is smooth, and
#: cheap at any speed, since a fast engine's tokens are shown in batches.
TOKEN_DISPLAY_MS = 25

EMPTY_PROMPT = Text(
    "The prompt is empty. Type the beginning of a text for the model to continue, e.g. «Москва — столица».",
    "Затравка пуста. Введите начало текста, которое модель продолжит, например «Москва — столица».",
)
NO_MODEL = Text("No model is loaded: choose one in the model list.", "Модель не загружена: выберите её в списке.")


class GenerationView(QWidget):
    """The prompt editor, the Generate/Stop, Continue, Copy and Clear buttons, and the output."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.busy = False
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
        self.continue_button = QPushButton()
        self.continue_button.setObjectName("continue")
        self.copy_button = QPushButton()
        self.copy_button.setObjectName("copy")
        self.clear_button = QPushButton()
        self.clear_button.setObjectName("clear")
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button)
        buttons.addWidget(self.continue_button)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.clear_button)

        self.output_label = QLabel()
        self.output = OutputPane()
        self.output_label.setBuddy(self.output)
        # Several variants are watched growing side by side; the tabs show one at a time, larger.
        self.side_by_side = QCheckBox()
        self.side_by_side.setObjectName("side_by_side")
        self.side_by_side.setChecked(True)
        self.side_by_side.toggled.connect(self._update_output_layout)
        self.output_stack = QStackedWidget()
        self.output_stack.addWidget(self.output)
        self.output_stack.addWidget(self.output.columns)
        self.output.count_changed.connect(self._update_output_layout)
        self.output.columns.variant_clicked.connect(self.output.setCurrentIndex)
        self.beam_label = QLabel()
        self.beam_label.setObjectName("beam_state")
        self.beam_label.hide()
        self._beam: tuple[LeadingBeam | None, bool] = (None, False)
        output_header = QHBoxLayout()
        output_header.addWidget(self.output_label)
        output_header.addWidget(self.beam_label)
        output_header.addStretch(1)
        output_header.addWidget(self.side_by_side)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.prompt_label)
        top_layout.addWidget(self.prompt_edit)
        top_layout.addLayout(buttons)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addLayout(output_header)
        bottom_layout.addWidget(self.output_stack)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(top)
        self.splitter.addWidget(bottom)
        self.splitter.setSizes([260, 480])
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self.retranslate()
        self._update_output_layout()

    def _update_output_layout(self, *_: object) -> None:
        several = self.output.count() > 1
        self.side_by_side.setVisible(several)
        columns = several and self.side_by_side.isChecked()
        self.output_stack.setCurrentWidget(self.output.columns if columns else self.output)

    def show_beam(self, beam: LeadingBeam | None, *, final: bool = False) -> None:
        """Say that the output is a beam search's leading hypothesis (or its final beams)."""
        self._beam = (beam, final)
        if beam is None and not final:
            self.beam_label.hide()
            return
        if beam is not None:
            text = self.tr("Beam search, step {step}: the leading beam so far (score {score})").format(
                step=beam.step, score=number(beam.score, 3)
            )
        else:
            text = self.tr("Beam search ended: the best beams")
        self.beam_label.setText(text)
        self.beam_label.setAccessibleName(text)
        self.beam_label.show()

    @property
    def showing_columns(self) -> bool:
        return self.output_stack.currentWidget() is self.output.columns

    def set_busy(self, busy: bool) -> None:
        """The Generate button becomes Stop while a generation runs."""
        self.busy = busy
        self._retranslate_generate_button()

    def retranslate(self) -> None:
        self.prompt_label.setText(self.tr("&Prompt (Ctrl+Enter generates, Esc stops):"))
        self.prompt_edit.setPlaceholderText(
            self.tr("Type the beginning of a text, e.g. «Жили-были старик со старухой», and press Ctrl+Enter.")
        )
        self.prompt_edit.setAccessibleName(self.tr("Prompt"))
        self.prompt_edit.setAccessibleDescription(self.tr("The text the model continues. Ctrl+Enter generates."))
        self.output_label.setText(self.tr("&Output:"))
        self.side_by_side.setText(self.tr("&Side by side"))
        self.side_by_side.setToolTip(self.tr("Show the variants in columns next to each other, or one per tab"))
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
        beam, final = self._beam
        self.show_beam(beam, final=final)

    def _retranslate_generate_button(self) -> None:
        if self.busy:
            self.generate_button.setText(self.tr("&Stop"))
            self.generate_button.setToolTip(self.tr("Stop generating (Esc)"))
            self.generate_button.setAccessibleName(self.tr("Stop"))
        else:
            self.generate_button.setText(self.tr("&Generate"))
            self.generate_button.setToolTip(self.tr("Continue the prompt with the model (Ctrl+Enter)"))
            self.generate_button.setAccessibleName(self.tr("Generate"))

    def show_invalid_settings(self) -> None:
        self.generate_button.setToolTip(self.tr("The settings are invalid: see the Parameters panel"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


@dataclass
class Generation:
    """The running generation, as the GUI thread sees it."""

    worker: GenerationWorker
    thread: QThread
    cancel: threading.Event
    recorder: LiveRecorder
    prompt: str
    base_prompt: str  # what the output pane's text continues (for Continue)
    kind: str
    started: float = field(default_factory=time.perf_counter)
    first_token: float | None = None
    last_token: float | None = None
    tokens: int = 0
    stop_requested: float | None = None
    tokens_after_stop: int = 0
    prefix: str = ""  # earlier output a continuation extends
    count: int = 1  # variants asked for
    beam: LeadingBeam | None = None  # a beam search's latest leading hypothesis
    beam_shown: LeadingBeam | None = None
    final_beams: bool = False  # the final beams' tokens have begun (they replace the leader)

    def timings(self) -> Timings:
        """The figures so far, measured on the GUI thread as tokens arrive."""
        first = self.first_token - self.started if self.first_token is not None else None
        last = self.last_token if self.last_token is not None else time.perf_counter()
        return Timings(first_token=first, total=last - self.started, generated_tokens=self.tokens)


class GenerationController(QObject):
    """Starts, streams, stops and ends generations; the view and the figures follow.

    Signals:
        started(object): a generation began (its history id, or None without history).
        token_received(TokenEvent): a streamed token was shown.
        leading_beam_shown(LeadingBeam): a beam search's leading hypothesis is shown (replacing the last).
        finished(Finished): a generation ended (completed, stopped, stop string).
        failed(BaseException): a generation failed; its partial text stays shown.
        state_changed(): busy or idle, or the shown text changed (actions may change).
    """

    started = Signal(object)
    token_received = Signal(object)
    leading_beam_shown = Signal(object)
    finished = Signal(object)
    failed = Signal(object)
    state_changed = Signal()

    def __init__(
        self,
        view: GenerationView,
        inspector: TokenInspector,
        figures: StatusFigures,
        messages: Messages,
        history: HistoryKeeper,
        threads: WorkerThreads,
    ) -> None:
        super().__init__(view)
        self.view = view
        self.output = view.output
        self.inspector = inspector
        self.figures = figures
        self.messages = messages
        self.history = history
        self.threads = threads
        self.current: Generation | None = None
        #: (history id, base prompt) of the text shown in the output, which Continue extends.
        self.shown: tuple[int | None, str] | None = None
        self.last_finished: Finished | None = None
        self.stop_latency: float | None = None  # seconds from Stop to the end of the last generation
        self.closing = False
        self._pending_tokens: list[TokenEvent] = []
        self._token_timer = QTimer(self)
        self._token_timer.setSingleShot(True)
        self._token_timer.setInterval(TOKEN_DISPLAY_MS)
        self._token_timer.timeout.connect(self._show_pending_tokens)
        self._stats_timer = QTimer(self)
        self._stats_timer.setInterval(200)
        self._stats_timer.timeout.connect(self.update_live_figures)
        self.output.currentChanged.connect(self._on_variant_changed)

    @property
    def busy(self) -> bool:
        return self.current is not None

    # -- starting and stopping -------------------------------------------------------------------

    def start(
        self,
        engine: Engine | None,
        prompt: str,
        settings: GenerationSettings,
        *,
        kind: str,
        base_prompt: str,
        prefix: str = "",
        parent_id: int | None = None,
    ) -> bool:
        """Start a generation in a worker. False (with a message) when it cannot start."""
        if self.current is not None:
            return False
        if engine is None:
            self.messages.show(NO_MODEL, "error")
            return False
        if not prompt.strip():
            self.messages.show(EMPTY_PROMPT, "error")
            self.view.prompt_edit.setFocus()
            return False
        try:
            pieces = precheck(engine, prompt, settings)
        except (InsufficientMemoryError, SettingsError) as exc:
            self.messages.show(Text("Not started: ", "Не запущено: ") + exc.text, "error")
            return False
        except GptDeskError as exc:
            self.messages.show(exc.text, "error")
            return False
        seed = settings.seed if settings.seed is not None else random.randrange(2**31)
        recorder = self.history.begin(prompt, settings, seed=seed, engine=engine, kind=kind, parent_id=parent_id)
        cancel = threading.Event()
        worker = GenerationWorker(
            engine, prompt, settings.updated(seed=seed), cancel, recorder, top_alternatives=TOP_ALTERNATIVES
        )
        worker.token_received.connect(self._on_token_received)
        worker.notice_received.connect(self._on_notice_received)
        worker.leading_beam.connect(self._on_leading_beam)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.history_failed.connect(self.history.report_failure)
        # A beam search shows one text, its leader, until the best beams arrive (see _show_pending_tokens).
        shown = 1 if settings.num_beams > 1 else settings.num_return_sequences
        self.output.reset(shown, prefix, context=base_prompt)
        self.inspector.clear_generated()
        self.inspector.set_prompt_tokens(pieces)
        self.last_finished = None
        self.view.show_beam(None)
        # The worker's signals are queued to this thread: none is handled before `current` is set below.
        thread = self.threads.start("generate", worker)
        self.current = Generation(
            worker,
            thread,
            cancel,
            recorder,
            prompt,
            base_prompt,
            kind,
            prefix=prefix,
            count=settings.num_return_sequences,
        )
        self._stats_timer.start()
        self.update_live_figures()
        self.started.emit(recorder.gen_id)
        return True

    def continue_shown(self, engine: Engine | None, settings: GenerationSettings) -> bool:
        """Extend the shown text (the selected variant) from where it stopped."""
        if self.shown is None or self.current is not None:
            return False
        parent_id, base_prompt = self.shown
        shown = self.output.text(max(0, self.output.currentIndex()))
        return self.start(
            engine,
            base_prompt + shown,
            settings,
            kind="continue",
            base_prompt=base_prompt,
            prefix=shown,
            parent_id=parent_id,
        )

    def stop(self) -> bool:
        """Stop the running generation at the next token (sets the engine's cancel event directly)."""
        gen = self.current
        if gen is None or gen.cancel.is_set():
            return False
        gen.cancel.set()
        gen.stop_requested = time.perf_counter()
        self.figures.flash(self.tr("Stopping…"))
        return True

    def shutdown(self) -> None:
        """The window is closing: stop the generation and ignore what the worker still reports."""
        self.closing = True
        if self.current is not None:
            self.current.cancel.set()
        self._stats_timer.stop()
        self._token_timer.stop()

    def collect(self) -> None:
        """After shutdown and the workers' end: hand the stopped generation's record to history."""
        gen, self.current = self.current, None
        if gen is not None:
            self.history.end(gen.recorder)

    # -- output ----------------------------------------------------------------------------------

    def copy(self) -> None:
        text = self.output.full_text(max(0, self.output.currentIndex()))
        QGuiApplication.clipboard().setText(text)
        self.figures.flash(self.tr("Copied {n} characters.").format(n=len(text)), 3000)

    def clear(self) -> None:
        if self.current is not None:
            return
        self.output.reset(1)
        self.inspector.clear_generated()
        self.shown = None
        self.messages.clear()
        self.state_changed.emit()

    # -- streaming -------------------------------------------------------------------------------

    def _on_token_received(self, event: object) -> None:
        gen = self.current
        if gen is None or self.closing or not isinstance(event, TokenEvent):
            return
        # Only bookkeeping here; the widgets are updated in batches (_show_pending_tokens), so a
        # fast engine cannot queue more widget work than one pass of the event loop can do.
        now = time.perf_counter()
        self._pending_tokens.append(event)
        if not self._token_timer.isActive():
            self._token_timer.start()
        if event.token_id >= 0 and gen.beam is None:  # a beam search's steps are counted by its leader
            gen.tokens += 1
            gen.last_token = now
            if gen.first_token is None:
                gen.first_token = now
            if gen.stop_requested is not None:
                gen.tokens_after_stop += 1

    def _on_leading_beam(self, event: object) -> None:
        gen = self.current
        if gen is None or self.closing or not isinstance(event, LeadingBeam):
            return
        # Only the latest matters: each replaces the one before, so the display shows one per batch.
        now = time.perf_counter()
        gen.beam = event
        gen.tokens = event.step
        gen.last_token = now
        if gen.first_token is None:
            gen.first_token = now
        if not self._token_timer.isActive():
            self._token_timer.start()

    def _show_leading_beam(self, gen: Generation) -> None:
        beam = gen.beam
        if beam is None or beam is gen.beam_shown or gen.final_beams:
            return
        gen.beam_shown = beam
        self.output.replace(0, beam.text)
        self.view.show_beam(beam)
        self.leading_beam_shown.emit(beam)

    def _show_pending_tokens(self) -> None:
        gen = self.current
        if gen is not None:
            self._show_leading_beam(gen)
        events, self._pending_tokens = self._pending_tokens, []
        if not events:
            return
        if gen is not None and gen.beam is not None and not gen.final_beams:
            # The search ended: its best beams follow token by token and replace the leader.
            gen.final_beams = True
            self.output.reset(gen.count, gen.prefix, context=gen.base_prompt)
            self.view.show_beam(None, final=True)
        texts: dict[int, list[str]] = {}
        for event in events:
            texts.setdefault(event.sequence, []).append(event.text)
        for sequence, parts in texts.items():
            self.output.append(sequence, "".join(parts))
        self.inspector.add_generated_many(events)
        for event in events:
            self.token_received.emit(event)

    def _on_notice_received(self, notice: object) -> None:
        if isinstance(notice, Notice) and not self.closing:
            self.messages.show(notice.text, "warning")

    def update_live_figures(self) -> None:
        if self.current is not None:
            self.figures.show_timings(self.current.timings())

    def _on_variant_changed(self, index: int) -> None:
        if index >= 0:
            self.inspector.show_variant(index)

    # -- ending ----------------------------------------------------------------------------------

    def _end(self) -> Generation | None:
        self._token_timer.stop()
        self._show_pending_tokens()
        gen, self.current = self.current, None
        self._stats_timer.stop()
        if gen is not None:
            self.history.end(gen.recorder)  # kept in memory if the history could not take it
        self.figures.bar.clearMessage()
        if gen is not None:
            if gen.stop_requested is not None:
                self.stop_latency = time.perf_counter() - gen.stop_requested
            self.shown = (gen.recorder.gen_id, gen.base_prompt)
        self.state_changed.emit()
        return gen

    def _on_finished(self, finished: object) -> None:
        if self.closing or not isinstance(finished, Finished):
            return
        gen = self._end()
        if gen is not None and gen.beam is not None and not gen.final_beams:
            # The engine sent the final beams only in Finished: show them instead of the leader.
            self.output.reset(len(finished.texts), gen.prefix, context=gen.base_prompt)
            for index, text in enumerate(finished.texts):
                self.output.append(index, text)
            self.view.show_beam(None, final=True)
        self.last_finished = finished
        t = finished.timings
        self.figures.show_figures(
            tokens=max(finished.generated_tokens, default=0), speed=t.tokens_per_second, first=t.first_token
        )
        if finished.finish_reason == "cancelled":
            self.figures.flash(
                self.tr("Stopped after {n} tokens.").format(n=max(finished.generated_tokens, default=0)), 5000
            )
        self.finished.emit(finished)

    def _on_failed(self, exc: object) -> None:
        if self.closing:
            return
        self._end()
        error = exc if isinstance(exc, BaseException) else RuntimeError(str(exc))
        self.messages.show(Text("Generation failed: ", "Генерация не удалась: ") + error_text(error), "error")
        self.failed.emit(exc)
