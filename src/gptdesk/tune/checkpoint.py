"""A tuning run's checkpoint: the adapter, the optimizer and where the run stood, replaced atomically."""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptdesk.errors import CacheFolderError, DiskSpaceError, InvalidInputError
from gptdesk.i18n import Text
from gptdesk.models.adapters import adapters_dir, check_name

STATE = "state.pt"
META = "checkpoint.json"


def checkpoint_dir(name: str) -> Path:
    """Where the run for adapter `name` keeps its checkpoint (a dot folder: `adapters ls` skips it)."""
    return adapters_dir() / ".checkpoints" / check_name(name)


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint belongs to, checked on --resume."""

    name: str
    base_model: str
    base_revision: str
    texts_digest: str
    step: int
    options: dict[str, Any]


def save(folder: Path, model: Any, state: dict[str, Any], meta: CheckpointMeta) -> None:
    """Write a new checkpoint beside the old one, then swap: a failure (a full disk) leaves the old one whole."""
    import torch

    staging = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    try:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        model.save_pretrained(str(staging))
        torch.save(state, staging / STATE)
        (staging / META).write_text(json.dumps(meta.__dict__, ensure_ascii=False, indent=2), encoding="utf-8")
        old = folder.with_name(folder.name + ".old")
        if folder.exists():
            if old.exists():
                shutil.rmtree(old)
            folder.rename(old)
        staging.rename(folder)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        old = folder.with_name(folder.name + ".old")
        if not folder.exists() and old.exists():
            old.rename(folder)  # the swap failed half way: put the previous checkpoint back
        kept = load_meta(folder)
        left = (
            Text(
                f" The previous checkpoint (step {kept.step}) is still there: free space and run again with --resume.",
                f" Предыдущая контрольная точка (шаг {kept.step}) цела: освободите место и повторите с --resume.",
            )
            if kept is not None
            else Text(" No earlier checkpoint exists.", " Более ранней контрольной точки нет.")
        )
        if exc.errno == errno.ENOSPC:
            raise DiskSpaceError(
                Text(
                    f"The disk is full: the checkpoint of step {meta.step} could not be written to {folder.parent}.",
                    f"Диск заполнен: контрольная точка шага {meta.step} не записана в {folder.parent}.",
                )
                + left
            ) from exc
        raise CacheFolderError(
            Text(
                f"Cannot write the checkpoint to {folder.parent}: {exc.strerror or exc}.",
                f"Не удаётся записать контрольную точку в {folder.parent}: {exc.strerror or exc}.",
            )
            + left,
            str(folder.parent),
        ) from exc


def load_meta(folder: Path) -> CheckpointMeta | None:
    try:
        raw = json.loads((folder / META).read_text(encoding="utf-8"))
        return CheckpointMeta(**raw)
    except (OSError, ValueError, TypeError):
        return None


def load(folder: Path, *, base_model: str, texts_digest: str) -> tuple[CheckpointMeta, dict[str, Any]]:
    """The checkpoint in `folder`, refused when it belongs to another model or other texts."""
    import torch

    meta = load_meta(folder)
    if meta is None or not (folder / STATE).is_file():
        raise InvalidInputError(
            Text(
                f"There is no checkpoint to resume in {folder}. Run without --resume to start afresh.",
                f"В {folder} нет контрольной точки для продолжения. Запустите без --resume, чтобы начать заново.",
            )
        )
    if meta.base_model != base_model:
        raise InvalidInputError(
            Text(
                f"The checkpoint of '{meta.name}' was tuning model '{meta.base_model}', not '{base_model}'. Resume "
                f"with --model {meta.base_model}, or start afresh without --resume.",
                f"Контрольная точка «{meta.name}» обучала модель «{meta.base_model}», а не «{base_model}». "
                f"Продолжите с --model {meta.base_model} или начните заново без --resume.",
            )
        )
    if meta.texts_digest != texts_digest:
        raise InvalidInputError(
            Text(
                f"The checkpoint of '{meta.name}' was made on other texts (or the files changed since). Give the "
                "same files in the same order, or start afresh without --resume.",
                f"Контрольная точка «{meta.name}» сделана на других текстах (или файлы изменились). Укажите те "
                "же файлы в том же порядке или начните заново без --resume.",
            )
        )
    try:
        state = torch.load(folder / STATE, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises RuntimeError, pickle errors, EOFError on a truncated file
        raise InvalidInputError(
            Text(
                f"The checkpoint in {folder} is damaged ({exc}). Start afresh without --resume.",
                f"Контрольная точка в {folder} повреждена ({exc}). Начните заново без --resume.",
            )
        ) from exc
    return meta, state


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
