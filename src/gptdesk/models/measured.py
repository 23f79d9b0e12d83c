"""What GPT Desk has measured on this computer: speed from `gptdesk bench`, quality from the
perplexity tool. The model manager shows them beside each llama.cpp type, so a user sees what a
quantization costs on their own machine and their own text, not only in the documentation.

One JSON file in GPT Desk's cache folder (`measured.json`), written atomically. Measurements are
a convenience: a file that cannot be read is treated as empty, and one that cannot be written is
reported to the caller (never raised), so a full disk cannot fail a finished bench or perplexity run.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from gptdesk.i18n import Text

#: Newest entries kept per list; older ones are dropped when the file is written.
_KEEP = 500
_FORMAT = 1

#: Reference-engine dtypes by the type names the llama.cpp types use.
_DTYPE_TYPES = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}


def measured_path() -> Path:
    from gptdesk.models.gguf.cache import cache_dir

    return cache_dir() / "measured.json"


def type_of(engine_label: str) -> str:
    """ "llamacpp q4_K_M" -> "q4_K_M"; "transformers float32" -> "f32" (the perplexity tool's labels)."""
    name = engine_label.split()[-1] if engine_label.strip() else "?"
    return _DTYPE_TYPES.get(name, name)


@dataclass(frozen=True)
class SpeedEntry:
    """One bench row: a type's decoding speed on a model shape (random weights of that shape)."""

    when: str
    shape: str  # the model the shape is taken from, e.g. ai-forever/rugpt3large_based_on_gpt2
    n_layer: int
    n_embd: int
    n_vocab: int
    type: str  # f32, bf16, f16, q8_0, q6_K, q5_K_M, q4_K_M, q4_0
    engine: str  # transformers or llamacpp
    tokens_per_second: float
    x_fp32: float | None  # against the transformers fp32 row of the same bench run
    peak_rss_bytes: int
    threads: int


@dataclass(frozen=True)
class QualityEntry:
    """One measure of a model on a text: bits per character (lower is better)."""

    when: str
    model_id: str
    type: str
    engine: str  # the engine's label, e.g. "llamacpp q4_K_M"
    text: str  # the text's file name, or "stdin", or "held-out prose" for the bench's text
    text_sha256: str
    characters: int
    bits_per_char: float
    perplexity: float
    complete: bool


@dataclass
class Measurements:
    speed: list[SpeedEntry]
    quality: list[QualityEntry]

    def speed_for(self, n_layer: int, n_embd: int, n_vocab: int) -> dict[str, SpeedEntry]:
        """The newest speed per type measured on a model of this shape."""
        found: dict[str, SpeedEntry] = {}
        for entry in self.speed:  # oldest first: newer ones replace older
            if (entry.n_layer, entry.n_embd, entry.n_vocab) == (n_layer, n_embd, n_vocab):
                found[entry.type] = entry
        return found

    def quality_for(self, model_id: str, *aliases: str) -> dict[str, list[QualityEntry]]:
        """Per type, the newest complete measure on each text of this model (newest text first);
        `aliases` are other names of the same model (e.g. its old hub organisation's)."""
        names = {model_id.lower(), *(a.lower() for a in aliases)}
        latest: dict[tuple[str, str], tuple[int, QualityEntry]] = {}
        for index, entry in enumerate(self.quality):  # oldest first: newer ones replace older
            if entry.model_id.lower() in names and entry.complete:
                latest[(entry.type, entry.text_sha256)] = (index, entry)
        by_type: dict[str, list[QualityEntry]] = {}
        # Newest first; two measures in the same second keep the order they were written in.
        for _, entry in sorted(latest.values(), key=lambda ie: (ie[1].when, ie[0]), reverse=True):
            by_type.setdefault(entry.type, []).append(entry)
        return by_type


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _entries(raw: Any, cls: type[Any]) -> list[Any]:
    names = {f.name for f in fields(cls)}
    out = []
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict) and names <= set(item):
            with contextlib.suppress(TypeError, ValueError):
                out.append(cls(**{k: item[k] for k in names}))
    return out


def load(path: Path | None = None) -> Measurements:
    """What is on record; an unreadable or damaged file reads as nothing measured."""
    path = path or measured_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Measurements([], [])
    if not isinstance(data, dict):
        return Measurements([], [])
    return Measurements(_entries(data.get("speed"), SpeedEntry), _entries(data.get("quality"), QualityEntry))


def _save(m: Measurements, path: Path) -> str | None:
    data = {
        "format": _FORMAT,
        "speed": [asdict(e) for e in m.speed[-_KEEP:]],
        "quality": [asdict(e) for e in m.quality[-_KEEP:]],
    }
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".measured.", suffix=".part", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, ensure_ascii=False, indent=1)
        os.replace(tmp_name, path)
        return None
    except OSError as exc:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
        return f"{path}: {exc.strerror or exc}"


def record_speed(entries: list[SpeedEntry], path: Path | None = None) -> str | None:
    """Add bench rows; returns None, or why they could not be written."""
    path = path or measured_path()
    m = load(path)
    m.speed.extend(entries)
    return _save(m, path)


def record_quality(entry: QualityEntry, path: Path | None = None) -> str | None:
    """Add one perplexity measure; returns None, or why it could not be written."""
    path = path or measured_path()
    m = load(path)
    m.quality.append(entry)
    return _save(m, path)


def text_digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Measure(Protocol):
    """What keep_measure reads of a perplexity result (evaluate.perplexity.PerplexityResult)."""

    @property
    def complete(self) -> bool: ...
    @property
    def characters(self) -> int: ...
    @property
    def bits_per_char(self) -> float: ...
    @property
    def perplexity(self) -> float: ...


def keep_measure(result: _Measure, model_id: str, label: str, name: str, text: str) -> Text | None:
    """Keep a complete measure where the model manager shows it; returns what to report when it could not be written."""
    if not result.complete:
        return None
    problem = record_quality(
        QualityEntry(
            when=now(),
            model_id=model_id,
            type=type_of(label),
            engine=label,
            text=name,
            text_sha256=text_digest(text),
            characters=result.characters,
            bits_per_char=result.bits_per_char,
            perplexity=result.perplexity,
            complete=True,
        )
    )
    if problem is None:
        return None
    return Text(
        f"The measure could not be kept for the model manager ({problem}).",
        f"Замер не удалось сохранить для менеджера моделей ({problem}).",
    )
