"""A story as a tree of nodes: each node's text, tokens with log-probabilities and alternatives, marks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, overload

from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text

#: The version of a story's JSON form; an import of a higher one is refused (written by a newer GPT Desk).
FORMAT_VERSION = 1
FORMAT_NAME = "gptdesk-story"
NODE_KINDS = ("root", "grow", "branch", "edit")


class StoryAlternative(NamedTuple):
    """A token the model also offered at a step (a named tuple: a story of 1,000 nodes holds 200,000)."""

    id: int
    text: str
    logprob: float

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "logprob": self.logprob}


class StoryToken(NamedTuple):
    """One token of a node: the text it adds, its log-probability (None for typed text) and alternatives."""

    id: int
    text: str
    logprob: float | None = None
    alternatives: tuple[StoryAlternative, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "logprob": self.logprob,
            "alternatives": [a.to_dict() for a in self.alternatives],
        }

    @classmethod
    def from_dict(cls, data: Any) -> StoryToken:
        """A token from its JSON form; raises ValueError/TypeError/KeyError on a damaged one."""
        alternatives = tuple(
            StoryAlternative(_int(a["id"]), _str(a["text"]), _float(a["logprob"])) for a in _list(data["alternatives"])
        )
        logprob = data["logprob"]
        return cls(_int(data["id"]), _str(data["text"]), None if logprob is None else _float(logprob), alternatives)

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> StoryToken:
        """A token as this version stored it in the database (checked when it was written)."""
        alts = tuple(StoryAlternative(a["id"], a["text"], a["logprob"]) for a in data["alternatives"])
        return cls(data["id"], data["text"], data["logprob"], alts)


class StoredTokens(Sequence[StoryToken]):
    """A node's tokens as stored, parsed on first use: a story opens without reading every token's
    alternatives, and the tree needs only each node's mean, which is stored beside them."""

    def __init__(self, raw: str, mean: float | None) -> None:
        self._raw: str | None = raw
        self._tokens: list[StoryToken] = []
        self.mean = mean

    @property
    def parsed(self) -> bool:
        return self._raw is None

    def _list(self) -> list[StoryToken]:
        if self._raw is not None:
            self._tokens = [StoryToken.from_stored(t) for t in json.loads(self._raw)]
            self._raw = None
        return self._tokens

    @overload
    def __getitem__(self, index: int) -> StoryToken: ...
    @overload
    def __getitem__(self, index: slice) -> list[StoryToken]: ...
    def __getitem__(self, index: int | slice) -> StoryToken | list[StoryToken]:
        return self._list()[index]

    def __len__(self) -> int:
        return len(self._list())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and self._list() == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable like a list


def mean_logprob(tokens: Iterable[StoryToken]) -> float | None:
    """The mean log-probability of the tokens the model chose (None when none were generated)."""
    values = [t.logprob for t in tokens if t.logprob is not None]
    return sum(values) / len(values) if values else None


@dataclass
class Node:
    """One node of a story: a stretch of text that continues its parent's."""

    id: int
    story_id: int
    parent_id: int | None
    kind: str
    status: str
    text: str
    tokens: Sequence[StoryToken]
    settings: dict[str, Any] | None = None
    seed: int | None = None
    sequence: int = 0
    model_id: str | None = None
    engine: str | None = None
    finish_reason: str | None = None
    bookmark: bool = False
    hidden: bool = False
    created_at: str = ""
    updated_at: str = ""

    @property
    def mean_logprob(self) -> float | None:
        """The mean log-probability of the tokens the model chose (None when none were generated)."""
        if isinstance(self.tokens, StoredTokens) and not self.tokens.parsed:
            return self.tokens.mean
        return mean_logprob(self.tokens)

    def opening(self, words: int = 6) -> str:
        """The node's first few words on one line, for lists and the tree view."""
        parts = self.text.split()
        line = " ".join(parts[:words])
        return line + (" …" if len(parts) > words else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parent": self.parent_id,
            "kind": self.kind,
            "status": self.status,
            "text": self.text,
            "tokens": [t.to_dict() for t in self.tokens],
            "mean_logprob": self.mean_logprob,
            "settings": self.settings,
            "seed": self.seed,
            "sequence": self.sequence,
            "model_id": self.model_id,
            "engine": self.engine,
            "finish_reason": self.finish_reason,
            "bookmark": self.bookmark,
            "hidden": self.hidden,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class Story:
    """A tree of nodes: the root holds the prompt, every other node continues its parent."""

    id: int
    title: str
    settings: dict[str, Any]
    current_node: int | None
    model_id: str | None = None
    engine: str | None = None
    created_at: str = ""
    updated_at: str = ""
    nodes: dict[int, Node] = field(default_factory=dict)  # by id, in the order they were made

    @property
    def root(self) -> Node:
        return next(n for n in self.nodes.values() if n.parent_id is None)

    @property
    def current(self) -> Node:
        """The node the writer is at: the stored current node, else the root."""
        if self.current_node is not None and self.current_node in self.nodes:
            return self.nodes[self.current_node]
        return self.root

    def children(self, node_id: int) -> list[Node]:
        return [n for n in self.nodes.values() if n.parent_id == node_id]

    def node(self, node_id: int) -> Node:
        """The node with this id; InvalidInputError naming the story's nodes when it has none such."""
        found = self.nodes.get(node_id)
        if found is None:
            ids = ", ".join(str(i) for i in self.nodes)
            raise InvalidInputError(
                Text(
                    f"Story {self.id} has no node {node_id} (it was deleted, or belongs to another story). "
                    f"Its nodes are: {ids}. See `gptdesk story show {self.id}`.",
                    f"В рассказе {self.id} нет узла {node_id} (он удалён или принадлежит другому рассказу). "
                    f"Её узлы: {ids}. См. `gptdesk story show {self.id}`.",
                )
            )
        return found

    def path(self, node_id: int) -> list[Node]:
        """The nodes from the root down to `node_id`."""
        out: list[Node] = []
        node: Node | None = self.node(node_id)
        while node is not None:
            out.append(node)
            node = self.nodes.get(node.parent_id) if node.parent_id is not None else None
        return out[::-1]

    def text(self, node_id: int | None = None) -> str:
        """The text of the path from the root to `node_id` (default: the current node)."""
        target = self.current.id if node_id is None else node_id
        return "".join(n.text for n in self.path(target))

    def siblings(self, node_id: int) -> list[Node]:
        """The node and its siblings, in the order they were made."""
        node = self.node(node_id)
        if node.parent_id is None:
            return [node]
        return self.children(node.parent_id)

    def walk(self) -> Iterator[tuple[int, Node]]:
        """Depth-first, parents before children: (depth, node)."""
        below: dict[int | None, list[Node]] = {}
        for node in self.nodes.values():  # one pass, so a tree of thousands of nodes walks in linear time
            below.setdefault(node.parent_id, []).append(node)
        stack: list[tuple[int, Node]] = [(0, self.root)]
        while stack:
            depth, node = stack.pop()
            yield depth, node
            stack.extend((depth + 1, c) for c in reversed(below.get(node.id, [])))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "id": self.id,
            "title": self.title,
            "settings": self.settings,
            "current": self.current_node,
            "model_id": self.model_id,
            "engine": self.engine,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "nodes": [n.to_dict() for n in self.nodes.values()],
        }


def tokens_text(tokens: Iterable[StoryToken]) -> str:
    return "".join(t.text for t in tokens)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {value!r}")
    return value
