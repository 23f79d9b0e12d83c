"""Stories in the history database (tables of migration m004_stories): nodes written as they grow."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gptdesk.errors import InvalidInputError
from gptdesk.history.store import HistoryStore
from gptdesk.i18n import Text
from gptdesk.story.model import Node, StoredTokens, Story, StoryToken, mean_logprob, tokens_text


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _tokens_json(tokens: Sequence[StoryToken]) -> str:
    return json.dumps([t.to_dict() for t in tokens], ensure_ascii=False)


class StoryStore:
    """Stories kept in a HistoryStore's database. Each write is its own short transaction."""

    def __init__(self, history: HistoryStore) -> None:
        self.history = history
        if history.writable and history.problem is None:
            self._mark_interrupted()

    def _db(self) -> sqlite3.Connection:
        return self.history.connection()

    def _guard(self, en: str, ru: str) -> Any:
        return self.history.guarded(Text(en, ru))

    # -- writing ---------------------------------------------------------------------------------

    def create(
        self,
        prompt: str,
        prompt_tokens: Sequence[StoryToken],
        settings: Mapping[str, Any],
        *,
        title: str = "",
        model_id: str | None = None,
        engine: str | None = None,
    ) -> tuple[int, int]:
        """A new story with its root node (the prompt); returns (story id, root node id)."""
        now = _now()
        with self._guard("saving a new story", "сохранение нового рассказа"):
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute(
                    "INSERT INTO stories (created_at, updated_at, title, settings, model_id, engine) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        now,
                        now,
                        title or _title(prompt),
                        json.dumps(dict(settings), ensure_ascii=False),
                        model_id,
                        engine,
                    ),
                )
                story_id = int(cur.lastrowid or 0)
                root = self._insert_node(
                    db, story_id, None, "root", "finished", prompt, prompt_tokens, None, None, 0, model_id, engine
                )
                db.execute("UPDATE stories SET current_node = ? WHERE id = ?", (root, story_id))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return story_id, root

    def begin_node(
        self,
        story_id: int,
        parent_id: int,
        kind: str,
        *,
        tokens: Sequence[StoryToken] = (),
        settings: Mapping[str, Any] | None = None,
        seed: int | None = None,
        sequence: int = 0,
        model_id: str | None = None,
        engine: str | None = None,
        status: str = "running",
    ) -> int:
        """Store a node before its generation starts (status 'running'); returns its id."""
        with self._guard("saving a story node", "сохранение узла рассказа"):
            return self._insert_node(
                self._db(),
                story_id,
                parent_id,
                kind,
                status,
                tokens_text(tokens),
                tokens,
                settings,
                seed,
                sequence,
                model_id,
                engine,
            )

    def _insert_node(
        self,
        db: sqlite3.Connection,
        story_id: int,
        parent_id: int | None,
        kind: str,
        status: str,
        text: str,
        tokens: Sequence[StoryToken],
        settings: Mapping[str, Any] | None,
        seed: int | None,
        sequence: int,
        model_id: str | None,
        engine: str | None,
        *,
        bookmark: bool = False,
        hidden: bool = False,
        finish_reason: str | None = None,
    ) -> int:
        now = _now()
        cur = db.execute(
            """
            INSERT INTO story_nodes (
                story_id, parent_id, created_at, updated_at, kind, status, pid, text, tokens, mean_logprob,
                settings, seed, sequence, model_id, engine, finish_reason, bookmark, hidden
            ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            (
                story_id,
                parent_id,
                now,
                now,
                kind,
                status,
                os.getpid() if status == "running" else None,
                text,
                _tokens_json(tokens),
                mean_logprob(tokens),
                json.dumps(dict(settings), ensure_ascii=False) if settings is not None else None,
                seed,
                sequence,
                model_id,
                engine,
                finish_reason,
                int(bookmark),
                int(hidden),
            ),
        )
        db.execute("UPDATE stories SET updated_at = ? WHERE id = ?", (now, story_id))
        return int(cur.lastrowid or 0)

    def update_tokens(self, node_id: int, tokens: Sequence[StoryToken], *, seed: int | None = None) -> None:
        """Store a growing node's tokens so far (its text follows from them)."""
        with self._guard("saving a story node", "сохранение узла рассказа"):
            self._db().execute(
                "UPDATE story_nodes SET text = ?, tokens = ?, mean_logprob = ?, seed = coalesce(?, seed), "
                "updated_at = ? WHERE id = ?",
                (tokens_text(tokens), _tokens_json(tokens), mean_logprob(tokens), seed, _now(), node_id),
            )

    def finish_node(
        self, node_id: int, tokens: Sequence[StoryToken], *, status: str, finish_reason: str | None, seed: int | None
    ) -> None:
        """Store a node's final tokens and how it ended."""
        with self._guard("saving a story node", "сохранение узла рассказа"):
            self._db().execute(
                "UPDATE story_nodes SET text = ?, tokens = ?, mean_logprob = ?, status = ?, pid = NULL, "
                "finish_reason = ?, seed = coalesce(?, seed), updated_at = ? WHERE id = ?",
                (
                    tokens_text(tokens),
                    _tokens_json(tokens),
                    mean_logprob(tokens),
                    status,
                    finish_reason,
                    seed,
                    _now(),
                    node_id,
                ),
            )

    def set_current(self, story_id: int, node_id: int) -> None:
        with self._guard("saving the current node", "сохранение текущего узла"):
            self._db().execute(
                "UPDATE stories SET current_node = ?, updated_at = ? WHERE id = ?", (node_id, _now(), story_id)
            )

    def set_marks(self, node_id: int, *, bookmark: bool | None = None, hidden: bool | None = None) -> None:
        with self._guard("saving a node's marks", "сохранение отметок узла"):
            db = self._db()
            if bookmark is not None:
                db.execute("UPDATE story_nodes SET bookmark = ? WHERE id = ?", (int(bookmark), node_id))
            if hidden is not None:
                db.execute("UPDATE story_nodes SET hidden = ? WHERE id = ?", (int(hidden), node_id))

    def delete(self, story_id: int) -> None:
        """Remove a story and all its nodes."""
        self.load(story_id)  # a clear message for a story that is not there
        with self._guard("deleting a story", "удаление рассказа"):
            self._db().execute("DELETE FROM stories WHERE id = ?", (story_id,))

    def delete_node(self, story_id: int, node_id: int) -> None:
        """Remove a node and everything grown from it (not the root: delete the story instead)."""
        story = self.load(story_id)
        node = story.node(node_id)
        if node.parent_id is None:
            raise InvalidInputError(
                Text(
                    f"Node {node_id} is the root of story {story_id} (its prompt). Remove the whole story with "
                    f"`gptdesk story rm {story_id}`.",
                    f"Узел {node_id} — корень рассказа {story_id} (его затравка). Удалите весь рассказ командой "
                    f"`gptdesk story rm {story_id}`.",
                )
            )
        with self._guard("deleting a story node", "удаление узла рассказа"):
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM story_nodes WHERE id = ?", (node_id,))  # children go by ON DELETE CASCADE
                if story.current_node is not None and story.current_node not in self._node_ids(db, story_id):
                    db.execute("UPDATE stories SET current_node = ? WHERE id = ?", (node.parent_id, story_id))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def insert_story(self, story: Story) -> int:
        """Store an imported story whole (new ids, parents first), in one transaction; returns its id."""
        now = _now()
        with self._guard("importing a story", "импорт рассказа"):
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute(
                    "INSERT INTO stories (created_at, updated_at, title, settings, model_id, engine) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        story.created_at or now,
                        now,
                        story.title,
                        json.dumps(story.settings, ensure_ascii=False),
                        story.model_id,
                        story.engine,
                    ),
                )
                story_id = int(cur.lastrowid or 0)
                new_ids: dict[int, int] = {}
                for node in story.nodes.values():
                    parent = new_ids[node.parent_id] if node.parent_id is not None else None
                    new_ids[node.id] = self._insert_node(
                        db,
                        story_id,
                        parent,
                        node.kind,
                        "interrupted" if node.status == "running" else node.status,
                        node.text,
                        node.tokens,
                        node.settings,
                        node.seed,
                        node.sequence,
                        node.model_id,
                        node.engine,
                        bookmark=node.bookmark,
                        hidden=node.hidden,
                        finish_reason=node.finish_reason,
                    )
                current = new_ids.get(story.current_node) if story.current_node is not None else None
                db.execute("UPDATE stories SET current_node = ? WHERE id = ?", (current, story_id))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return story_id

    def _mark_interrupted(self) -> None:
        """Nodes left 'running' by a process that no longer exists were cut short by a crash."""
        import psutil

        with self._guard("opening the stories", "открытие рассказов"):
            db = self._db()
            rows = db.execute("SELECT id, pid FROM story_nodes WHERE status = 'running'").fetchall()
            for row in rows:
                if row["pid"] is None or not psutil.pid_exists(row["pid"]):
                    db.execute(
                        "UPDATE story_nodes SET status = 'interrupted', pid = NULL, "
                        "finish_reason = coalesce(finish_reason, 'interrupted') WHERE id = ?",
                        (row["id"],),
                    )

    # -- reading ---------------------------------------------------------------------------------

    @staticmethod
    def _node_ids(db: sqlite3.Connection, story_id: int) -> set[int]:
        return {int(r[0]) for r in db.execute("SELECT id FROM story_nodes WHERE story_id = ?", (story_id,))}

    def load(self, story_id: int) -> Story:
        """A story with all its nodes; InvalidInputError naming the stories there are when it is not there."""
        with self._guard("reading a story", "чтение рассказа"):
            db = self._db()
            row = db.execute("SELECT * FROM stories WHERE id = ?", (story_id,)).fetchone()
            if row is None:
                ids = [str(r[0]) for r in db.execute("SELECT id FROM stories ORDER BY id DESC LIMIT 20")]
                there = ", ".join(ids) if ids else "none"
                raise InvalidInputError(
                    Text(
                        f"There is no story {story_id} (deleted, or never made). Stories there are: {there}. "
                        "List them with `gptdesk story ls`, or start one with `gptdesk story new PROMPT`.",
                        f"Рассказа {story_id} нет (удалён или не создавался). Есть рассказы: "
                        f"{there if ids else 'нет'}. Список: `gptdesk story ls`; новая: `gptdesk story new ЗАТРАВКА`.",
                    )
                )
            nodes = db.execute("SELECT * FROM story_nodes WHERE story_id = ? ORDER BY id", (story_id,)).fetchall()
        story = Story(
            id=row["id"],
            title=row["title"],
            settings=json.loads(row["settings"]),
            current_node=row["current_node"],
            model_id=row["model_id"],
            engine=row["engine"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )
        for n in nodes:
            story.nodes[int(n["id"])] = Node(
                id=n["id"],
                story_id=n["story_id"],
                parent_id=n["parent_id"],
                kind=n["kind"],
                status=n["status"],
                text=n["text"],
                tokens=StoredTokens(n["tokens"], n["mean_logprob"]),
                settings=json.loads(n["settings"]) if n["settings"] else None,
                seed=n["seed"],
                sequence=n["sequence"],
                model_id=n["model_id"],
                engine=n["engine"],
                finish_reason=n["finish_reason"],
                bookmark=bool(n["bookmark"]),
                hidden=bool(n["hidden"]),
                created_at=n["created_at"],
                updated_at=n["updated_at"],
            )
        return story

    def list(self) -> list[tuple[int, str, int, str]]:
        """Every story, newest first: (id, title, nodes, updated_at)."""
        with self._guard("reading the stories", "чтение рассказов"):
            rows = self._db().execute(
                "SELECT s.id, s.title, count(n.id), s.updated_at FROM stories s "
                "LEFT JOIN story_nodes n ON n.story_id = s.id GROUP BY s.id ORDER BY s.updated_at DESC, s.id DESC"
            )
            return [(int(r[0]), str(r[1]), int(r[2]), str(r[3])) for r in rows]


def _title(prompt: str, width: int = 60) -> str:
    line = next((part.strip() for part in prompt.splitlines() if part.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"
