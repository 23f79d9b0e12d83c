"""The llama.cpp engine's converted GGUF files: which model each was made from, their sizes, removing them."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

from gptdesk.errors import ModelError
from gptdesk.i18n import Text
from gptdesk.models.catalog import find_entry
from gptdesk.models.gguf.cache import cache_dir, iter_cached, manifest_path
from gptdesk.models.locate import hub_candidates


@dataclass(frozen=True)
class ConvertedFile:
    """One converted file in GPT Desk's cache, with what its manifest says it was made from."""

    path: Path
    model_id: str  # as the engine resolved it: a catalog or hub id, "embedded", or a folder
    quant: str
    revision: str
    bytes: int  # the file and its manifest


def gguf_root(root: Path | None = None) -> Path:
    """The folder that holds every converted file (under GPTDESK_CACHE_DIR or the user cache folder)."""
    return (root or cache_dir()) / "gguf"


def list_converted(root: Path | None = None) -> list[ConvertedFile]:
    """Every converted file; one whose manifest is unreadable is listed under its folder's name."""
    found: list[ConvertedFile] = []
    for path in iter_cached(root):
        manifest: dict[str, object] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(manifest_path(path).read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                manifest = loaded
        size = _size(path) + _size(manifest_path(path))
        found.append(
            ConvertedFile(
                path=path,
                model_id=str(manifest.get("model_id") or path.parent.name),
                quant=str(manifest.get("quant") or path.stem),
                revision=str(manifest.get("revision") or ""),
                bytes=size,
            )
        )
    return found


def cache_total(root: Path | None = None) -> int:
    """Bytes of everything under the GGUF cache, leftovers of interrupted conversions included."""
    base = gguf_root(root)
    if not base.is_dir():
        return 0
    return sum(_size(p) for p in base.rglob("*") if p.is_file() and not p.is_symlink())


def model_ids(name: str) -> set[str]:
    """The ids a model's converted files may carry: the catalog id and every hub alias, lower case."""
    entry = find_entry(name)
    ids = {c.lower() for c in hub_candidates(name)}
    if entry is not None:
        ids.add(entry.id.lower())
    ids.add(name.strip().lower())
    return ids


def converted_for(name: str, files: list[ConvertedFile] | None = None, root: Path | None = None) -> list[ConvertedFile]:
    ids = model_ids(name)
    return [f for f in (list_converted(root) if files is None else files) if f.model_id.lower() in ids]


def remove_file(path: Path) -> int:
    """Delete one converted file and its manifest (and its folder once empty); returns the bytes freed."""
    freed = 0
    for p in (manifest_path(path), path):
        size = _size(p)
        try:
            p.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ModelError(
                Text(
                    f"Cannot delete the converted file {p} ({exc}). Close programs that use it, or delete it by hand.",
                    f"Не удаётся удалить преобразованный файл {p} ({exc}). Закройте программы, которые им "
                    "пользуются, или удалите его вручную.",
                )
            ) from exc
        freed += size
    # Leftovers of an interrupted conversion of this model go too; a folder still in use keeps its other files.
    for leftover in path.parent.glob(f".{path.name}.*.part*"):
        freed += _size(leftover)
        with contextlib.suppress(OSError):
            leftover.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # only when empty
    return freed


def remove_converted(name: str, root: Path | None = None) -> int:
    """Delete every converted file of a model (all quantizations); returns the bytes freed."""
    return sum(remove_file(f.path) for f in converted_for(name, root=root))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


__all__ = [
    "ConvertedFile",
    "cache_total",
    "converted_for",
    "gguf_root",
    "list_converted",
    "model_ids",
    "remove_converted",
    "remove_file",
]
