"""An adapter merged into its base model's weights: a model folder of its own, and its GGUF for full speed."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gptdesk.engine.hf import apply_lora
from gptdesk.errors import CacheFolderError, DiskSpaceError
from gptdesk.i18n import ProgressCallback, Text
from gptdesk.models.adapters import check_base, load_adapter
from gptdesk.models.gguf.convert import ensure_gguf
from gptdesk.models.locate import resolve

MERGED = "merged"
#: The tokenizer and config files a model folder carries beside its weights.
_COPIED = ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class MergedAdapter:
    name: str
    folder: Path  # a complete GPT-2 model folder: `--model FOLDER` on every engine
    gguf: Path  # its llama.cpp file in the given quantization


def merge_adapter(name: str, quant: str, *, progress: ProgressCallback | None = None) -> MergedAdapter:
    """Merge adapter `name` into its base model's weights (once), and convert the result to `quant`."""
    adapter = load_adapter(name)
    base = resolve(adapter.manifest.base_model)
    check_base(adapter, base.model_id, base.revision)
    folder = adapter.path / MERGED
    stamp = folder / "gptdesk-merged-from.txt"
    if not (stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == adapter.digest):
        if progress is not None:
            progress(Text("Merging the adapter into the weights", "Слияние адаптера с весами"), None)
        _write_merged(adapter.path, base.path, folder, adapter.digest)
    merged = resolve(str(folder))
    converted = ensure_gguf(merged, quant, progress=progress)
    return MergedAdapter(name, folder, converted.path)


def _write_merged(adapter_folder: Path, base_folder: Path, folder: Path, digest: str) -> None:
    import torch
    from transformers import GPT2LMHeadModel

    staging = folder.with_name(folder.name + ".part")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        model = GPT2LMHeadModel.from_pretrained(base_folder, dtype=torch.float32)
        merged = apply_lora(model, adapter_folder)
        merged.save_pretrained(staging)
        for name in _COPIED:
            if (base_folder / name).is_file():
                shutil.copy2(base_folder / name, staging / name)
        (staging / "gptdesk-merged-from.txt").write_text(digest + "\n", encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if exc.errno == 28:  # ENOSPC
            raise DiskSpaceError(
                Text(
                    f"The disk holding {folder.parent} is full: the merged model could not be written. Free "
                    "some space (the merged model is as large as its base) and run again.",
                    f"Диск с {folder.parent} заполнен: объединённая модель не записана. Освободите место "
                    "(она занимает столько же, сколько базовая) и повторите.",
                )
            ) from exc
        raise CacheFolderError(
            Text(
                f"Cannot write the merged model into {folder}: {exc.strerror or exc}. Check that the folder is "
                "writable, or point GPTDESK_CACHE_DIR elsewhere.",
                f"Не удаётся записать объединённую модель в {folder}: {exc.strerror or exc}. Проверьте права "
                "на папку или укажите другую через GPTDESK_CACHE_DIR.",
            ),
            str(folder),
        ) from exc
