"""Writes a generation into history while it streams, so a crash loses at most the last moment."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from gptdesk.engine.base import Finished, ModelInfo, StreamEvent, TokenEvent
from gptdesk.history.errors import HistoryError
from gptdesk.history.store import HistoryStore
from gptdesk.settings import GenerationSettings

#: Seconds between writes of the growing output: a kill loses at most this much text (plus a write).
DEFAULT_INTERVAL = 0.5


class LiveRecorder:
    """The prompt is stored before generation starts; the output is flushed every `interval` seconds.

    A background thread does the periodic writes, so the guarantee holds however slowly tokens
    arrive and whatever the consuming thread is doing. Write failures (disk full, a locked file)
    do not stop the generation: the first one is kept in `error` for the caller to show.
    """

    def __init__(self, store: HistoryStore, gen_id: int, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.store = store
        self.gen_id = gen_id
        self.interval = interval
        self.error: HistoryError | None = None
        self._texts: list[str] = [""]
        self._dirty = False
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one write at a time, in order
        self._stop = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._flush_periodically, name="gptdesk-history", daemon=True)
        self._thread.start()

    @classmethod
    def start(
        cls,
        store: HistoryStore,
        prompt: str,
        settings: GenerationSettings | Mapping[str, Any],
        *,
        seed: int | None,
        info: ModelInfo | None,
        engine: str | None = None,
        kind: str = "new",
        parent_id: int | None = None,
        interval: float = DEFAULT_INTERVAL,
    ) -> LiveRecorder:
        """Store the prompt now (raises HistoryError if it cannot) and start recording."""
        gen_id = store.begin(prompt, settings, seed=seed, info=info, engine=engine, kind=kind, parent_id=parent_id)
        return cls(store, gen_id, interval=interval)

    @property
    def texts(self) -> list[str]:
        with self._lock:
            return list(self._texts)

    def add(self, event: StreamEvent) -> None:
        """Take one stream event; token text is added to its sequence's output."""
        if not isinstance(event, TokenEvent) or not event.text:
            return
        with self._lock:
            while len(self._texts) <= event.sequence:
                self._texts.append("")
            self._texts[event.sequence] += event.text
            self._dirty = True

    def flush(self) -> None:
        """Write the output so far if it changed since the last write."""
        with self._write_lock:
            with self._lock:
                if not self._dirty:
                    return
                texts, self._dirty = list(self._texts), False
            self._write(lambda: self.store.update_output(self.gen_id, texts))

    def finish(self, finished: Finished) -> None:
        """Store the final result and stop recording."""
        self._stop_thread()
        with self._write_lock:
            self._write(lambda: self.store.finish(self.gen_id, finished))

    def fail(self, error: BaseException | str) -> None:
        """Store the failure with the output so far and stop recording."""
        self._stop_thread()
        message = error if isinstance(error, str) else str(error) or type(error).__name__
        texts = self.texts
        with self._write_lock:
            self._write(lambda: self.store.fail(self.gen_id, message, texts))

    def close(self) -> None:
        """Stop the periodic writes after a last flush (status is left as it is)."""
        self._stop_thread()

    def _stop_thread(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join()
        self.flush()

    def _flush_periodically(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def _write(self, action: Any) -> None:
        try:
            action()
        except HistoryError as exc:
            if self.error is None:
                self.error = exc
