"""History in the window: records for new generations, and opening, reproducing and exporting old ones."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QWidget

from gptdesk.engine.base import Engine
from gptdesk.errors import SettingsError
from gptdesk.history.errors import HistoryError
from gptdesk.history.export import FORMATS, export
from gptdesk.history.store import GenerationRecord
from gptdesk.i18n import Text
from gptdesk.models.catalog import find_entry
from gptdesk.settings.generation import GenerationSettings
from gptdesk.ui.history_panel import HistoryPanel
from gptdesk.ui.history_state import HistoryKeeper
from gptdesk.ui.messages import Messages
from gptdesk.ui.params import ParametersPanel
from gptdesk.ui.status import StatusFigures

if TYPE_CHECKING:
    from gptdesk.ui.generation import GenerationController
    from gptdesk.ui.loading import ModelLoader


class HistoryActions(QObject):
    """What the history panel and the File menu ask for: open, reproduce and export generations."""

    def __init__(
        self,
        window: QWidget,
        keeper: HistoryKeeper,
        panel: HistoryPanel,
        params: ParametersPanel,
        figures: StatusFigures,
        messages: Messages,
        generation: GenerationController,
        loader: ModelLoader,
        current: Callable[[], Engine | None],
    ) -> None:
        super().__init__(window)
        self.window = window
        self.keeper = keeper
        self.panel = panel
        self.params = params
        self.figures = figures
        self.messages = messages
        self.generation = generation
        self.loader = loader
        self.current = current
        panel.open_requested.connect(self.open_record)
        panel.reproduce_requested.connect(self.reproduce)
        panel.export_requested.connect(self.export)
        panel.failed.connect(keeper.report_failure)

    def open_record(self, gen_id: int) -> None:
        """Show a past generation: its prompt, text and settings; Continue extends it."""
        generation = self.generation
        if generation.busy:
            return
        record = self.keeper.record(gen_id)
        if record is None:
            return
        generation.view.prompt_edit.setPlainText(record.prompt)
        generation.output.set_texts(record.texts, context=record.prompt)
        generation.inspector.clear_generated()
        with suppress(TypeError, ValueError):  # settings of another version: show the text anyway
            self.params.set_settings(record.settings)
        generation.shown = (record.id, record.prompt)
        self.figures.show_figures(
            tokens=record.generated_tokens or 0, speed=record.tokens_per_second, first=record.first_token_s
        )
        self.figures.flash(
            self.tr("Generation #{id} of {when}, model {model}, seed {seed}.").format(
                id=record.id, when=record.created_at[:19].replace("T", " "), model=record.model_id, seed=record.seed
            ),
            8000,
        )
        generation.state_changed.emit()

    def reproduce(self, gen_id: int) -> bool:
        """Run a past generation again with its model, settings and seed."""
        record = self.keeper.record(gen_id)
        if record is None or self.generation.busy or self.loader.loading:
            return False
        try:
            settings = record.reproduce_settings()
        except SettingsError as exc:
            self.messages.show(Text("Cannot reproduce: ", "Нельзя повторить: ") + exc.text, "error")
            return False
        engine = self.current()
        # The adapter that made the text (issue 20): the model is loaded again with it, or without one.
        adapter_differs = (
            engine is not None
            and record.engine != "remote"
            and (engine.info.adapter or None) != (record.adapter or None)
        )
        if engine is not None and record.model_id and (engine.info.model_id != record.model_id or adapter_differs):
            self.loader.adapter_wanted = record.adapter
            if record.engine == "remote":
                self.messages.show(
                    Text(
                        f"Generation #{record.id} was made on the server model {record.model_id}; connect to it "
                        "first (Remote server…), then reproduce.",
                        f"Генерация №{record.id} сделана серверной моделью {record.model_id}; сначала "
                        "подключитесь к ней («Удалённый сервер…»), затем повторите.",
                    ),
                    "warning",
                )
                return False
            return self.loader.load_model(
                record.model_id,
                kind="catalog" if find_entry(record.model_id) else "folder",
                then=lambda: self._reproduce_now(record, settings),
            )
        return self._reproduce_now(record, settings)

    def _reproduce_now(self, record: GenerationRecord, settings: GenerationSettings) -> bool:
        self.generation.view.prompt_edit.setPlainText(record.prompt)
        self.params.set_settings(settings)
        engine = self.current()
        started = not self.loader.loading and self.generation.start(
            engine, record.prompt, settings, kind="reproduce", base_prompt=record.prompt, parent_id=record.id
        )
        if started and engine is not None and record.adapter and engine.info.adapter_digest != record.adapter_digest:
            self.messages.show(
                Text(
                    f"Adapter '{record.adapter}' was tuned again since generation #{record.id} (its weights "
                    "differ); the text may differ.",
                    f"Адаптер «{record.adapter}» обучен заново после генерации №{record.id} (его веса "
                    "другие); текст может отличаться.",
                ),
                "warning",
            )
        elif started and engine is not None and record.model_revision and engine.info.revision != record.model_revision:
            self.messages.show(
                Text(
                    f"The model's revision changed since generation #{record.id} ({record.model_revision} → "
                    f"{engine.info.revision}); the text may differ.",
                    f"Ревизия модели изменилась после генерации №{record.id} ({record.model_revision} → "
                    f"{engine.info.revision}); текст может отличаться.",
                ),
                "warning",
            )
        return started

    def export(self, ids: object, fmt: str) -> None:
        """Export these generations (None: all that the search shows) to a file the user picks."""
        store = self.keeper.store
        if store is None:
            return
        try:
            if isinstance(ids, list):
                records = [store.get(int(i)) for i in ids]
            else:
                records = store.find(self.panel.search.text(), limit=1_000_000)
        except HistoryError as exc:
            self.keeper.report_failure(exc)
            return
        if not records:
            return
        suffix = FORMATS[fmt]
        default = f"gptdesk-{records[0].id}{suffix}" if len(records) == 1 else f"gptdesk-history{suffix}"
        path, _filter = QFileDialog.getSaveFileName(
            self.window, self.tr("Export history"), str(Path.home() / default), f"*{suffix}"
        )
        if not path:
            return
        try:
            Path(path).write_text(export(records, fmt), encoding="utf-8")
        except OSError as exc:
            self.messages.show(
                Text(
                    f"Could not write {path}: {exc.strerror or exc}. Choose another folder.",
                    f"Не удалось записать {path}: {exc.strerror or exc}. Выберите другую папку.",
                ),
                "error",
            )
            return
        self.figures.flash(self.tr("Exported {n} generations to {path}.").format(n=len(records), path=path), 5000)
