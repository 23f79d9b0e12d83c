"""Writes a generation into history while it streams, so a crash loses at most the last moment."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from gptdesk.engine.base import Finished, LeadingBeam, ModelInfo, StreamEvent, TokenEvent
from gptdesk.history.errors import HistoryError
from gptdesk.history.store import HistoryStore, PendingGeneration
from gptdesk.settings.generation import GenerationSettings

#: Seconds between writes of the growing output: a kill loses at most this much text (plus a write).
DEFAULT_INTERVAL = 0.5


class LiveRecorder:
    """The prompt is stored before generation starts; the output is flushed every `interval` seconds.

    A background thread does the periodic writes, so the guarantee holds however slowly tokens
    arrive and whatever the consuming thread is doing. Write failures (disk full, a locked file)
    do not stop the generation: the first one is kept in `error`, writing stops (so a locked file
    does not make every step wait for it), and the whole generation stays in memory: `unsaved()`
    gives it to the caller, who keeps it until the history can take it.
    """

    def __init__(
        self,
        store: HistoryStore | None,
        pending: PendingGeneration,
        *,
        interval: float = DEFAULT_INTERVAL,
        error: HistoryError | None = None,
        timeout: float | None = None,
    ) -> None:
        self.store = store
        self.timeout = timeout  # seconds a write waits for another program's lock (None: the store's)
        self.pending = pending
        self.interval = interval
        self.error: HistoryError | None = error
        self._dirty = False
        self._beam = False  # the output shown is a beam search's leading hypothesis
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
        pending = _pending(prompt, settings, seed=seed, info=info, engine=engine, kind=kind, parent_id=parent_id)
        pending.gen_id = store.begin(
            prompt, settings, seed=seed, info=info, engine=engine, kind=kind, parent_id=parent_id
        )
        return cls(store, pending, interval=interval)

    @classmethod
    def start_or_keep(
        cls,
        store: HistoryStore | None,
        prompt: str,
        settings: GenerationSettings | Mapping[str, Any],
        *,
        seed: int | None,
        info: ModelInfo | None,
        engine: str | None = None,
        kind: str = "new",
        parent_id: int | None = None,
        interval: float = DEFAULT_INTERVAL,
        timeout: float | None = None,
        write_timeout: float | None = None,
    ) -> LiveRecorder:
        """Like start(), but never raises: when the prompt cannot be stored (no store, read-only,
        locked longer than `timeout`), the generation is kept in memory and `error` says why.
        Later writes wait `write_timeout` seconds for a lock, then keep the rest in memory."""
        pending = _pending(prompt, settings, seed=seed, info=info, engine=engine, kind=kind, parent_id=parent_id)
        if store is None or store.read_only:
            return cls(None, pending, interval=interval, error=store.problem if store is not None else None)
        try:
            pending.gen_id = store.begin(
                prompt,
                settings,
                seed=seed,
                info=info,
                engine=engine,
                kind=kind,
                parent_id=parent_id,
                created_at=pending.created_at,
                timeout=timeout,
            )
        except HistoryError as exc:
            return cls(store, pending, interval=interval, error=exc)
        return cls(store, pending, interval=interval, timeout=write_timeout)

    @property
    def gen_id(self) -> int | None:
        """The generation's row in history (None while it is kept in memory only)."""
        return self.pending.gen_id

    @property
    def texts(self) -> list[str]:
        with self._lock:
            return list(self.pending.texts)

    @property
    def writing(self) -> bool:
        """Whether the generation is going to the store (False once a write failed, or without one)."""
        return self.store is not None and self.error is None

    def add(self, event: StreamEvent) -> None:
        """Take one stream event; token text is added to its sequence's output.

        While a beam search runs, the output is its leading hypothesis (replaced as it changes);
        the final beams' tokens that follow replace it.
        """
        if isinstance(event, LeadingBeam):
            with self._lock:
                self.pending.texts = [event.text]
                self._beam = True
                self._dirty = True
            return
        if not isinstance(event, TokenEvent) or not event.text:
            return
        with self._lock:
            if self._beam:
                self._beam = False
                self.pending.texts = [""]
            texts = self.pending.texts
            while len(texts) <= event.sequence:
                texts.append("")
            texts[event.sequence] += event.text
            self._dirty = True

    def flush(self) -> None:
        """Write the output so far if it changed since the last write."""
        with self._write_lock:
            with self._lock:
                if not self._dirty:
                    return
                texts, self._dirty = list(self.pending.texts), False
            self._write(lambda store, gen_id: store.update_output(gen_id, texts))

    def finish(self, finished: Finished) -> None:
        """Store the final result and stop recording."""
        self._stop_thread()
        with self._lock:
            self.pending.finished = finished
        with self._write_lock:
            self._write(lambda store, gen_id: store.finish(gen_id, finished))

    def fail(self, error: BaseException | str) -> None:
        """Store the failure with the output so far and stop recording."""
        self._stop_thread()
        message = error if isinstance(error, str) else str(error) or type(error).__name__
        texts = self.texts
        with self._lock:
            self.pending.error = message
        with self._write_lock:
            self._write(lambda store, gen_id: store.fail(gen_id, message, texts))

    def unsaved(self) -> PendingGeneration | None:
        """The generation if the history does not hold it as it ended (None when it does)."""
        return None if self.writing else self.pending

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
        store, gen_id = self.store, self.pending.gen_id
        if store is None or gen_id is None or self.error is not None:
            return  # kept in memory: the caller writes it all once the history is back
        try:
            with store.lock_wait(self.timeout):
                action(store, gen_id)
        except HistoryError as exc:
            self.error = exc


def _pending(
    prompt: str,
    settings: GenerationSettings | Mapping[str, Any],
    *,
    seed: int | None,
    info: ModelInfo | None,
    engine: str | None,
    kind: str,
    parent_id: int | None,
) -> PendingGeneration:
    values = settings.model_dump() if isinstance(settings, GenerationSettings) else dict(settings)
    return PendingGeneration(
        prompt=prompt, settings=values, seed=seed, info=info, engine=engine, kind=kind, parent_id=parent_id
    )


class Backlog:
    """Generations kept in memory while the history could not take them, written when it can.

    Thread-safe: the window adds to it, a background retry writes from it.
    """

    def __init__(self) -> None:
        self._items: list[PendingGeneration] = []
        self._lock = threading.Lock()

    def add(self, pending: PendingGeneration) -> None:
        with self._lock:
            self._items.append(pending)

    def items(self) -> list[PendingGeneration]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def discard(self) -> None:
        with self._lock:
            self._items.clear()

    def write_to(self, store: HistoryStore, *, timeout: float | None = None) -> int:
        """Write the kept generations in order; raises the first HistoryError, keeping the rest.

        Returns how many were written. `timeout`: seconds to wait for another program's lock.
        """
        written = 0
        while True:
            with self._lock:
                if not self._items:
                    return written
                pending = self._items[0]
            store.save_pending(pending, timeout=timeout)
            with self._lock:
                if self._items and self._items[0] is pending:
                    self._items.pop(0)
            written += 1
