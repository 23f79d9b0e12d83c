"""Loading models in a worker: the catalog, a folder, a remote server, the model manager's choice."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QDialog, QFileDialog, QWidget

from gptdesk.engine.base import Engine
from gptdesk.i18n import Text
from gptdesk.models.catalog import CATALOG, EMBEDDED_ID, find_entry
from gptdesk.models.gguf.sizes import DEFAULT_QUANT
from gptdesk.ui.messages import Messages, error_text
from gptdesk.ui.model_picker import ModelPicker, RemoteDialog
from gptdesk.ui.status import StatusFigures
from gptdesk.ui.workers import CallWorker, Progress, WorkerThreads, warm_up


class ModelLoader(QObject):
    """Loads one model at a time off the GUI thread; the previous model stays in use until it is ready.

    Signals:
        loaded(object, str, object, str): the engine, and the kind, key and label it was asked by.
        failed(object): loading failed (the exception); the message is shown already.
        state_changed(): loading began or ended.
    """

    loaded = Signal(object, str, object, str)
    failed = Signal(object)
    state_changed = Signal()

    def __init__(
        self,
        window: QWidget,
        picker: ModelPicker,
        figures: StatusFigures,
        messages: Messages,
        threads: WorkerThreads,
        *,
        current: Callable[[], Engine | None],
        busy: Callable[[], bool],
    ) -> None:
        super().__init__(window)
        self.window = window
        self.picker = picker
        self.figures = figures
        self.messages = messages
        self.threads = threads
        self.current = current
        self.busy = busy
        self.loading = False
        self.closing = False
        self.model_manager: QWidget | None = None
        self._target: tuple[str, object, str] = ("catalog", EMBEDDED_ID, "")
        self._then: Callable[[], object] | None = None  # run once the model being loaded is ready
        self.quant = DEFAULT_QUANT  # the llama.cpp type loads ask for (Tools > llama.cpp type)
        self.threads_wanted: int | None = None  # llama.cpp's threads (Tools > llama.cpp threads); None: automatic
        self.cache_tokens_wanted: int | None = None  # llama.cpp's kept cache (Tools > Kept cache); None: automatic
        self.adapter_wanted: str | None = None  # a LoRA adapter from `gptdesk tune` (Tools > Adapter); None: none
        picker.model_requested.connect(self.on_model_requested)

    def scan(self) -> None:
        """Look for catalog models already on disk (the picker marks them) in a worker."""

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
        self.threads.start("scan", worker)

    def _on_scan_finished(self, presence: object) -> None:
        if isinstance(presence, dict):
            self.picker.set_presence(presence)

    def load_model(
        self, name: str | None, *, kind: str = "catalog", label: str = "", then: Callable[[], object] | None = None
    ) -> bool:
        """Load a catalog model, hub id or folder in a worker (None: the embedded model)."""
        quant, threads = self.quant, self.threads_wanted
        options: dict[str, object] = (
            {} if self.cache_tokens_wanted is None else {"cache_tokens": self.cache_tokens_wanted}
        )
        if self.adapter_wanted is not None:
            options["adapter"] = self.adapter_wanted

        def load(progress: Progress) -> Engine:
            progress(Text("Starting the engine", "Запуск движка"), None)
            warm_up()
            from gptdesk.engine import load_engine

            # "auto": the quantized llama.cpp engine on a CPU when installed, else transformers.
            return load_engine(name, engine="auto", progress=progress, quant=quant, threads=threads, **options)

        key: object = name
        if kind == "catalog":
            entry = find_entry(name or EMBEDDED_ID)
            key = entry.id if entry is not None else name
        return self.load_engine(load, kind=kind, key=key, label=label or str(name or EMBEDDED_ID), then=then)

    def set_quant(self, quant: str) -> bool:
        """The llama.cpp type for the next loads; a catalog model running on llama.cpp is loaded again in it."""
        self.quant = quant
        return self._reload_with_options()

    def set_threads(self, threads: int | None) -> bool:
        """llama.cpp's threads for the next loads (None: automatic); a catalog model on llama.cpp is loaded again."""
        self.threads_wanted = threads
        return self._reload_with_options()

    def set_cache_tokens(self, tokens: int | None) -> bool:
        """llama.cpp's kept cache for the next loads (None: one full context); a catalog model on llama.cpp
        is loaded again."""
        self.cache_tokens_wanted = tokens
        return self._reload_with_options()

    def set_adapter(self, name: str | None) -> bool:
        """Apply the adapter `name` (None: none) to the current local model: it is loaded again with it."""
        self.adapter_wanted = name
        kind, key, label = self._target
        if kind not in ("catalog", "folder"):
            return False
        return self.load_model(key if isinstance(key, str) else None, kind=kind, label=label)

    def _reload_with_options(self) -> bool:
        """A catalog model whose engine takes its type, threads and kept cache at load is loaded again."""
        kind, key, label = self._target
        engine = self.current()
        if engine is not None and engine.capabilities.load_options and kind == "catalog":
            return self.load_model(key if isinstance(key, str) else None, label=label)
        return False

    def connect_remote(self, url: str, model: str | None = None, api_key: str | None = None) -> bool:
        """Use a model on an OpenAI-compatible server (gptdesk.engine.remote.engine, imported when needed)."""

        def connect(progress: Progress) -> Engine:
            progress(Text(f"Connecting to {url}", f"Подключение к {url}"), None)
            remote = importlib.import_module("gptdesk.engine.remote.engine")
            engine: Engine = remote.RemoteEngine.connect(url, model=model, api_key=api_key)
            return engine

        return self.load_engine(connect, kind="remote", key=url, label=f"{model or '?'} @ {url}")

    def load_engine(
        self,
        call: Callable[[Progress], Engine],
        *,
        kind: str,
        key: object,
        label: str,
        then: Callable[[], object] | None = None,
    ) -> bool:
        """Run `call` in a worker; on success its engine replaces the current one, then `then` runs."""
        if self.loading or self.busy():
            self.messages.show(
                Text(
                    "Wait until the current generation or model load ends, then choose the model again.",
                    "Дождитесь окончания текущей генерации или загрузки модели и выберите модель снова.",
                ),
                "warning",
            )
            self.picker.revert()
            return False
        self.loading = True
        self._target = (kind, key, label)
        self._then = then
        self.figures.start_loading(label)
        worker = CallWorker(call)
        worker.progress.connect(self._on_progress)
        worker.finished.connect(self._on_loaded)
        worker.failed.connect(self._on_failed)
        self.threads.start("load", worker)
        self.state_changed.emit()
        return True

    def open_model_manager(self) -> None:
        """The model manager (download, delete, use); choosing a model there loads it here."""
        from gptdesk.ui.model_manager import ModelManagerDialog

        dialog = ModelManagerDialog(self.window)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.model_chosen.connect(self._on_model_chosen)
        self.model_manager = dialog
        dialog.show()

    def _on_model_chosen(self, name: str) -> None:
        self.adapter_wanted = None
        self.load_model(name)

    def on_model_requested(self, kind: str, key: object) -> None:
        """The picker's (or a menu's) choice: load it, asking for a folder or a server first if needed."""
        self.adapter_wanted = None  # an adapter belongs to the model it was made for
        if kind == "catalog":
            self.load_model(str(key), kind="catalog")
        elif kind == "folder" and key is None:
            folder = QFileDialog.getExistingDirectory(self.window, self.tr("Choose a model folder"))
            if folder:
                self.load_model(folder, kind="folder", label=Path(folder).name)
            else:
                self.picker.revert()
        elif kind == "folder":
            self.load_model(str(key), kind="folder", label=Path(str(key)).name)
        elif kind == "remote":
            dialog = RemoteDialog(self.window)
            if dialog.exec() == QDialog.DialogCode.Accepted:
                url, model, api_key = dialog.values()
                self.connect_remote(url, model, api_key)
            else:
                self.picker.revert()

    def _on_progress(self, text: object, fraction: object) -> None:
        self.figures.show_progress(
            text if isinstance(text, Text) else str(text),
            float(fraction) if isinstance(fraction, float | int) else None,
        )

    def _on_loaded(self, engine: object) -> None:
        if self.closing:
            if isinstance(engine, Engine):  # the load worker's result: always an engine
                engine.close()
            return
        kind, key, label = self._target
        self.loading = False
        self.figures.end_loading()
        self.loaded.emit(engine, kind, key, label)
        then, self._then = self._then, None
        if then is not None:
            then()

    def _on_failed(self, exc: object) -> None:
        if self.closing:
            return
        self.loading = False
        self.figures.end_loading()
        self._then = None
        label = self._target[2]
        text = error_text(exc if isinstance(exc, BaseException) else RuntimeError(str(exc)))
        current = self.current()
        if current is not None:
            tail = Text(
                f" The previous model ({current.info.model_id}) is still in use.",
                f" По-прежнему используется прежняя модель ({current.info.model_id}).",
            )
        else:
            tail = Text(
                " No model is loaded: choose one in the model list.", " Модель не загружена: выберите её в списке."
            )
        self.messages.show(Text(f"Could not load {label}: ", f"Не удалось загрузить {label}: ") + text + tail, "error")
        self.picker.revert()
        self.state_changed.emit()
        self.failed.emit(exc)
