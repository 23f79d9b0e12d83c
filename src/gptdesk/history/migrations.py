"""The history schema as ordered, recorded migrations (style: simonw/llm llm/migrations.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: list[tuple[str, Migration]] = []


def migration(func: Migration) -> Migration:
    """Append a migration; its function name is recorded once it has run. Never rename or reorder."""
    MIGRATIONS.append((func.__name__, func))
    return func


@migration
def m001_generations(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE generations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at TEXT NOT NULL,        -- ISO 8601, UTC
            updated_at TEXT NOT NULL,
            status TEXT NOT NULL,            -- running, finished, cancelled, failed, interrupted
            pid INTEGER,                     -- the process writing a running generation
            prompt TEXT NOT NULL,
            output TEXT NOT NULL DEFAULT '', -- the first (or only) sequence, as it grows
            settings TEXT NOT NULL,          -- GenerationSettings as JSON, as the user set them
            seed INTEGER,                    -- the seed actually used
            model_id TEXT,
            model_revision TEXT,
            model_source TEXT,
            engine TEXT,
            device TEXT,
            dtype TEXT,
            versions TEXT NOT NULL,          -- library versions as JSON
            finish_reason TEXT,
            prompt_tokens INTEGER,
            generated_tokens INTEGER,
            first_token_s REAL,
            total_s REAL,
            tokens_per_second REAL,
            error TEXT
        )
        """
    )
    db.execute("CREATE INDEX generations_created ON generations (created_at)")


@migration
def m002_variants_and_lineage(db: sqlite3.Connection) -> None:
    # Several returned sequences (num_return_sequences > 1) and where a generation came from:
    # a fresh prompt, a continuation of an earlier one, or a reproduction with the same seed.
    db.execute("ALTER TABLE generations ADD COLUMN variants TEXT")  # JSON list of texts, or NULL
    db.execute("ALTER TABLE generations ADD COLUMN kind TEXT NOT NULL DEFAULT 'new'")
    db.execute("ALTER TABLE generations ADD COLUMN parent_id INTEGER REFERENCES generations (id) ON DELETE SET NULL")


@migration
def m003_groups(db: sqlite3.Connection) -> None:
    # The parameter lab's explorer stores a grid of settings as generations sharing one group id.
    db.execute("ALTER TABLE generations ADD COLUMN group_id TEXT")
    db.execute("CREATE INDEX generations_group ON generations (group_id)")


@migration
def m004_stories(db: sqlite3.Connection) -> None:
    # The writing desk (gptdesk.story): a story is a tree of nodes. A node is stored before its
    # generation starts and its text and tokens are updated as they arrive, so a crash loses only
    # the tokens not yet written.
    db.execute(
        """
        CREATE TABLE stories (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            settings TEXT NOT NULL,          -- GenerationSettings as JSON: what grow uses by default
            current_node INTEGER,            -- the node the writer is at (grow's default)
            model_id TEXT,
            engine TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE story_nodes (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            story_id INTEGER NOT NULL REFERENCES stories (id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES story_nodes (id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            kind TEXT NOT NULL,              -- root, grow, branch, edit
            status TEXT NOT NULL,            -- running, finished, cancelled, failed, interrupted
            pid INTEGER,                     -- the process writing a running node
            text TEXT NOT NULL DEFAULT '',
            tokens TEXT NOT NULL DEFAULT '[]', -- JSON: [{id, text, logprob, alternatives: [{id, text, logprob}]}]
            mean_logprob REAL,               -- over the tokens with a log-probability (the tree shows it unparsed)
            settings TEXT,                   -- GenerationSettings as JSON (NULL for the root and edits)
            seed INTEGER,                    -- the seed actually used
            sequence INTEGER NOT NULL DEFAULT 0, -- which sequence of that seed's batch
            model_id TEXT,
            engine TEXT,
            finish_reason TEXT,
            bookmark INTEGER NOT NULL DEFAULT 0,
            hidden INTEGER NOT NULL DEFAULT 0
        )
        """
    )
    db.execute("CREATE INDEX story_nodes_story ON story_nodes (story_id, id)")
    db.execute("CREATE INDEX story_nodes_parent ON story_nodes (parent_id)")


@migration
def m005_adapters(db: sqlite3.Connection) -> None:
    # A LoRA adapter from `gptdesk tune` applied to the model (issue 20): its name and the digest of its
    # weights, so Reproduce can tell whether the adapter it has is the one that made the text.
    db.execute("ALTER TABLE generations ADD COLUMN adapter TEXT")
    db.execute("ALTER TABLE generations ADD COLUMN adapter_digest TEXT")


def applied(db: sqlite3.Connection) -> list[str]:
    """Names of the migrations recorded in this database, in the order they ran."""
    db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]


def migrate(db: sqlite3.Connection, *, upto: str | None = None) -> list[str]:
    """Run the migrations this database lacks, each in its own transaction; return their names.

    `upto` stops after the named migration (tests use it to build an older database).
    """
    ran: list[str] = []
    if upto is None and all(name in applied(db) for name, _ in MIGRATIONS):
        # Up to date: no write lock is taken, so a database another program holds locked still
        # opens (for reading at least) instead of waiting for the lock and failing.
        return ran
    for name, func in MIGRATIONS:
        # BEGIN IMMEDIATE takes the write lock first, so two processes opening the same new
        # database cannot both run a migration: the second waits, then sees it recorded.
        db.execute("BEGIN IMMEDIATE")
        try:
            if name not in applied(db):
                func(db)
                db.execute(
                    "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                    (name, datetime.now(UTC).isoformat(timespec="seconds")),
                )
                ran.append(name)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if name == upto:
            break
    return ran
