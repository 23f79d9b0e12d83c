"""Workers: QObjects moved to QThreads that own every blocking call and report through signals.

Style: superqt's _qthreading. A worker never touches a widget; the window's slots are named
_on_<signal>. Stop is a threading.Event the GUI thread sets directly: a queued signal would
never reach a worker that is busy inside generate().
"""

from __future__ import annotations

import ctypes
import gc
import importlib.util
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from gptdesk.engine.base import Engine, Finished, LeadingBeam, Notice, TokenEvent
from gptdesk.history.recorder import LiveRecorder
from gptdesk.i18n import Text
from gptdesk.settings.generation import GenerationSettings

#: What a loading call receives to report its progress: a message and a fraction (or None).
Progress = Callable[[Text, float | None], None]


class GenerationWorker(QObject):
    """Streams one generation and records it in history as it grows.

    Signals:
        token_received(TokenEvent): a token arrived (its text may be "" mid-character).
        notice_received(Notice): something to tell the user (a warning, a truncated prompt).
        leading_beam(LeadingBeam): a beam search's best hypothesis changed (it replaces the last).
        finished(Finished): the generation ended (completed, stopped or hit a stop string).
        failed(BaseException): the engine raised; the partial output is already in history.
        history_failed(HistoryError): history could not be written; the generation went on.
    """

    token_received = Signal(object)
    notice_received = Signal(object)
    leading_beam = Signal(object)
    finished = Signal(object)
    failed = Signal(object)
    history_failed = Signal(object)

    def __init__(
        self,
        engine: Engine,
        prompt: str,
        settings: GenerationSettings,
        cancel: threading.Event,
        recorder: LiveRecorder | None,
        *,
        top_alternatives: int = 5,
    ) -> None:
        super().__init__()
        self.engine = engine
        self.prompt = prompt
        self.settings = settings
        self.cancel = cancel
        self.recorder = recorder
        self.top_alternatives = top_alternatives

    @Slot()
    def run(self) -> None:
        recorder = self.recorder
        try:
            finished: Finished | None = None
            events = self.engine.stream(self.prompt, self.settings, self.cancel, top_alternatives=self.top_alternatives)
            for event in events:
                if recorder is not None:
                    recorder.add(event)
                if isinstance(event, TokenEvent):
                    self.token_received.emit(event)
                elif isinstance(event, LeadingBeam):
                    self.leading_beam.emit(event)
                elif isinstance(event, Notice):
                    self.notice_received.emit(event)
                elif isinstance(event, Finished):
                    finished = event
            if finished is None:
                raise RuntimeError(f"the {self.engine.name} engine's stream ended without a Finished event")
            if recorder is not None:
                recorder.finish(finished)
                if recorder.error is not None:
                    self.history_failed.emit(recorder.error)
            self.finished.emit(finished)
        except BaseException as exc:  # reported to the window, which shows it; the thread ends cleanly
            if recorder is not None:
                recorder.fail(exc)
                if recorder.error is not None:
                    self.history_failed.emit(recorder.error)
            self.failed.emit(exc)


class CallWorker(QObject):
    """Runs one blocking call (loading a model, looking for models on disk) off the GUI thread.

    Signals:
        progress(Text, float | None): the call reported progress.
        finished(object): the call returned this value.
        failed(BaseException): the call raised.
    """

    progress = Signal(object, object)
    finished = Signal(object)
    failed = Signal(object)

    def __init__(self, call: Callable[[Progress], Any]) -> None:
        super().__init__()
        self._call = call

    @Slot()
    def run(self) -> None:
        try:
            result = self._call(self._report)
        except BaseException as exc:  # shown by the window; the previous model stays usable
            self.failed.emit(exc)
            return
        self.finished.emit(result)

    def _report(self, text: Text, fraction: float | None) -> None:
        self.progress.emit(text, fraction)


class ThreadWorker(Protocol):
    """A QObject with a `run` slot that ends by emitting `finished` or `failed` (every worker here)."""

    @property
    def finished(self) -> Any: ...

    @property
    def failed(self) -> Any: ...

    def run(self) -> None: ...

    def moveToThread(self, thread: QThread, /) -> Any: ...


def start_in_thread(
    worker: ThreadWorker,
    name: str,
    *,
    parent: QObject | None = None,
    on_ended: Callable[[], Any] | None = None,
) -> QThread:
    """Move `worker` to a new thread, run it there, and let the thread end when it reports.

    Connect the worker's own signals before calling this: the thread starts at once. `on_ended`
    runs in the GUI thread once the thread has ended (connected before the start, so never missed).
    """
    thread = QThread(parent)
    thread.setObjectName(name)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: quit() is thread-safe, and a queued call would wait for the GUI thread, which may
    # itself be waiting for this thread to end (closeEvent, or the next job joining this one).
    worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    worker.failed.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    if on_ended is not None:
        thread.finished.connect(on_ended)
    thread.start()
    return thread


class WorkerThreads:
    """The window's worker threads by role ("load", "scan", "generate"): one per role at a time."""

    def __init__(self) -> None:
        self.running: dict[str, tuple[QThread, GenerationWorker | CallWorker]] = {}

    def start(self, role: str, worker: GenerationWorker | CallWorker) -> QThread:
        previous = self.running.pop(role, None)
        if previous is not None:
            previous[0].quit()  # it has reported already: this only joins the ended thread
            previous[0].wait()
        thread = start_in_thread(worker, f"gptdesk-{role}")
        self.running[role] = (thread, worker)
        return thread

    def threads(self) -> list[QThread]:
        return [thread for thread, _worker in self.running.values()]

    def wait_all(self) -> None:
        """Block until every worker thread has ended (the caller stops the generation first)."""
        for thread, _worker in list(self.running.values()):
            thread.quit()
            thread.wait()


def preload_native_libraries() -> None:
    """Map torch's main shared library with the GIL released, before `import torch` needs it.

    `import torch` dlopens libtorch_cpu.so (hundreds of MB plus static initialisers) while
    holding the GIL, which froze the window for ~400 ms (measured on Linux). A call through
    ctypes releases the GIL, and the later import finds the library already mapped. Linux only;
    elsewhere it does nothing.
    """
    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return
    library = Path(spec.origin).parent / "lib" / "libtorch_cpu.so"
    if not library.exists():
        return
    libc = ctypes.CDLL(None)
    dlopen = libc.dlopen
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    # RTLD_LOCAL, as torch itself loads it: the symbols stay private to the libraries that link it.
    dlopen(os.fsencode(library), os.RTLD_NOW | os.RTLD_LOCAL)


def warm_up() -> None:
    """Import the engine's libraries (once per process) with as little GIL-holding as possible.

    Then freeze the objects they created: with torch and transformers imported the process holds
    ~400,000 objects, and a full garbage collection over them, triggered by whatever thread
    happens to allocate, held the GIL for ~470 ms while a model loaded (measured in the GUI
    tests). Frozen objects are skipped by the collector; module-level objects live for the whole
    process anyway.
    """
    preload_native_libraries()
    # No collections while the imports create those objects either: each full pass over the
    # growing heap was another GIL-held pause of 100-250 ms.
    collecting = gc.isenabled()
    gc.disable()
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
        from transformers import GPT2LMHeadModel  # noqa: F401  (its lazy import is the largest)
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
