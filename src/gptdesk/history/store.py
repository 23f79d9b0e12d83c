"""The history database: every generation with everything needed to reproduce it (SQLite, WAL)."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from gptdesk.engine.base import Finished, ModelInfo
from gptdesk.history.errors import HistoryBugError, HistoryError, HistoryUnavailableError, classify
from gptdesk.history.migrations import MIGRATIONS, applied, migrate
from gptdesk.i18n import Text
from gptdesk.settings import GenerationSettings

DB_NAME = "history.sqlite3"
STATUSES = ("running", "finished", "cancelled", "failed", "interrupted")
KINDS = ("new", "continue", "reproduce")
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

    def __init__(self, path: Path | None = None, *, timeout: float = 5.0) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._timeout = timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        with self._guard(Text("opening the history", "открытие истории")):
            self.path.parent.mkdir(parents=True, exist_ok=True)
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
            self._mark_interrupted(db)

    # -- connections -----------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._closed:
            raise HistoryBugError(Text("The history store is closed.", "Хранилище истории закрыто."))
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
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
            return applied(self._db())

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
    ) -> int:
        """Store a generation about to start (status 'running') and return its id."""
        if kind not in KINDS:
            raise HistoryBugError(Text(f"Unknown generation kind {kind!r}.", f"Неизвестный вид генерации {kind!r}."))
        values = settings.model_dump() if isinstance(settings, GenerationSettings) else dict(settings)
        now = _now()
        with self._guard(Text("saving the prompt", "сохранение затравки")):
            cur = self._db().execute(
                """
                INSERT INTO generations (
                    created_at, updated_at, status, pid, prompt, output, settings, seed,
                    model_id, model_revision, model_source, engine, device, dtype, versions,
                    kind, parent_id
                ) VALUES (?, ?, 'running', ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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

    def delete(self, gen_id: int) -> None:
        with self._guard(Text("deleting a generation", "удаление генерации")):
            self._db().execute("DELETE FROM generations WHERE id = ?", (gen_id,))

    def _mark_interrupted(self, db: sqlite3.Connection) -> None:
        """Generations left 'running' by a process that no longer exists were cut short by a crash."""
        import psutil

        rows = db.execute("SELECT id, pid FROM generations WHERE status = 'running'").fetchall()
        dead = [row["id"] for row in rows if row["pid"] is None or not psutil.pid_exists(row["pid"])]
        for gen_id in dead:
            db.execute(
                "UPDATE generations SET status = 'interrupted', pid = NULL, "
                "finish_reason = coalesce(finish_reason, 'interrupted') WHERE id = ?",
                (gen_id,),
            )

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

    def count(self) -> int:
        with self._guard(Text("reading the history", "чтение истории")):
            return int(self._db().execute("SELECT count(*) FROM generations").fetchone()[0])


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
    )
