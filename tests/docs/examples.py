"""The `gptdesk` commands in the fenced shell blocks of the README and docs/*.md, found the way a reader finds them.

The convention (tests/docs/test_examples.py runs what this finds):
- Shell blocks are fences with the language `sh`, `bash`, `shell`, `console` or none. Other languages (python,
  json, text) are never run.
- In a `console` block only lines starting with `$ ` are commands (the rest is output); in the others every line
  that is not blank and not a `#` comment is one. A line ending in a backslash continues on the next.
- A line is a `gptdesk` example when one of its simple commands (between `|`, `&&`, `||`, `;`) is the `gptdesk`
  command: its first word, after `NAME=value` assignments, is `gptdesk` or a path ending in `/gptdesk`
  (`.venv/bin/gptdesk`). Such a line runs as written, through a shell.
- `<!-- not run: REASON -->` as the last non-blank line before a fence marks the whole block as not run. A
  line whose `#` comment ends in `not run: REASON` (or `(not run: REASON)`) marks that line alone.
  The reason is required.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

SHELL_LANGUAGES = frozenset({"", "sh", "bash", "shell", "console"})
_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_BLOCK_MARK = re.compile(r"^\s*<!--\s*not run:(?P<reason>.*?)-->\s*$")
_LINE_MARK = re.compile(r"#.*?\bnot run:(?P<reason>[^)]*)\)?\s*$")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_OPERATORS = frozenset({"|", "||", "&&", ";", "&", "(", ")", "|&"})


@dataclass(frozen=True)
class Example:
    """One runnable line of a document: where it is, what it says, whether (and why not) it runs."""

    path: Path  # the document
    line: int  # 1-based line of the command's first line
    command: str  # as written, continuations joined, without a console's `$ `
    block: int  # 0-based index of the fenced block in the document
    not_run: str | None = None  # the reason it is not run, from a marker

    def label(self, root: Path) -> str:
        return f"{self.path.relative_to(root).as_posix()}:{self.line}"


@dataclass
class Block:
    """A fenced block: where it opens, its language, its marker's reason, its lines with their numbers."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    not_run: str | None
    lines: list[tuple[int, str]] = field(default_factory=list)


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a markdown file (all languages), with the not-run marker just above it."""
    found: list[Block] = []
    current: Block | None = None
    fence = ""
    previous = ""  # the last non-blank line outside a block
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if current is None:
            opening = _FENCE.match(raw)
            if opening:
                mark = _BLOCK_MARK.match(previous)
                reason = mark.group("reason").strip() if mark else None
                fence = opening.group("fence")
                current = Block(path, number, opening.group("info").lower(), reason)
                indent = len(opening.group("indent"))
                current_indent = indent
            elif raw.strip():
                previous = raw
            continue
        stripped = raw.strip()
        if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
            found.append(current)
            current = None
            previous = ""
            continue
        # A block inside a list item is indented: drop the fence's indentation, not more.
        current.lines.append((number, raw[current_indent:] if raw[:current_indent].isspace() else raw.lstrip()))
    return found


def _logical_lines(block: Block) -> list[tuple[int, str]]:
    """The block's shell lines with continuations joined; a console's output lines left out."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    console = block.language == "console"
    for number, text in block.lines:
        if pending is not None:
            start, so_far = pending
            text = so_far + "\n" + text
            number = start
        elif console:
            if not text.startswith("$ "):
                continue
            text = text[2:]
        if text.rstrip().endswith("\\"):
            pending = (number, text)
            continue
        pending = None
        if text.strip() and not text.lstrip().startswith("#"):
            out.append((number, text.rstrip()))
    if pending is not None:
        out.append(pending)
    return out


def _words(command: str) -> list[str]:
    lexer = shlex.shlex(command.replace("\\\n", " "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: not a command a shell would run either
        return []


def simple_commands(command: str) -> list[list[str]]:
    """The words of each simple command in a shell line (split at pipes, `&&`, `||`, `;`)."""
    out: list[list[str]] = [[]]
    for word in _words(command):
        if word in _OPERATORS:
            out.append([])
        else:
            out[-1].append(word)
    return [words for words in out if words]


def gptdesk_arguments(words: list[str]) -> list[str] | None:
    """The arguments of a simple command that runs `gptdesk` (assignments before it skipped), else None."""
    rest = list(words)
    while rest and _ASSIGNMENT.match(rest[0]):
        rest.pop(0)
    if rest and (rest[0] == "gptdesk" or rest[0].endswith("/gptdesk")):
        return rest[1:]
    return None


def runs_gptdesk(command: str) -> bool:
    return any(gptdesk_arguments(words) is not None for words in simple_commands(command))


def examples(path: Path) -> list[Example]:
    """The `gptdesk` examples of one document, in order, each with its not-run reason if it is marked."""
    found: list[Example] = []
    for index, block in enumerate(blocks(path)):
        if block.language not in SHELL_LANGUAGES:
            continue
        for number, text in _logical_lines(block):
            if not runs_gptdesk(text):
                continue
            line_mark = _LINE_MARK.search(text)
            reason = (
                block.not_run
                if block.not_run is not None
                else (line_mark.group("reason").strip() if line_mark else None)
            )
            found.append(Example(path, number, text, index, reason))
    return found


def documents(root: Path) -> list[Path]:
    """The README and docs/*.md, in reading order."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]
