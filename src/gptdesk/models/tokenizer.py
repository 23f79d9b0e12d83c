"""Loading a GPT-2-family model folder's tokenizer: tokenizer.json, or vocab.json + merges.txt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gptdesk.errors import ModelCorruptError
from gptdesk.i18n import Text

_SPECIALS = ("bos_token", "eos_token", "pad_token", "unk_token", "mask_token")


def load_tokenizer(folder: Path) -> Any:
    """A fast tokenizer for a GPT-2-family folder: tokenizer.json, or vocab.json + merges.txt.

    ruGPT-3's hub folders carry only vocab.json and merges.txt; with transformers 5 those are
    built through the `tokenizers` library and wrapped, since GPT2TokenizerFast(vocab_file=...)
    came out with an empty vocabulary (see ../shared/data/README.md).
    """
    from tokenizers import ByteLevelBPETokenizer, Tokenizer
    from transformers import PreTrainedTokenizerFast

    specials = _special_tokens(folder)
    try:
        if (folder / "tokenizer.json").exists():
            backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
        elif (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
            backend = ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
        else:
            raise ModelCorruptError(
                Text(
                    f"The model folder {folder} has no tokenizer (tokenizer.json, or vocab.json and "
                    "merges.txt). Copy the tokenizer files from the model's source into it.",
                    f"В папке модели {folder} нет токенизатора (tokenizer.json или vocab.json и "
                    "merges.txt). Скопируйте файлы токенизатора из источника модели.",
                )
            )
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **specials)
    except ModelCorruptError:
        raise
    except Exception as exc:  # the tokenizers library raises plain Exceptions on bad JSON
        raise ModelCorruptError(
            Text(
                f"The tokenizer in {folder} cannot be read ({exc}). The files may be damaged: "
                "download or copy the model again.",
                f"Токенизатор в {folder} не читается ({exc}). Файлы, возможно, повреждены: "
                "скачайте или скопируйте модель заново.",
            )
        ) from exc
    return tokenizer


def _special_tokens(folder: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = folder / name
        if not path.exists():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for key in _SPECIALS:
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str) and key not in found:
                found[key] = value
    return found
