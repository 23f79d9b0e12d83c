"""The cost estimate under the parameters, and the memory pre-check every generation passes first."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QPlainTextEdit

from gptdesk.engine.base import Engine, TokenPiece
from gptdesk.errors import GptDeskError, SettingsError
from gptdesk.models.cost import CostEstimate, fits_in_memory
from gptdesk.settings.generation import GenerationSettings
from gptdesk.ui.inspector import TokenInspector
from gptdesk.ui.params import ParametersPanel


def is_local(engine: Engine) -> bool:
    """Engines that run here (tokenize and estimate locally); a remote engine runs elsewhere."""
    return engine.capabilities.local


def generation_cost(engine: Engine, prompt_tokens: int, settings: GenerationSettings) -> CostEstimate | None:
    """What a generation would cost on `engine` (None for a remote one, whose memory is not here): the
    engine's own estimate (llama.cpp's costs and kept cells on llama.cpp)."""
    if not is_local(engine):
        return None
    return engine.cost(prompt_tokens, settings)


def precheck(engine: Engine, prompt: str, settings: GenerationSettings) -> list[TokenPiece]:
    """Tokenize the prompt and refuse (InsufficientMemoryError, SettingsError) what cannot run.

    Returns the prompt's tokens (empty for a remote engine, which tokenizes on its server).
    """
    if not is_local(engine):
        return []
    pieces = engine.tokenize(prompt)
    engine.check(prompt, settings)  # the engine's own estimate (llama.cpp's costs on llama.cpp)
    return pieces


class EstimatePanel(QObject):
    """Keeps the parameters panel's cost line current as the prompt and the settings change.

    The prompt's tokens are cached per text, and shown in the token inspector while nothing runs.
    """

    def __init__(
        self,
        params: ParametersPanel,
        prompt_edit: QPlainTextEdit,
        inspector: TokenInspector,
        busy: Callable[[], bool],
    ) -> None:
        super().__init__(params)
        self.params = params
        self.prompt_edit = prompt_edit
        self.inspector = inspector
        self.busy = busy
        self.engine: Engine | None = None
        self._token_cache: tuple[str, list[TokenPiece]] | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.update)
        prompt_edit.textChanged.connect(self.schedule)

    def set_engine(self, engine: Engine | None) -> None:
        self.engine = engine
        self._token_cache = None
        self.update()

    def schedule(self) -> None:
        """Update soon (typing restarts the wait, so a fast typist costs one tokenization)."""
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def update(self) -> None:
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
        if not self.busy():
            self.inspector.set_prompt_tokens(pieces)
        settings = panel.current
        if settings is None:
            panel.set_estimate(self.tr("Fix the settings to see the cost."), True)
            return
        try:
            cost = generation_cost(engine, len(pieces), settings)
        except SettingsError as exc:
            panel.set_estimate(exc.text.get(), False)
            return
        if cost is None:
            return
        ok = fits_in_memory(cost, weights_loaded=True)
        text = self.tr("{n} prompt tokens, up to {m} new. ").format(n=len(pieces), m=cost.max_new_tokens)
        if cost.prompt_tokens < len(pieces):
            text += self.tr("The model reads the last {k}: the text is longer than its context. ").format(
                k=cost.prompt_tokens
            )
        text += cost.describe()
        if not ok:
            text += " " + self.tr("This does not fit in the free memory: Generate will refuse it.")
        panel.set_estimate(text, ok)
