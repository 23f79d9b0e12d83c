"""Room on the cache's disk: checked before a download starts, and named when the disk fills up while writing."""

from __future__ import annotations

import errno
import shutil
from collections.abc import Callable
from pathlib import Path

from gptdesk.errors import DiskSpaceError
from gptdesk.i18n import Text
from gptdesk.models.hub.plan import DownloadPlan, HubFile
from gptdesk.models.hub.progress import Size

#: Left free on the cache's disk after a download, so a model never fills the disk to the last byte.
RESERVE_BYTES = 100_000_000
FreeSpace = Callable[[Path], int]


def free_disk_space(path: Path) -> int:
    """Free bytes on the disk that holds `path` (or its nearest existing parent)."""
    probe = Path(path).resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return int(shutil.disk_usage(probe).free)


def check_disk_space(plan: DownloadPlan, free_space: FreeSpace | None = None) -> None:
    """Refuse a download that would not fit (with RESERVE_BYTES to spare), naming the sizes."""
    need = plan.missing_bytes()
    if need <= 0:
        return
    free = (free_space or free_disk_space)(plan.cache_dir)
    if free >= need + RESERVE_BYTES:
        return
    raise DiskSpaceError(
        Text(
            "Not enough disk space to download {name}: it needs {need} more in {dir} (and {reserve} is kept "
            "free), but only {free} is free there. Free at least {short}, or set HF_HUB_CACHE to a folder on "
            "a disk with more room.",
            "Не хватает места на диске, чтобы скачать {name}: нужно ещё {need:ru} в {dir} (и {reserve:ru} "
            "остаётся свободным), а свободно только {free:ru}. Освободите не меньше {short:ru} или укажите в "
            "HF_HUB_CACHE папку на диске, где места больше.",
        ).format(
            name=plan.repo_id,
            need=Size(need),
            reserve=Size(RESERVE_BYTES),
            free=Size(free),
            short=Size(need + RESERVE_BYTES - free),
            dir=plan.cache_dir,
        )
    )


#: The errors of a disk with no room left: full, over the quota, or over the largest file it takes.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def disk_full(plan: DownloadPlan, f: HubFile | None, exc: OSError) -> DiskSpaceError:
    """The disk filled up while writing (`f`, or the cache's own records): what is still needed, what is free."""
    need = max(0, plan.missing_bytes())
    try:
        free: int | None = free_disk_space(plan.cache_dir)
    except OSError:
        free = None
    short = max(need + RESERVE_BYTES - (free or 0), 0)
    what_en = f"{f.name} of {plan.repo_id}" if f is not None else plan.repo_id
    what_ru = f"{f.name} из {plan.repo_id}" if f is not None else plan.repo_id
    free_en = format(Size(free), "") if free is not None else "?"
    free_ru = format(Size(free), "ru") if free is not None else "?"
    # What to free: the shortfall when the disk says it (a quota or a file size limit can bind before it).
    room_en = f"free at least {Size(short)}" if short else "free some space"
    room_ru = f"освободите не меньше {Size(short):ru}" if short else "освободите место"
    return DiskSpaceError(
        Text(
            f"The disk is full: it filled up while downloading {what_en} into {plan.cache_dir} ({exc}). The "
            f"download still needs {Size(need)} (and {Size(RESERVE_BYTES)} is kept free), {free_en} is free. "
            f"What was downloaded is kept: {room_en}, or set HF_HUB_CACHE to a disk with more room, and run "
            "the download again to resume.",
            f"Диск заполнен: место кончилось во время загрузки {what_ru} в {plan.cache_dir} ({exc}). Загрузке "
            f"нужно ещё {Size(need):ru} (и {Size(RESERVE_BYTES):ru} остаётся свободным), свободно {free_ru}. "
            f"Скачанное сохранено: {room_ru} или укажите в HF_HUB_CACHE диск, где места больше, и запустите "
            "загрузку снова, она продолжится.",
        )
    )
