"""The converted-files cache folder: where each file lives, its manifest, checks, locks and leftovers."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gptdesk.errors import CacheFolderError, DiskSpaceError, GptDeskError
from gptdesk.i18n import Text
from gptdesk.models.gguf.sizes import QUANT_TYPES, check_quant, short_size, tensor_summary
from gptdesk.models.locate import ResolvedModel

#: Bumped whenever the converter writes different bytes for the same source: older files are stale.
CONVERTER_VERSION = 1

_MANIFEST_FORMAT = 1
#: Bytes read from the converted file to check it quickly: its head (header, vocabulary and the
#: first tensors), its tail, and evenly spaced chunks between them.
_HEAD_BYTES = 4 << 20
_CHUNK_BYTES = 64 << 10
_CHUNKS = 32


# -- where converted files live -----------------------------------------------------------------


def cache_dir() -> Path:
    """GPT Desk's cache folder: GPTDESK_CACHE_DIR, or the platform's user cache folder."""
    override = os.environ.get("GPTDESK_CACHE_DIR", "").strip()
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("gptdesk", appauthor=False))


def _cache_key(resolved: ResolvedModel) -> str:
    """Models keep one folder across revisions, so a new revision finds (and replaces) the old file."""
    in_hub_cache = resolved.path.parent.name == "snapshots"
    source = resolved.model_id if resolved.entry is not None or in_hub_cache else str(resolved.path)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", source.rstrip("/").split("/")[-1])[:48] or "model"
    return f"{slug}-{hashlib.sha256(source.encode()).hexdigest()[:10]}"


def gguf_path(resolved: ResolvedModel, quant: str) -> Path:
    """Where the GGUF file of this model and type is kept."""
    check_quant(quant)
    return cache_dir() / "gguf" / _cache_key(resolved) / f"{quant}.gguf"


def manifest_path(gguf: Path) -> Path:
    return gguf.with_suffix(".json")


MISSING = Text("not converted yet", "ещё не преобразована")


def cached_problem(path: Path, *, revision: str, quant: str, full: bool = False) -> Text | None:
    """Why a cached file cannot be used (missing, stale or corrupt), or None when it can."""
    mpath = manifest_path(path)
    if not path.exists() or not mpath.exists():
        return MISSING
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError):
        return Text("its record is damaged", "повреждена запись о ней")
    if manifest.get("format") != _MANIFEST_FORMAT or manifest.get("converter_version") != CONVERTER_VERSION:
        return Text("it was made by an older converter", "она сделана старой версией преобразователя")
    if manifest.get("quant") != quant:
        return Text("its type does not match", "её тип не совпадает")
    if manifest.get("revision") != revision:
        return Text(
            f"it was made from revision {manifest.get('revision')}, the model is now at {revision}",
            f"она сделана из ревизии {manifest.get('revision')}, а модель теперь в ревизии {revision}",
        )
    try:
        size = path.stat().st_size
        if size != manifest.get("size"):
            return Text(
                f"its size is {size} bytes instead of {manifest.get('size')} (damaged or cut short)",
                f"её размер {size} байт вместо {manifest.get('size')} (повреждена или обрезана)",
            )
        with path.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                return Text("it is not a GGUF file (damaged header)", "это не файл GGUF (повреждён заголовок)")
        if sampled_digest(path) != manifest.get("sampled_sha256"):
            return Text("its contents changed (damaged)", "её содержимое изменилось (повреждена)")
        if full and file_sha256(path) != manifest.get("sha256"):
            return Text("its checksum does not match (damaged)", "её контрольная сумма не совпадает (повреждена)")
    except OSError as exc:
        return Text(f"it cannot be read ({exc})", f"её не удаётся прочитать ({exc})")
    return None


def sampled_digest(path: Path) -> str:
    """SHA-256 over the file's size, head, tail and evenly spaced chunks: catches truncation,
    overwritten headers and most damage without reading a gigabyte on every load."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(_HEAD_BYTES))
        if size > _HEAD_BYTES:
            span = size - _HEAD_BYTES
            for i in range(_CHUNKS + 1):
                fh.seek(_HEAD_BYTES + (span - _CHUNK_BYTES) * i // _CHUNKS if span > _CHUNK_BYTES else _HEAD_BYTES)
                h.update(fh.read(_CHUNK_BYTES))
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(8 << 20), b""):
            h.update(block)
    return h.hexdigest()


def invalidate(path: Path) -> None:
    """Forget a cached file (e.g. one that llama.cpp refused to load), so the next load converts again."""
    for p in (manifest_path(path), path):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def publish(tmp: Path, out: Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Move a complete file from `tmp` into the cache at `out`, with its manifest; return the manifest."""
    manifest = {
        "format": _MANIFEST_FORMAT,
        "converter_version": CONVERTER_VERSION,
        **fields,
        "size": tmp.stat().st_size,
        "sampled_sha256": sampled_digest(tmp),
        "sha256": file_sha256(tmp),
        **tensor_summary(tmp),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    # The old pair goes first, then the new manifest, then the new file: a crash in between
    # leaves a manifest without its file, which reads as missing, never a wrong file as fresh.
    mtmp = manifest_path(tmp)
    mtmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    invalidate(out)
    os.replace(mtmp, manifest_path(out))
    os.replace(tmp, out)
    return manifest


#: A temporary file untouched this long belongs to a conversion that died (killed, Ctrl+C during
#: start-up ends the process at once, power loss): a live one writes every few seconds. The rule
#: for files whose name holds no owner (made by older versions) and for an owner's pid taken again.
_STALE_PART_S = 15 * 60

#: The temporaries of the cache: `.<file>.<pid>-<id>.part` (a file being written), its manifest
#: `.json`, and `.input` (the quantizer's private link to the f16 file); <pid> is the process that
#: made them, older versions wrote `.<file>.<id>.part` without it.
_TEMPORARY = re.compile(r"^\.(?P<target>.+\.gguf)\.(?:(?P<pid>\d+)-)?[0-9a-f]{8}\.(?P<kind>part|json|input)$")


def temporary_path(out: Path, kind: str = "part") -> Path:
    """A name for a temporary beside `out` that only this process uses: two processes making the same
    file each write their own, and a later run knows by the pid whether its owner is still alive."""
    return out.with_name(f".{out.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.{kind}")


def remove_leftovers(folder: Path) -> None:
    """Delete what dead conversions and quantizations left in `folder` (a model's worth of disk each).

    A temporary goes when the process named in it is gone (killed with kill -9, a power loss), or,
    for one written by an older version or whose pid was taken again, when untouched for a while;
    the `.input` links share the f16 file's time, so only their owner's death counts for them.
    """
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    now = time.time()
    for leftover in entries:
        match = _TEMPORARY.match(leftover.name)
        if match is None:
            continue
        with contextlib.suppress(OSError):
            owner_dead = match["pid"] is not None and not pid_alive(int(match["pid"]))
            untouched = match["kind"] != "input" and now - leftover.stat().st_mtime > _STALE_PART_S
            if owner_dead or untouched:
                leftover.unlink()


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (a zombie counts as alive until it is reaped)."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000 | 0x00100000, False, pid)  # QUERY_LIMITED_INFORMATION | SYNCHRONIZE
        if not handle:
            return False
        try:
            return bool(kernel32.WaitForSingleObject(handle, 0) == 0x102)  # WAIT_TIMEOUT: still running
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


#: The errors of a disk with no room left: full, over the quota, or over the largest file it takes.
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def is_disk_full(exc: OSError, folder: Path, needed: int) -> bool:
    """Whether `exc`, met writing about `needed` bytes into `folder`, means the disk has no room.

    numpy's tofile (what the gguf writer writes tensors with) reports a short write as "N requested
    and M written" with no errno; on a file that happens only when the disk (or the quota, or the
    file size limit) has no room left. Another errno-less error counts as full when the disk lacks the room.
    """
    if exc.errno in _DISK_FULL:
        return True
    if exc.errno is not None:
        return False
    if _SHORT_WRITE.search(str(exc)):
        return True
    try:
        return shutil.disk_usage(folder).free < needed
    except OSError:
        return False


def write_failure(folder: Path, exc: OSError, needed: int, what: Text) -> GptDeskError:
    """The error for `exc`, met writing `what` (about `needed` bytes) into the cache folder `folder`:
    a full disk with the room it needs, or a folder that cannot be written."""
    if not is_disk_full(exc, folder, needed):
        return cache_unusable(folder, exc)
    try:
        free = short_size(shutil.disk_usage(folder).free)
    except OSError:
        free = "?"
    return DiskSpaceError(
        Text(
            f"The disk is full: cannot write {what.en} to {folder} ({exc}). It needs about "
            f"{short_size(needed)} and {free} is free there: free some disk space or point "
            "GPTDESK_CACHE_DIR to another disk.",
            f"Диск заполнен: не удаётся записать {what.ru} в {folder} ({exc}). Нужно около "
            f"{short_size(needed)}, а свободно {free}: освободите место на диске или укажите другой "
            "диск в GPTDESK_CACHE_DIR.",
        )
    )


def cache_unusable(folder: Path, exc: OSError) -> CacheFolderError:
    """A cache folder on a read-only disk, without permission, or that is a file: name it and the way out."""
    root = cache_dir()
    why = exc.strerror or type(exc).__name__
    return CacheFolderError(
        Text(
            f"The cache folder {folder} cannot be written ({why}), so the model cannot be converted for "
            f"llama.cpp. Point GPTDESK_CACHE_DIR at a writable folder (now: {root}), make it writable, or "
            "use --engine transformers, which needs no cache.",
            f"Папка кэша {folder} недоступна для записи ({why}), поэтому модель нельзя преобразовать для "
            f"llama.cpp. Укажите в GPTDESK_CACHE_DIR папку, куда можно писать (сейчас: {root}), разрешите "
            "запись или используйте --engine transformers, которому кэш не нужен.",
        ),
        str(folder),
    )


def cached_files(model_id: str, root: Path | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """The converted files of one model (by the id its manifests record), with their manifests, smallest type last."""
    found: list[tuple[Path, dict[str, Any]]] = []
    for path in iter_cached(root):
        try:
            manifest = json.loads(manifest_path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # no record, or a damaged one: the next load converts it again
        if isinstance(manifest, dict) and manifest.get("model_id") == model_id:
            found.append((path, manifest))
    order = {q: i for i, q in enumerate(QUANT_TYPES)}
    return sorted(found, key=lambda item: order.get(str(item[1].get("quant")), len(order)))


def iter_cached(root: Path | None = None) -> Iterator[Path]:
    """Every converted file in the cache (for listing and cleaning up)."""
    base = (root or cache_dir()) / "gguf"
    if base.is_dir():
        yield from sorted(base.glob("*/*.gguf"))
