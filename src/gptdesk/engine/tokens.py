"""Byte-exact, readable token pieces and incremental decoding (loading: models/tokenizer.py)."""

from __future__ import annotations

import codecs
from functools import lru_cache
from typing import Any

from gptdesk.engine.base import TokenPiece


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
