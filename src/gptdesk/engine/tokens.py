"""Tokenizer loading and byte-exact, readable token pieces for byte-level BPE models."""

from __future__ import annotations

import codecs
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from gptdesk.engine.base import TokenPiece
from gptdesk.errors import ModelCorruptError
from gptdesk.i18n import Text

_SPECIALS = ("bos_token", "eos_token", "pad_token", "unk_token", "mask_token")


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes_to_unicode: byte-level symbol -> byte value."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    symbols = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            symbols.append(256 + n)
            n += 1
    return {chr(s): b for b, s in zip(printable, symbols, strict=True)}


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


def _special_ids(tokenizer: Any) -> frozenset[int]:
    """The special token ids, computed once per tokenizer (the property rebuilds a list each call)."""
    cached: frozenset[int] | None = getattr(tokenizer, "_gptdesk_special_ids", None)
    if cached is None:
        cached = frozenset(int(i) for i in tokenizer.all_special_ids)
        tokenizer._gptdesk_special_ids = cached
    return cached


def token_bytes(tokenizer: Any, token_id: int) -> bytes:
    """The exact bytes a token stands for ('' for special tokens)."""
    if token_id in _special_ids(tokenizer):
        return b""
    symbol = tokenizer.convert_ids_to_tokens(token_id)
    if symbol is None:
        return b""
    decoder = _byte_decoder()
    try:
        return bytes(decoder[ch] for ch in symbol)
    except KeyError:  # not a byte-level vocabulary: fall back to the tokenizer's own decoding
        return str(tokenizer.decode([token_id])).encode("utf-8")


def piece_text(tokenizer: Any, token_id: int) -> str:
    """A token as readable text: Cyrillic stays Cyrillic; a partial UTF-8 byte shows as <0xD0>."""
    pieces: dict[int, str] | None = getattr(tokenizer, "_gptdesk_pieces", None)
    if pieces is None:
        pieces = tokenizer._gptdesk_pieces = {}
    found = pieces.get(token_id)
    if found is not None:
        return found
    if token_id in _special_ids(tokenizer):
        text = str(tokenizer.convert_ids_to_tokens(token_id))
    else:
        raw = token_bytes(tokenizer, token_id)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = _mixed(raw)
    pieces[token_id] = text
    return text


def _mixed(raw: bytes) -> str:
    """Decode what is valid UTF-8 and show the stray bytes of a split character in hex."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        for j in range(min(len(raw), i + 4), i, -1):
            try:
                out.append(raw[i:j].decode("utf-8"))
                i = j
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append(f"<0x{raw[i]:02X}>")
            i += 1
    return "".join(out)


def tokenize(tokenizer: Any, text: str) -> list[TokenPiece]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [TokenPiece(int(i), piece_text(tokenizer, int(i))) for i in ids]


class IncrementalDecoder:
    """Turns token ids into text as they come, never splitting a UTF-8 character."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        return str(self._utf8.decode(token_bytes(self._tokenizer, token_id)))

    def flush(self) -> str:
        return str(self._utf8.decode(b"", final=True))


def decode(tokenizer: Any, ids: list[int]) -> str:
    dec = IncrementalDecoder(tokenizer)
    return "".join(dec.push(i) for i in ids) + dec.flush()
