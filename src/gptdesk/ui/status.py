"""The status bar's figures: model, device, number format, memory, speed, first token, tokens."""

from __future__ import annotations

import psutil
from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar

from gptdesk.engine.base import Engine, Timings
from gptdesk.i18n import Text, current_language
from gptdesk.models.cost import format_bytes

FIGURES = ("model", "device", "dtype", "ram", "speed", "first_token", "tokens")


def number(value: float | None, digits: int) -> str:
    """A figure for the status bar, with the language's decimal separator ("—" when unknown)."""
    if value is None:
        return "—"
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if current_language() == "ru" else text


class StatusFigures(QObject):
    """Permanent status-bar widgets: the model's labels, memory (refreshed every second), the
    figures of the running or last generation, and the model-loading progress."""

    def __init__(self, bar: QStatusBar) -> None:
        super().__init__(bar)
        self.bar = bar
        self.labels: dict[str, QLabel] = {}
        for key in FIGURES:
            label = QLabel("—")
            label.setObjectName(f"status_{key}")
            self.labels[key] = label
            bar.addPermanentWidget(label)
        self.load_progress = QProgressBar()
        self.load_progress.setObjectName("load_progress")
        self.load_progress.setMaximumWidth(220)
        self.load_progress.setRange(0, 100)
        self.load_progress.setTextVisible(True)
        self.load_progress.hide()
        # Permanent: a temporary status message would hide a normal status-bar widget.
        bar.insertPermanentWidget(0, self.load_progress)
        self._process = psutil.Process()
        self._figures: tuple[int, float | None, float | None] | None = None  # none shown yet: "—"
        self._ram_timer = QTimer(self)
        self._ram_timer.setInterval(1000)
        self._ram_timer.timeout.connect(self.update_ram)
        self._ram_timer.start()

    def stop(self) -> None:
        self._ram_timer.stop()

    def flash(self, text: str, ms: int = 0) -> None:
        """A temporary message in the status bar (the next one replaces it)."""
        self.bar.showMessage(text, ms)

    # -- generation figures ----------------------------------------------------------------------

    def show_timings(self, timings: Timings) -> None:
        """Tokens, speed and time to the first token of a generation (running or ended)."""
        self.show_figures(tokens=timings.generated_tokens, speed=timings.tokens_per_second, first=timings.first_token)

    def show_figures(self, *, tokens: int, speed: float | None, first: float | None) -> None:
        self._figures = (tokens, speed, first)
        self.labels["tokens"].setText(self.tr("Tokens: {n}").format(n=tokens))
        self.labels["speed"].setText(self.tr("{v} tok/s").format(v=number(speed, 1)))
        self.labels["first_token"].setText(self.tr("First token: {s} s").format(s=number(first, 2)))

    # -- model -----------------------------------------------------------------------------------

    def show_model(self, engine: Engine | None, *, loading: bool) -> None:
        labels = self.labels
        if engine is None:
            labels["model"].setText(self.tr("Model: loading…") if loading else self.tr("Model: none"))
            labels["device"].setText("—")
            labels["dtype"].setText("—")
            return
        info = engine.info
        labels["model"].setText(self.tr("Model: {name}").format(name=info.model_id))
        if info.adapter:
            labels["model"].setText(
                self.tr("Model: {name} + adapter {adapter}").format(name=info.model_id, adapter=info.adapter)
            )
        labels["device"].setText(self.tr("Device: {device}").format(device=info.device))
        labels["dtype"].setText(info.dtype)

    def update_ram(self) -> None:
        try:
            rss = self._process.memory_info().rss
        except psutil.Error:  # the process table may be unreadable in a sandbox
            return
        self.labels["ram"].setText(self.tr("RAM: {size}").format(size=format_bytes(rss, current_language())))

    # -- loading ---------------------------------------------------------------------------------

    def start_loading(self, label: str) -> None:
        self.load_progress.setRange(0, 0)
        self.load_progress.setFormat(self.tr("Loading {model}…").format(model=label))
        self.load_progress.show()

    def show_progress(self, text: Text | str, fraction: float | None) -> None:
        message = text.get() if isinstance(text, Text) else str(text)
        if fraction is not None:
            self.load_progress.setRange(0, 100)
            self.load_progress.setValue(round(float(fraction) * 100))
        else:
            self.load_progress.setRange(0, 0)
        self.load_progress.setFormat(message + " %p%")
        self.load_progress.setToolTip(message)

    def end_loading(self) -> None:
        self.load_progress.hide()

    def retranslate(self) -> None:
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
            self.labels[key].setToolTip(tip)
            self.labels[key].setAccessibleName(tip)
        self.load_progress.setAccessibleName(self.tr("Model loading progress"))
        if self._figures is not None:
            tokens, speed, first = self._figures
            self.show_figures(tokens=tokens, speed=speed, first=first)
        self.update_ram()
