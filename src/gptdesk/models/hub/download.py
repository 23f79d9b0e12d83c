"""Hub downloads into the Hugging Face cache: pull and fetch a plan; the snapshot registered once all is whole."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from gptdesk.i18n import Text
from gptdesk.models.hub.disk import FreeSpace, check_disk_space, disk_full, is_disk_full
from gptdesk.models.hub.errors import offline_mode_error
from gptdesk.models.hub.integrity import file_matches
from gptdesk.models.hub.plan import COMMIT_HASH, DownloadPlan, HubFile, plan
from gptdesk.models.hub.progress import Meter, ProgressFn
from gptdesk.models.hub.settings import HubSettings, RetryPolicy
from gptdesk.models.hub.transfer import download_file, file_lock, raise_if_cancelled


def pull(
    name: str,
    *,
    hub: HubSettings | None = None,
    revision: str = "main",
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    free_space: FreeSpace | None = None,
    retry: RetryPolicy | None = None,
    verify_existing: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> Path:
    """Download a model's files into the Hugging Face cache and return its snapshot folder.

    Files already in the cache are checked against the hub's checksums (and fetched again when they
    do not match); a partial file left by an interrupted run is resumed with an HTTP Range request.
    The snapshot and refs/<revision> are written only once every file is complete and verified, so
    a cancelled or failed download never looks like a usable model.
    """
    the_plan = plan(name, hub=hub, revision=revision, retry=retry)
    return fetch(
        the_plan,
        hub=hub,
        progress=progress,
        cancel=cancel,
        free_space=free_space,
        retry=retry,
        verify_existing=verify_existing,
        clock=clock,
    )


def fetch(
    the_plan: DownloadPlan,
    *,
    hub: HubSettings | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    free_space: FreeSpace | None = None,
    retry: RetryPolicy | None = None,
    verify_existing: bool = True,
    clock: Callable[[], float] = time.monotonic,
) -> Path:
    """Carry out a plan made by plan(): see pull()."""
    hub = hub or HubSettings()
    cancel = cancel or threading.Event()
    retry = retry or RetryPolicy()
    check_disk_space(the_plan, free_space)
    meter = Meter(the_plan, progress, clock)
    try:
        (the_plan.repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
        _tag_cache(the_plan.cache_dir)
        try:
            _fetch_files(the_plan, hub, meter, cancel, retry, verify_existing)
        except KeyboardInterrupt:
            # Ctrl+C in a terminal arrives here at once, even inside a read that a stalled server keeps
            # waiting: the same clean stop as Cancel (the partial file stays for the next run).
            cancel.set()
            raise_if_cancelled(cancel, the_plan)
            raise
        _register(the_plan)
    except OSError as exc:
        # The folders, locks and snapshot links need room too: a full disk is named as such there as well.
        if is_disk_full(exc):
            raise disk_full(the_plan, None, exc) from exc
        raise
    meter.emit(force=True, phase="done", done_bytes=the_plan.total_bytes, file_done=0, note=None)
    return the_plan.snapshot_dir


def _fetch_files(
    the_plan: DownloadPlan,
    hub: HubSettings,
    meter: Meter,
    cancel: threading.Event,
    retry: RetryPolicy,
    verify_existing: bool,
) -> None:
    from huggingface_hub.errors import OfflineModeIsEnabled

    for index, f in enumerate(the_plan.files, start=1):
        raise_if_cancelled(cancel, the_plan)
        meter.at(0, force=True, phase="check", filename=f.name, file_index=index, file_total=f.size, note=None)
        with file_lock(the_plan, f, cancel, meter):
            blob = the_plan.blob_path(f)
            if blob.is_file():
                if not verify_existing or _verify(f, blob, meter):
                    meter.completed += f.size
                    meter.at(0, force=True)
                    continue
                # A damaged copy: drop it (its snapshot link is remade below) and fetch it again.
                blob.unlink()
                meter.at(
                    0,
                    force=True,
                    phase="retry",
                    note=Text(
                        "the copy in the cache is damaged (checksum mismatch); downloading it again",
                        "копия в кэше повреждена (контрольная сумма не совпала); скачиваю заново",
                    ),
                )
            try:
                download_file(the_plan, f, hub, meter, cancel, retry)
            except OfflineModeIsEnabled as exc:
                raise offline_mode_error(the_plan.name) from exc
        meter.completed += f.size
        meter.at(0, force=True)


def _verify(f: HubFile, path: Path, meter: Meter) -> bool:
    meter.at(0, force=True, phase="verify")
    return file_matches(path, f, lambda n: meter.at(n, phase="verify"))


# -- the cache ---------------------------------------------------------------------------------------


def _register(the_plan: DownloadPlan) -> None:
    """Make the snapshot (links to the blobs) and only then point refs/<revision> at it."""
    snap = the_plan.snapshot_dir
    snap.mkdir(parents=True, exist_ok=True)
    for f in the_plan.files:
        blob = the_plan.blob_path(f)
        pointer = snap / f.name
        pointer.parent.mkdir(parents=True, exist_ok=True)
        if pointer.is_symlink() and pointer.resolve() == blob.resolve() and pointer.exists():
            continue
        if pointer.exists() or pointer.is_symlink():
            pointer.unlink()
        try:
            os.symlink(os.path.relpath(blob, pointer.parent), pointer)
        except OSError:  # no symlinks (Windows without developer mode): a copy, as huggingface_hub does
            shutil.copy2(blob, pointer)
    if not COMMIT_HASH.match(the_plan.revision):
        refs = the_plan.repo_dir / "refs" / the_plan.revision
        refs.parent.mkdir(parents=True, exist_ok=True)
        tmp = refs.with_name(refs.name + f".{os.getpid()}.tmp")
        tmp.write_text(the_plan.commit)
        os.replace(tmp, refs)


def _tag_cache(cache_dir: Path) -> None:
    """Mark the cache for backup tools to skip, as huggingface_hub does (CACHEDIR.TAG)."""
    tag = cache_dir / "CACHEDIR.TAG"
    if not tag.exists():
        with suppress(OSError):
            tag.write_text(
                "Signature: 8a477f597d28d172789f06886806bc55\n"
                "# This file is a cache directory tag created by huggingface_hub / GPT Desk.\n"
            )
