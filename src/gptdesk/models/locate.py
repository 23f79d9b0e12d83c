"""Where a model lives: the embedded folder, a local folder, or the Hugging Face cache."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptdesk.errors import ModelCorruptError, ModelNotDownloadedError, ModelNotFoundError, UnsupportedModelError
from gptdesk.i18n import Text
from gptdesk.models.catalog import EMBEDDED_ID, CatalogEntry, find_entry

EMBEDDED_PATH = Path(__file__).resolve().parent / "embedded"
#: Files a GPT-2 model needs; safetensors preferred, pytorch_model.bin only when there is none.
NEEDED_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)
#: Architectures the reference engine runs: GPT-2 and nothing else (ruGPT-3 is a GPT-2).
SUPPORTED_MODEL_TYPES = ("gpt2",)


@dataclass(frozen=True)
class ResolvedModel:
    """A model found on disk."""

    model_id: str  # the name to show and record
    path: Path
    revision: str
    entry: CatalogEntry | None = None


def hub_candidates(name: str) -> list[str]:
    """Hub ids to try for a name: the catalog id and its aliases (sberbank-ai/ and ai-forever/)."""
    entry = find_entry(name)
    if entry is not None and entry.id != EMBEDDED_ID:
        return list(dict.fromkeys((entry.id, *entry.aliases)))
    return [name]


def hub_cache_dir() -> Path:
    """The standard Hugging Face cache, read from the environment now (not at import time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def hub_endpoint() -> str | None:
    """HF_ENDPOINT (a mirror) as set now; None means huggingface_hub's default."""
    return os.environ.get("HF_ENDPOINT") or None


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def local_snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of a hub model, if its config is in the local cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=hub_cache_dir())
    except ValueError:  # not a valid repo id (HFValidationError), so not in the cache either
        return None
    if isinstance(found, str):
        return Path(found).parent
    return None


def find_local(name: str) -> Path | None:
    """A local copy of a catalog model or hub id under any of its names, or None."""
    entry = find_entry(name)
    if entry is not None and entry.id == EMBEDDED_ID:
        return EMBEDDED_PATH if (EMBEDDED_PATH / "config.json").exists() else None
    try:
        for candidate in hub_candidates(name):
            snap = local_snapshot(candidate)
            if snap is not None:
                return snap
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise _name_too_long(name) from exc
        raise
    return None


def _name_too_long(text: str) -> ModelNotFoundError:
    """A model name or path longer than the system takes for a file name: no model can be called that."""
    shown = text if len(text) <= 60 else text[:57] + "…"
    return ModelNotFoundError(
        Text(
            f"The model name '{shown}' is {len(text):,} characters long, more than this system allows in a file "
            "name or path, so no model can be called that. Name a catalog model (see `gptdesk models`), a hub "
            "id (owner/name) or a model folder.",
            f"Имя модели «{shown}» длиной {len(text)} символов больше, чем система допускает для имени файла "
            "или пути, поэтому такой модели быть не может. Укажите модель из каталога (см. `gptdesk models`), "
            "id на хабе (владелец/имя) или папку модели.",
        )
    )


def folder_digest(folder: Path) -> str:
    """A short digest of a local folder's files (names, sizes, times): its 'revision'."""
    h = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            st = path.stat()
            h.update(f"{path.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return "local-" + h.hexdigest()[:12]


def embedded_revision() -> str:
    """The embedded model's revision: the digest of its weights file."""
    weights = EMBEDDED_PATH / "model.safetensors"
    h = hashlib.sha256()
    with weights.open("rb") as fh:
        h.update(fh.read(1 << 20))  # the header and first MiB identify the training run
    h.update(str(weights.stat().st_size).encode())
    return "embedded-" + h.hexdigest()[:12]


def resolve(name: str | os.PathLike[str] | None) -> ResolvedModel:
    """Find a model on this computer by catalog name, hub id or folder (models.obtain also downloads)."""
    if name is None or str(name).strip() == "" or str(name).strip().lower() in (EMBEDDED_ID, "ruslit-tiny", "builtin"):
        if not (EMBEDDED_PATH / "config.json").exists():
            raise ModelNotFoundError(
                Text(
                    f"The embedded model is missing from {EMBEDDED_PATH}. Reinstall GPT Desk, or run "
                    "tools/train_embedded.py to rebuild it.",
                    f"Встроенная модель отсутствует в {EMBEDDED_PATH}. Переустановите GPT Desk или "
                    "пересоберите её через tools/train_embedded.py.",
                )
            )
        return ResolvedModel(EMBEDDED_ID, EMBEDDED_PATH, embedded_revision(), find_entry(EMBEDDED_ID))
    text = str(name).strip()
    path = Path(text).expanduser()
    try:
        is_dir = path.is_dir()
        looks_like_path = path.is_absolute() or text.startswith((".", "~")) or (os.sep in text and path.exists())
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise _name_too_long(text) from exc
        raise
    if is_dir or looks_like_path:
        if not is_dir:
            raise ModelNotFoundError(
                Text(
                    f"Model folder {path} does not exist. Check the path, or name a catalog model "
                    "(see `gptdesk models`).",
                    f"Папки модели {path} не существует. Проверьте путь или укажите модель из "
                    "каталога (см. `gptdesk models`).",
                )
            )
        check_folder(path)
        return ResolvedModel(str(path), path.resolve(), folder_digest(path), None)
    entry = find_entry(text)
    snap = find_local(text)
    if snap is not None:
        check_folder(snap)
        return ResolvedModel(entry.id if entry else text, snap, snap.name, entry)
    raise ModelNotDownloadedError(
        Text(
            f"Model '{text}' is not on this computer. Download it with `gptdesk models pull {text}` "
            "or open a local folder.",
            f"Модели «{text}» нет на этом компьютере. Скачайте её: `gptdesk models pull {text}` "
            "или откройте локальную папку.",
        )
    )


def read_config(folder: Path) -> dict[str, Any]:
    """config.json of a model folder, checked to be a readable GPT-2 config."""
    path = folder / "config.json"
    if not path.exists():
        raise ModelCorruptError(
            Text(
                f"{folder} is not a model folder: it has no config.json. Point to the folder that "
                "holds config.json and the weights.",
                f"{folder} — не папка модели: в ней нет config.json. Укажите папку, где лежат config.json и веса.",
            )
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise ModelCorruptError(
            Text(
                f"{path} is damaged ({exc}). Download or copy the model again.",
                f"Файл {path} повреждён ({exc}). Скачайте или скопируйте модель заново.",
            )
        ) from exc
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedModelError(
            Text(
                f"The model in {folder} is a '{model_type}', not a GPT-2-family model. GPT Desk runs "
                "GPT-2 models (ruGPT-3, GPT-2 and their fine-tunes); choose one of those.",
                f"Модель в {folder} — это «{model_type}», а не модель семейства GPT-2. GPT Desk "
                "работает с моделями GPT-2 (ruGPT-3, GPT-2 и их дообучения); выберите такую.",
            )
        )
    return config


def weight_files(folder: Path) -> list[Path]:
    safetensors = sorted(folder.glob("*.safetensors"))
    return safetensors or sorted(folder.glob("pytorch_model*.bin"))


def check_folder(folder: Path) -> None:
    """Fail early, with a clear message, on a folder that cannot be a GPT-2 model."""
    read_config(folder)
    if not weight_files(folder):
        raise ModelCorruptError(
            Text(
                f"{folder} has a config.json but no weights (*.safetensors or pytorch_model.bin). "
                "Copy the weights into it or download the model again.",
                f"В {folder} есть config.json, но нет весов (*.safetensors или pytorch_model.bin). "
                "Скопируйте веса или скачайте модель заново.",
            )
        )
