"""The history database: every generation with everything needed to reproduce it (SQLite, WAL)."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gptdesk.engine.base import Finished, ModelInfo
from gptdesk.history.errors import HistoryBugError, HistoryError, HistoryUnavailableError, classify
from gptdesk.history.migrations import MIGRATIONS, applied, migrate
from gptdesk.i18n import Text
from gptdesk.settings.generation import GenerationSettings

DB_NAME = "history.sqlite3"
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
KINDS = ("new", "continue", "reproduce", "explore")  # explore: a cell of the lab's settings grid
#: Libraries whose versions decide what a generation produces, recorded with each one.
VERSIONED = ("gptdesk", "torch", "transformers", "tokenizers", "safetensors", "PySide6-Essentials")
#: The key under which `versions` records the generation core's version; records without it were
#: made by version 1 (before batched sequences and llama.cpp beam search).
CORE_KEY = "gptdesk-core"


def data_dir() -> Path:
    """Where GPT Desk keeps its data: GPTDESK_DATA_DIR, else the platform's user data folder."""
    explicit = os.environ.get("GPTDESK_DATA_DIR", "").strip()
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("gptdesk", appauthor=False))


def default_path() -> Path:
    return data_dir() / DB_NAME


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries in VERSIONED that are installed (read from metadata)."""
    return dict(_library_versions())


@cache  # read once per process: the installed versions do not change while it runs
def _library_versions() -> dict[str, str]:
    from gptdesk.engine.core import CORE_VERSION

    found = {"python": platform.python_version(), CORE_KEY: str(CORE_VERSION)}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _fold(value: object) -> str:
    # SQLite's own LIKE and lower() fold ASCII only; Python's casefold also folds Cyrillic.
    return str(value).casefold() if value is not None else ""


@dataclass
class PendingGeneration:
    """A generation the history could not store (yet), kept in memory with all a record needs."""

    prompt: str
    settings: dict[str, Any]
    seed: int | None
    info: ModelInfo | None
    engine: str | None
    kind: str = "new"
    parent_id: int | None = None
    created_at: str = field(default_factory=lambda: _now())
    texts: list[str] = field(default_factory=lambda: [""])
    finished: Finished | None = None
    error: str | None = None
    gen_id: int | None = None  # the row, if the prompt was stored before writes began to fail

    @property
    def status(self) -> str:
        if self.finished is not None:
            return "cancelled" if self.finished.finish_reason == "cancelled" else "finished"
        return "failed" if self.error is not None else "running"

    def record(self) -> GenerationRecord:
        """As a record (id 0 when it has no row yet), for exports."""
        info, finished = self.info, self.finished
        t = finished.timings if finished is not None else None
        return GenerationRecord(
            id=self.gen_id or 0,
            created_at=self.created_at,
            updated_at=_now(),
            status=self.status,
            prompt=self.prompt,
            texts=list(finished.texts if finished is not None else self.texts),
            settings=dict(self.settings),
            seed=finished.seed if finished is not None else self.seed,
            model_id=info.model_id if info else None,
            model_revision=info.revision if info else None,
            model_source=info.source if info else None,
            engine=self.engine or (info.engine if info else None),
            device=info.device if info else None,
            dtype=info.dtype if info else None,
            versions=library_versions(),
            finish_reason=finished.finish_reason if finished is not None else None,
            prompt_tokens=finished.prompt_tokens if finished is not None else None,
            generated_tokens=max(finished.generated_tokens, default=0) if finished is not None else None,
            first_token_s=t.first_token if t is not None else None,
            total_s=t.total if t is not None else None,
            tokens_per_second=t.tokens_per_second if t is not None else None,
            error=self.error,
            kind=self.kind,
            parent_id=self.parent_id,
            adapter=info.adapter if info else None,
            adapter_digest=info.adapter_digest if info else None,
        )


@dataclass(frozen=True)
class GenerationRecord:
    """One stored generation."""

    id: int
    created_at: str
    updated_at: str
    status: str
    prompt: str
    texts: list[str]  # one per returned sequence; texts[0] is the main output
    settings: dict[str, Any]  # as the user set them (seed None means "random")
    seed: int | None  # the seed actually used
    model_id: str | None
    model_revision: str | None
    model_source: str | None
    engine: str | None
    device: str | None
    dtype: str | None
    versions: dict[str, str]
    finish_reason: str | None
    prompt_tokens: int | None
    generated_tokens: int | None
    first_token_s: float | None
    total_s: float | None
    tokens_per_second: float | None
    error: str | None
    kind: str = "new"
    parent_id: int | None = None
    group_id: str | None = None  # cells of one explorer grid share it
    adapter: str | None = None  # a LoRA adapter from `gptdesk tune` applied to the model
    adapter_digest: str | None = None  # the digest of that adapter's weights

    @property
    def output(self) -> str:
        return self.texts[0] if self.texts else ""

    def title(self, width: int = 60) -> str:
        """The prompt's first line, shortened to `width` characters."""
        line = next((part.strip() for part in self.prompt.splitlines() if part.strip()), "")
        return line if len(line) <= width else line[: width - 1] + "…"

    @property
    def core_version(self) -> int:
        """The generation core that made this record (1: before the version was recorded)."""
        try:
            return int(self.versions.get(CORE_KEY, "1"))
        except ValueError:
            return 1

    def reproducibility_note(self) -> Text | None:
        """Why running this record again may give another text, or None when it reproduces.

        The rule (docs/fast-engine.md): the same seed, settings, engine and quantization give the
        same text. Core version 2 samples several sequences in one batch, each from its own random
        stream, and runs beam search on llama.cpp instead of handing it to transformers, so a
        record of version 1 with several sequences or beams, not made on the transformers engine,
        came out of the older version. One sequence, and anything on transformers, still reproduces.
        """
        from gptdesk.engine.core import CORE_VERSION

        if self.core_version >= CORE_VERSION or self.engine == "transformers":
            return None
        several = int(self.settings.get("num_return_sequences") or 1) > 1
        beams = int(self.settings.get("num_beams") or 1) > 1
        if not (several or beams):
            return None
        return Text(
            f"Made by an older version of GPT Desk's generation core ({self.core_version}; now {CORE_VERSION}), "
            "which ran several sequences and beam search differently: the same seed may now give other texts.",
            f"Сделано старой версией ядра генерации GPT Desk ({self.core_version}; сейчас {CORE_VERSION}), "
            "которая иначе выполняла несколько вариантов и лучевой поиск: то же зерно теперь может дать "
            "другие тексты.",
        )

    def reproduce_settings(self) -> GenerationSettings:
        """The recorded settings with the recorded seed, so the same model gives the same text."""
        values = dict(self.settings)
        if self.seed is not None:
            values["seed"] = self.seed
        return GenerationSettings.build(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "status": self.status,
            "kind": self.kind,
            "parent_id": self.parent_id,
            "group_id": self.group_id,
            "prompt": self.prompt,
            "output": self.output,
            "variants": self.texts,
            "settings": self.settings,
            "seed": self.seed,
            "model": {
                "id": self.model_id,
                "revision": self.model_revision,
                "source": self.model_source,
                "engine": self.engine,
                "device": self.device,
                "dtype": self.dtype,
                "adapter": self.adapter,
                "adapter_digest": self.adapter_digest,
            },
            "versions": self.versions,
            "finish_reason": self.finish_reason,
            "prompt_tokens": self.prompt_tokens,
            "generated_tokens": self.generated_tokens,
            "timings": {
                "time_to_first_token_s": self.first_token_s,
                "total_s": self.total_s,
                "tokens_per_second": self.tokens_per_second,
            },
            "error": self.error,
        }


class HistoryStore:
    """The generations database. Safe to use from several threads: each gets its own connection.

    WAL mode lets the window read the list while a worker writes the growing output, and a
    committed write survives the process being killed.
    """

    def __init__(self, path: Path | None = None, *, timeout: float = 5.0, read_only: bool = False) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.read_only = read_only
        #: Why this store is read-only when it was opened as a fallback (see open_history).
        self.problem: HistoryError | None = None
        self._timeout = timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._uri = ""
        try:
            self._open()
        except BaseException:
            self.close()  # no connection outlives a failed open (it would hold -wal and -shm files)
            raise

    def _open(self) -> None:
        with self._guard(Text("opening the history", "открытие истории")):
            if self.read_only:
                self._open_read_only()
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._check_permissions()
            db = self._db()
            known = {name for name, _ in MIGRATIONS}
            newer = [name for name in applied(db) if name not in known]
            if newer:
                raise HistoryUnavailableError(
                    Text(
                        f"The history in {self.path} was written by a newer GPT Desk (it has the "
                        f"migrations {', '.join(newer)}, which this version does not know). Update "
                        "GPT Desk, or point GPTDESK_DATA_DIR at another folder.",
                        f"История в {self.path} записана более новой версией GPT Desk (в ней есть "
                        f"миграции {', '.join(newer)}, неизвестные этой версии). Обновите GPT Desk "
                        "или укажите другую папку в GPTDESK_DATA_DIR.",
                    ),
                    "newer",
                )
            migrate(db)
        try:
            # SQLite opens a file it may not write read-only without a word; find out now.
            self.check_writable()
        except HistoryUnavailableError as exc:
            if exc.reason != "locked":
                raise
            self.problem = exc  # readable now; writes wait for the other program (see check_writable)
            return
        with self._guard(Text("opening the history", "открытие истории")):
            self._mark_interrupted(self._db())

    def check_writable(self) -> None:
        """Raise HistoryUnavailableError now if a write would fail (read-only, locked); never waits."""
        if self.read_only:
            raise self.problem or HistoryUnavailableError(
                Text(
                    f"The history file {self.path} is open for reading only.",
                    f"Файл истории {self.path} открыт только для чтения.",
                ),
                "readonly",
            )
        with (
            self._guard(Text("checking that the history can be written", "проверка записи истории")),
            self.lock_wait(0),
        ):
            db = self._db()
            db.execute("BEGIN IMMEDIATE")  # takes the lock, but succeeds on a file opened read-only
            try:
                db.execute("DELETE FROM _migrations WHERE 0")  # a write that changes nothing
            finally:
                db.execute("ROLLBACK")
        self.problem = None

    # -- connections -----------------------------------------------------------------------------

    def _open_read_only(self) -> None:
        """Open an existing history for reading only: browsing and search work, writes raise."""
        if not self.path.is_file():
            raise HistoryUnavailableError(
                Text(f"There is no history file at {self.path}.", f"Файла истории {self.path} нет."), "missing"
            )
        quoted = quote(str(self.path.resolve()))
        # While another program has it open (its -wal file exists), read through its log with
        # mode=ro. Otherwise read the file as immutable: mode=ro would leave -wal and -shm files
        # with the database's read-only permissions, which would keep the history read-only even
        # after the user makes the file writable again.
        uris = [f"file:{quoted}?immutable=1"]
        if self.path.with_name(self.path.name + "-wal").exists():
            uris.insert(0, f"file:{quoted}?mode=ro")
        last: sqlite3.Error | None = None
        for uri in uris:
            self._uri = uri
            try:
                db = self._db()
                db.execute("SELECT count(*) FROM generations").fetchone()
            except sqlite3.Error as exc:
                last = exc
                self._drop_connection()
                continue
            known = {name for name, _ in MIGRATIONS}
            if [name for name, _ in MIGRATIONS] != [n for n in _applied_read_only(db) if n in known]:
                raise HistoryUnavailableError(
                    Text(
                        f"The history in {self.path} is from an older GPT Desk and cannot be upgraded, because "
                        "the file cannot be written. Make it writable, or point GPTDESK_DATA_DIR elsewhere.",
                        f"История в {self.path} записана старой версией GPT Desk, и её нельзя обновить: файл "
                        "недоступен для записи. Разрешите запись или укажите другую папку в GPTDESK_DATA_DIR.",
                    ),
                    "readonly",
                )
            return
        assert last is not None
        raise last

    def _check_permissions(self) -> None:
        """Refuse a file or folder this process may not write before SQLite opens it anyway.

        SQLite silently opens such a file read-only and creates its -wal and -shm files with the
        file's read-only permissions, which would outlast the user's fix of the file's permissions.
        """
        folder = self.path.parent
        targets = [self.path] if self.path.exists() else []
        targets.append(folder)
        for target in targets:
            mode = os.W_OK | (os.X_OK if target == folder else 0)
            if not os.access(target, mode, effective_ids=os.access in os.supports_effective_ids):
                raise HistoryUnavailableError(
                    Text(
                        f"The history cannot be written: {target} is read-only for this user. Check the "
                        "permissions of the file and its folder, or point GPTDESK_DATA_DIR elsewhere.",
                        f"Историю нельзя записать: {target} доступен этому пользователю только для чтения. "
                        "Проверьте права на файл и его папку или укажите другую папку в GPTDESK_DATA_DIR.",
                    ),
                    "readonly",
                )

    def _drop_connection(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            self._local.conn = None
            with self._lock:
                self._connections.remove(conn)
            with suppress(sqlite3.Error):
                conn.close()

    @property
    def writable(self) -> bool:
        return not self.read_only

    def _db(self) -> sqlite3.Connection:
        if self._closed:
            raise HistoryBugError(Text("The history store is closed.", "Хранилище истории закрыто."))
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None and self.read_only:
            conn = sqlite3.connect(
                self._uri, uri=True, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.create_function("fold", 1, _fold, deterministic=True)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        if conn is None:
            # Autocommit (isolation_level=None): every write below is its own short transaction,
            # so nothing waits on a transaction left open by another thread.
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # e.g. a network file system without shared memory
                conn.close()
                raise HistoryUnavailableError(
                    Text(
                        f"The history file {self.path} cannot use write-ahead logging (the file system "
                        f"gave journal mode '{mode}'). Point GPTDESK_DATA_DIR at a folder on a local disk.",
                        f"Файл истории {self.path} не может работать в режиме WAL (файловая система "
                        f"дала режим «{mode}»). Укажите в GPTDESK_DATA_DIR папку на локальном диске.",
                    ),
                    "io",
                )
            # In WAL mode NORMAL loses nothing when the process dies, only on power loss.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.create_function("fold", 1, _fold, deterministic=True)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _guard(self, action: Text) -> Iterator[None]:
        try:
            yield
        except HistoryError:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise classify(exc, self.path, action) from exc

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for the tables other core packages keep here (story/: stories)."""
        return self._db()

    def guarded(self, action: Text) -> AbstractContextManager[None]:
        """Turn SQLite and OS errors inside the block into HistoryErrors that say what `action` was."""
        return self._guard(action)

    def close(self) -> None:
        """Close every thread's connection (checkpointing the WAL into the main file)."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._closed = True
        for conn in connections:
            with suppress(sqlite3.Error):  # closing a valid handle does not fail; be safe at exit
                conn.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def migrations(self) -> list[str]:
        """The migrations recorded in this database, in order."""
        with self._guard(Text("reading the schema version", "чтение версии схемы")):
            return _applied_read_only(self._db()) if self.read_only else applied(self._db())

    # -- writing ---------------------------------------------------------------------------------

    def begin(
        self,
        prompt: str,
        settings: GenerationSettings | Mapping[str, Any],
        *,
        seed: int | None,
        info: ModelInfo | None,
        engine: str | None = None,
        kind: str = "new",
        parent_id: int | None = None,
        group_id: str | None = None,
        created_at: str | None = None,
        timeout: float | None = None,
    ) -> int:
        """Store a generation about to start (status 'running') and return its id.

        `timeout`: seconds to wait for a lock held by another program (default: the store's), so
        the GUI thread can fail fast and keep the generation in memory instead of freezing.
        """
        if kind not in KINDS:
            raise HistoryBugError(Text(f"Unknown generation kind {kind!r}.", f"Неизвестный вид генерации {kind!r}."))
        values = settings.model_dump() if isinstance(settings, GenerationSettings) else dict(settings)
        now = created_at or _now()
        with self._guard(Text("saving the prompt", "сохранение затравки")), self.lock_wait(timeout):
            cur = self._db().execute(
                """
                INSERT INTO generations (
                    created_at, updated_at, status, pid, prompt, output, settings, seed,
                    model_id, model_revision, model_source, engine, device, dtype, versions,
                    kind, parent_id, group_id, adapter, adapter_digest
                ) VALUES (?, ?, 'running', ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    now,
                    now,
                    os.getpid(),
                    prompt,
                    json.dumps(values, ensure_ascii=False),
                    seed,
                    info.model_id if info else None,
                    info.revision if info else None,
                    info.source if info else None,
                    engine or (info.engine if info else None),
                    info.device if info else None,
                    info.dtype if info else None,
                    json.dumps(library_versions()),
                    kind,
                    parent_id,
                    group_id,
                    info.adapter if info else None,
                    info.adapter_digest if info else None,
                ),
            )
        if cur.lastrowid is None:  # pragma: no cover - an INSERT always sets it
            raise HistoryBugError(Text("INSERT gave no row id.", "INSERT не вернул номер строки."))
        return int(cur.lastrowid)

    def update_output(self, gen_id: int, texts: Sequence[str]) -> None:
        """Store the output so far (one text per returned sequence)."""
        with self._guard(Text("saving the output", "сохранение текста")):
            self._db().execute(
                "UPDATE generations SET output = ?, variants = ?, updated_at = ? WHERE id = ?",
                (texts[0] if texts else "", _variants(texts), _now(), gen_id),
            )

    def finish(self, gen_id: int, finished: Finished) -> None:
        """Store the final result, its timings and seed; status 'finished' or 'cancelled'."""
        status = "cancelled" if finished.finish_reason == "cancelled" else "finished"
        t = finished.timings
        with self._guard(Text("saving the result", "сохранение результата")):
            self._db().execute(
                """
                UPDATE generations SET status = ?, pid = NULL, output = ?, variants = ?, seed = ?,
                    finish_reason = ?, prompt_tokens = ?, generated_tokens = ?, first_token_s = ?,
                    total_s = ?, tokens_per_second = ?, updated_at = ?
                WHERE id = ?
                """,
                (
                    status,
                    finished.text,
                    _variants(finished.texts),
                    finished.seed,
                    finished.finish_reason,
                    finished.prompt_tokens,
                    max(finished.generated_tokens, default=0),
                    t.first_token,
                    t.total,
                    t.tokens_per_second,
                    _now(),
                    gen_id,
                ),
            )

    def fail(self, gen_id: int, error: str, texts: Sequence[str] = ()) -> None:
        """Mark a generation failed, keeping whatever output it had."""
        with self._guard(Text("saving the failure", "сохранение ошибки")):
            db = self._db()
            if texts:
                db.execute(
                    "UPDATE generations SET output = ?, variants = ? WHERE id = ?", (texts[0], _variants(texts), gen_id)
                )
            db.execute(
                "UPDATE generations SET status = 'failed', pid = NULL, error = ?, updated_at = ? WHERE id = ?",
                (error, _now(), gen_id),
            )

    def save_pending(self, pending: PendingGeneration, *, timeout: float | None = None) -> int:
        """Store a generation that was kept in memory while the history could not be written.

        If its prompt was stored before writes began to fail, that row is completed; otherwise a
        new row is added with the time it was made. Returns the row's id.
        """
        with self._guard(Text("saving a kept generation", "сохранение отложенной генерации")), self.lock_wait(timeout):
            gen_id = pending.gen_id
            if (
                gen_id is None
                or self._db().execute("SELECT 1 FROM generations WHERE id = ?", (gen_id,)).fetchone() is None
            ):
                gen_id = self.begin(
                    pending.prompt,
                    pending.settings,
                    seed=pending.seed,
                    info=pending.info,
                    engine=pending.engine,
                    kind=pending.kind,
                    parent_id=pending.parent_id,
                    created_at=pending.created_at,
                )
                pending.gen_id = gen_id  # a later retry completes this row rather than adding another
            if pending.finished is not None:
                self.finish(gen_id, pending.finished)
            elif pending.error is not None:
                self.fail(gen_id, pending.error, pending.texts)
            else:
                self.update_output(gen_id, pending.texts)
            pending.gen_id = gen_id
            return gen_id

    @contextmanager
    def lock_wait(self, timeout: float | None) -> Iterator[None]:
        """Wait at most `timeout` seconds for another program's lock during the block (None: the store's)."""
        if timeout is None:
            yield
            return
        with self._guard(Text("opening the history", "открытие истории")):
            db = self._db()
            db.execute(f"PRAGMA busy_timeout = {max(0, round(timeout * 1000))}")
        try:
            yield
        finally:
            with suppress(sqlite3.Error):  # setting a pragma on an open handle does not fail
                db.execute(f"PRAGMA busy_timeout = {round(self._timeout * 1000)}")

    def delete(self, gen_id: int) -> None:
        with self._guard(Text("deleting a generation", "удаление генерации")):
            self._db().execute("DELETE FROM generations WHERE id = ?", (gen_id,))

    def _mark_interrupted(self, db: sqlite3.Connection) -> None:
        """Generations left 'running' by a process that no longer exists were cut short by a crash."""
        import psutil

        rows = db.execute("SELECT id, pid FROM generations WHERE status = 'running'").fetchall()
        dead = [row["id"] for row in rows if row["pid"] is None or not psutil.pid_exists(row["pid"])]
        for gen_id in dead:
            try:
                db.execute(
                    "UPDATE generations SET status = 'interrupted', pid = NULL, "
                    "finish_reason = coalesce(finish_reason, 'interrupted') WHERE id = ?",
                    (gen_id,),
                )
            except sqlite3.OperationalError as exc:
                # Locked by another program: the label can wait for the next start; the history
                # itself is readable now, and writes report the lock when they meet it.
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
                    return
                raise

    # -- reading ---------------------------------------------------------------------------------

    def get(self, gen_id: int) -> GenerationRecord:
        with self._guard(Text("reading a generation", "чтение генерации")):
            row = self._db().execute("SELECT * FROM generations WHERE id = ?", (gen_id,)).fetchone()
        if row is None:
            raise HistoryBugError(
                Text(f"Generation #{gen_id} is not in the history.", f"Генерации №{gen_id} нет в истории.")
            )
        return _record(row)

    def find(self, search: str = "", *, limit: int = 500) -> list[GenerationRecord]:
        """The most recent generations first; `search` matches prompt, output or model, any case."""
        query = "SELECT * FROM generations"
        params: list[Any] = []
        if search.strip():
            query += (
                " WHERE instr(fold(prompt || char(10) || output || char(10) || coalesce(variants, '')"
                " || char(10) || coalesce(model_id, '')), ?) > 0"
            )
            params.append(_fold(search.strip()))
        query += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self._guard(Text("reading the history", "чтение истории")):
            rows = self._db().execute(query, params).fetchall()
        return [_record(row) for row in rows]

    def find_group(self, group_id: str) -> list[GenerationRecord]:
        """The generations of one explorer grid, in the order they were stored."""
        with self._guard(Text("reading the history", "чтение истории")):
            rows = (
                self._db().execute("SELECT * FROM generations WHERE group_id = ? ORDER BY id", (group_id,)).fetchall()
            )
        return [_record(row) for row in rows]

    def groups(self, *, limit: int = 50) -> list[tuple[str, int, str]]:
        """Recent explorer grids: (group id, cells, prompt), newest first."""
        with self._guard(Text("reading the history", "чтение истории")):
            rows = (
                self._db()
                .execute(
                    "SELECT group_id, count(*), min(prompt), max(id) AS last FROM generations "
                    "WHERE group_id IS NOT NULL GROUP BY group_id ORDER BY last DESC LIMIT ?",
                    (limit,),
                )
                .fetchall()
            )
        return [(str(r[0]), int(r[1]), str(r[2])) for r in rows]

    def count(self) -> int:
        with self._guard(Text("reading the history", "чтение истории")):
            return int(self._db().execute("SELECT count(*) FROM generations").fetchone()[0])


def open_history(path: Path | None = None, *, timeout: float = 5.0) -> HistoryStore:
    """The history for reading and writing; failing that, for reading only, with `problem` saying why.

    A locked, read-only or unwritable history can still be browsed and searched. A damaged file,
    or one from a newer GPT Desk, raises its HistoryError: there is nothing to show from it.
    """
    try:
        return HistoryStore(path, timeout=timeout)
    except HistoryUnavailableError as exc:
        if exc.reason not in ("readonly", "locked", "io", "os"):
            raise
        try:
            store = HistoryStore(path, timeout=timeout, read_only=True)
        except HistoryError:
            raise exc from None
        store.problem = exc
        return store


def _applied_read_only(db: sqlite3.Connection) -> list[str]:
    try:
        return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]
    except sqlite3.OperationalError:  # no _migrations table: not a GPT Desk history
        return []


def _variants(texts: Sequence[str]) -> str | None:
    return json.dumps(list(texts), ensure_ascii=False) if len(texts) > 1 else None


def _record(row: sqlite3.Row) -> GenerationRecord:
    variants = json.loads(row["variants"]) if row["variants"] else [row["output"]]
    return GenerationRecord(
        id=row["id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        status=row["status"],
        prompt=row["prompt"],
        texts=[str(t) for t in variants],
        settings=json.loads(row["settings"]),
        seed=row["seed"],
        model_id=row["model_id"],
        model_revision=row["model_revision"],
        model_source=row["model_source"],
        engine=row["engine"],
        device=row["device"],
        dtype=row["dtype"],
        versions=json.loads(row["versions"]),
        finish_reason=row["finish_reason"],
        prompt_tokens=row["prompt_tokens"],
        generated_tokens=row["generated_tokens"],
        first_token_s=row["first_token_s"],
        total_s=row["total_s"],
        tokens_per_second=row["tokens_per_second"],
        error=row["error"],
        kind=row["kind"],
        parent_id=row["parent_id"],
        group_id=row["group_id"],
        adapter=row["adapter"],
        adapter_digest=row["adapter_digest"],
    )
