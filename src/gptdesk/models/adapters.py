"""LoRA adapters kept in GPT Desk's cache: each a folder of peft files plus a manifest."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from gptdesk.errors import (
    AdapterMismatchError,
    AdapterNotFoundError,
    CacheFolderError,
    DamagedAdapterError,
    DiskSpaceError,
    InvalidInputError,
)
from gptdesk.i18n import Text
from gptdesk.models.gguf.cache import cache_dir

MANIFEST = "manifest.json"
#: peft's file names (PeftModel.save_pretrained).
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
#: The manifest's format; a newer one is refused with a message rather than misread.
FORMAT = 1

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def adapters_dir() -> Path:
    return cache_dir() / "adapters"


@dataclass(frozen=True)
class AdapterManifest:
    """What an adapter is and how it was made (written once, when tuning ends)."""

    name: str
    base_model: str  # the base model's id, as `gptdesk models` names it
    base_revision: str
    rank: int
    alpha: float
    target_modules: list[str]
    texts_digest: str  # sha256 of the texts as trained on (all files, joined)
    texts_chars: int
    texts_bytes: int
    texts_files: list[str]
    steps: int
    tokens_seen: int
    seconds: float
    heldout_bpc_before: float
    heldout_bpc_after: float
    created: str  # ISO 8601, UTC
    weights_digest: str = ""  # sha256 of adapter_model.safetensors, for history records
    format: int = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def improvement(self) -> float:
        """The held-out bits/char's relative drop (0.07: 7% lower after tuning)."""
        if self.heldout_bpc_before <= 0:
            return 0.0
        return 1.0 - self.heldout_bpc_after / self.heldout_bpc_before

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "improvement": self.improvement}


@dataclass(frozen=True)
class Adapter:
    """An adapter on disk: its folder and manifest."""

    path: Path
    manifest: AdapterManifest

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS

    @property
    def digest(self) -> str:
        return self.manifest.weights_digest


def check_name(name: str) -> str:
    """An adapter name usable as a folder name, or a message saying what to change."""
    if not _NAME.match(name):
        raise InvalidInputError(
            Text(
                f"Adapter name '{name}' cannot be used: use 1 to 64 letters, digits, '.', '_' or '-', starting "
                "with a letter or digit (e.g. 'chekhov-r8').",
                f"Имя адаптера «{name}» не подходит: нужны от 1 до 64 латинских букв, цифр, «.», «_» или «-», "
                "первой — буква или цифра (например, «chekhov-r8»).",
            )
        )
    return name


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _damaged(folder: Path, what: str, what_ru: str) -> DamagedAdapterError:
    return DamagedAdapterError(
        Text(
            f"Adapter '{folder.name}' in {folder} is damaged: {what}. Remove it with `gptdesk adapters rm "
            f"{folder.name}` and tune it again.",
            f"Адаптер «{folder.name}» в {folder} повреждён: {what_ru}. Удалите его (`gptdesk adapters rm "
            f"{folder.name}`) и обучите заново.",
        )
    )


def read_manifest(folder: Path) -> AdapterManifest:
    """The manifest of the adapter in `folder`; a damaged or missing file raises DamagedAdapterError."""
    path = folder / MANIFEST
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _damaged(folder, f"{MANIFEST} is missing", f"нет файла {MANIFEST}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(folder, f"{MANIFEST} cannot be read ({exc})", f"{MANIFEST} не читается ({exc})") from exc
    if not isinstance(raw, dict):
        raise _damaged(folder, f"{MANIFEST} is not a JSON object", f"{MANIFEST} — не объект JSON")
    if int(raw.get("format", 0)) > FORMAT:
        raise DamagedAdapterError(
            Text(
                f"Adapter '{folder.name}' was written by a newer GPT Desk (manifest format {raw.get('format')}, "
                f"this one reads {FORMAT}). Update GPT Desk.",
                f"Адаптер «{folder.name}» записан более новой версией GPT Desk (формат {raw.get('format')}, "
                f"эта читает {FORMAT}). Обновите GPT Desk.",
            )
        )
    known = {f.name for f in fields(AdapterManifest)}
    raw.pop("improvement", None)
    try:
        return AdapterManifest(**{k: v for k, v in raw.items() if k in known})
    except TypeError as exc:
        raise _damaged(folder, f"{MANIFEST} lacks fields ({exc})", f"в {MANIFEST} не хватает полей ({exc})") from exc


def load_adapter(name: str, *, verify: bool = True) -> Adapter:
    """The stored adapter `name`, its files checked (verify: the weights' digest too)."""
    folder = adapters_dir() / check_name(name)
    if not folder.is_dir():
        known = ", ".join(a.name for a in list_adapters()) or "none"
        raise AdapterNotFoundError(
            Text(
                f"No adapter named '{name}' (stored: {known}). See `gptdesk adapters ls`, or make one with "
                "`gptdesk tune FILE --name NAME`.",
                f"Адаптера «{name}» нет (есть: {known if known != 'none' else 'нет'}). См. `gptdesk adapters ls` "
                "или создайте его: `gptdesk tune ФАЙЛ --name ИМЯ`.",
            )
        )
    manifest = read_manifest(folder)
    for needed in (WEIGHTS, CONFIG):
        if not (folder / needed).is_file():
            raise _damaged(folder, f"{needed} is missing", f"нет файла {needed}")
    if verify and manifest.weights_digest and file_digest(folder / WEIGHTS) != manifest.weights_digest:
        raise _damaged(
            folder,
            f"{WEIGHTS} does not match the digest in {MANIFEST} (truncated or changed)",
            f"{WEIGHTS} не совпадает с контрольной суммой из {MANIFEST} (обрезан или изменён)",
        )
    return Adapter(folder, manifest)


def list_adapters() -> list[Adapter]:
    """Every readable stored adapter, by name (damaged ones are skipped; `show` names their fault)."""
    root = adapters_dir()
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(root.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        try:
            found.append(Adapter(folder, read_manifest(folder)))
        except DamagedAdapterError:
            continue
    return found


def adapters_for(model_id: str) -> list[Adapter]:
    """The stored adapters made for `model_id` (for the model manager)."""
    return [a for a in list_adapters() if a.manifest.base_model == model_id]


def remove_adapter(name: str) -> Path:
    folder = adapters_dir() / check_name(name)
    if not folder.is_dir():
        load_adapter(name)  # raises the not-found message with the list of names
    shutil.rmtree(folder)
    return folder


def check_base(adapter: Adapter, model_id: str, revision: str | None = None) -> None:
    """Refuse an adapter made for another base model, naming both."""
    m = adapter.manifest
    if m.base_model != model_id:
        raise AdapterMismatchError(
            Text(
                f"Adapter '{m.name}' was made for model '{m.base_model}', not for '{model_id}'. Use it with "
                f"--model {m.base_model}, or tune a new adapter on '{model_id}'.",
                f"Адаптер «{m.name}» обучен для модели «{m.base_model}», а не для «{model_id}». Используйте его "
                f"с --model {m.base_model} или обучите новый адаптер для «{model_id}».",
            )
        )
    if revision is not None and m.base_revision and revision != m.base_revision:
        raise AdapterMismatchError(
            Text(
                f"Adapter '{m.name}' was made for revision {m.base_revision} of '{model_id}', but the model on "
                f"this computer is revision {revision}. Tune the adapter again on this revision.",
                f"Адаптер «{m.name}» обучен для ревизии {m.base_revision} модели «{model_id}», а на этом "
                f"компьютере ревизия {revision}. Обучите адаптер заново на этой ревизии.",
            )
        )


def check_new(name: str, *, replace: bool = False) -> None:
    """Refuse a name already taken (unless replacing), before any work is done under it."""
    if (adapters_dir() / check_name(name)).exists() and not replace:
        raise InvalidInputError(
            Text(
                f"An adapter named '{name}' exists already: choose another --name, or remove it first with "
                f"`gptdesk adapters rm {name}`.",
                f"Адаптер «{name}» уже есть: выберите другое --name или сначала удалите его "
                f"(`gptdesk adapters rm {name}`).",
            )
        )


def install(staging: Path, manifest: AdapterManifest, *, replace: bool = False) -> Adapter:
    """Move a folder holding peft's files into the store under manifest.name, with its manifest.

    The folder is renamed into place only when complete, so a failure leaves no half adapter behind.
    """
    check_new(manifest.name, replace=replace)
    name = manifest.name
    root = adapters_dir()
    target = root / name
    for needed in (WEIGHTS, CONFIG):
        if not (staging / needed).is_file():
            raise _damaged(staging, f"{needed} was not written", f"файл {needed} не записан")
    digest = file_digest(staging / WEIGHTS)
    final = AdapterManifest(**{**asdict(manifest), "weights_digest": digest})
    try:
        root.mkdir(parents=True, exist_ok=True)
        (staging / MANIFEST).write_text(json.dumps(final.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        if staging.parent.resolve() == root.resolve():
            staging.rename(target)
        else:
            shutil.move(str(staging), str(target))
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            raise DiskSpaceError(
                Text(
                    f"The disk holding {root} is full: the adapter could not be saved. Free some space and "
                    "run again with --resume.",
                    f"Диск с {root} заполнен: адаптер не сохранён. Освободите место и повторите с --resume.",
                )
            ) from exc
        raise CacheFolderError(
            Text(
                f"Cannot write the adapter into {root}: {exc.strerror or exc}. Check that the folder is "
                "writable, or point GPTDESK_CACHE_DIR elsewhere.",
                f"Не удаётся записать адаптер в {root}: {exc.strerror or exc}. Проверьте права на папку "
                "или укажите другую через GPTDESK_CACHE_DIR.",
            ),
            str(root),
        ) from exc
    return Adapter(target, final)
