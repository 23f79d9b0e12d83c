"""The texts to tune on: read and checked, split into training and held-out parts, cut into sequences."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text

#: The share of the text, from its end, held out to measure the adapter (never trained on).
HELDOUT_SHARE = 0.05
#: Fewer held-out characters than this give a noisy figure; the held-out part grows to this much.
MIN_HELDOUT_CHARS = 2000


@dataclass(frozen=True)
class TuneTexts:
    """The user's texts, joined, with where the held-out part starts."""

    files: list[str]
    text: str
    split_at: int  # text[:split_at] trains, text[split_at:] is held out
    n_bytes: int

    @property
    def train_text(self) -> str:
        return self.text[: self.split_at]

    @property
    def heldout_text(self) -> str:
        return self.text[self.split_at :]

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def read_one(path: Path) -> str:
    """One text file as UTF-8, or a message naming the file and the fix (empty, binary, other encoding)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(
            Text(
                f"Cannot read {path}: {exc.strerror or exc}. Check the path and that the file is readable.",
                f"Не удаётся прочитать {path}: {exc.strerror or exc}. Проверьте путь и права на чтение.",
            )
        ) from exc
    if b"\x00" in data[:65536]:
        raise InvalidInputError(
            Text(
                f"{path} is a binary file (it holds NUL bytes), not text. Give plain text files (.txt); export "
                "a document to plain text (UTF-8) first.",
                f"{path} — двоичный файл (в нём есть нулевые байты), а не текст. Нужны простые текстовые файлы "
                "(.txt); сначала сохраните документ как простой текст (UTF-8).",
            )
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            Text(
                f"{path} is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r}). Save it as "
                f"UTF-8, e.g. `iconv -f cp1251 -t utf-8 {path} > {path.stem}.utf8.txt`, and give that file.",
                f"{path} — не текст в UTF-8 (байт {exc.start}: {data[exc.start : exc.start + 1]!r}). Сохраните "
                f"его в UTF-8, например `iconv -f cp1251 -t utf-8 {path} > {path.stem}.utf8.txt`, и укажите "
                "новый файл.",
            )
        ) from exc
    text = text.replace("\r\n", "\n")
    if not text.strip():
        raise InvalidInputError(
            Text(
                f"{path} is empty (or only whitespace): give a file with the text to learn from.",
                f"{path} пуст (или содержит одни пробелы): укажите файл с текстом для обучения.",
            )
        )
    return text


def default_name(first_file: str | Path) -> str:
    """An adapter's name from its first text file: the file's stem in the letters a name may hold."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(first_file).stem).strip("-._")
    return (stem or "adapter")[:64]


def read_texts(paths: Sequence[Path]) -> TuneTexts:
    """Every file read and checked, joined by blank lines; the last ~5% (at a line break) held out."""
    if not paths:
        raise InvalidInputError(
            Text("Give at least one text file to tune on.", "Укажите хотя бы один текстовый файл для обучения.")
        )
    parts = [read_one(Path(p)).strip("\n") for p in paths]
    text = "\n\n".join(parts) + "\n"
    want = max(int(len(text) * HELDOUT_SHARE), MIN_HELDOUT_CHARS)
    if want * 2 > len(text):
        raise InvalidInputError(
            Text(
                f"The texts are too short to tune on: {len(text):,} characters, but the held-out part alone needs "
                f"{MIN_HELDOUT_CHARS:,} and training several times more. Give at least {MIN_HELDOUT_CHARS * 10:,} "
                "characters (tens of kilobytes of text work best).",
                f"Тексты слишком коротки для обучения: {len(text):,} символов, а одной проверочной части нужно "
                f"{MIN_HELDOUT_CHARS:,}, обучению — в несколько раз больше. Дайте хотя бы "
                f"{MIN_HELDOUT_CHARS * 10:,} символов (лучше — десятки килобайт текста).",
            )
        )
    split = len(text) - want
    # Start the held-out part at a line break, so neither part ends in half a sentence when it can be helped.
    line_break = text.find("\n", split)
    if line_break != -1 and line_break < split + want // 4:
        split = line_break + 1
    return TuneTexts(
        files=[str(p) for p in paths],
        text=text,
        split_at=split,
        n_bytes=len(text.encode("utf-8")),
    )


def cut_sequences(ids: Sequence[int], seq_len: int, stride: int) -> list[list[int]]:
    """Windows of seq_len token ids every `stride` ids; the last window ends at the text's end."""
    if len(ids) < seq_len:
        return []
    starts = list(range(0, len(ids) - seq_len + 1, stride))
    if starts[-1] != len(ids) - seq_len:
        starts.append(len(ids) - seq_len)
    return [list(ids[s : s + seq_len]) for s in starts]


def training_sequences(texts: TuneTexts, tokenizer: Any, seq_len: int, stride: int) -> list[list[int]]:
    """The training part as token sequences, or a message when it is shorter than one sequence."""
    ids = [int(i) for i in tokenizer(texts.train_text, add_special_tokens=False)["input_ids"]]
    eos = tokenizer.eos_token_id
    if eos is not None:
        ids = [int(eos), *ids]
    sequences = cut_sequences(ids, seq_len, stride)
    if not sequences:
        raise InvalidInputError(
            Text(
                f"The training text is {len(ids):,} tokens long, shorter than one sequence of {seq_len} tokens. Give "
                "more text, or a shorter --seq-len.",
                f"Обучающий текст длиной {len(ids):,} токенов короче одной последовательности из {seq_len} "
                "токенов. Дайте больше текста или меньшее --seq-len.",
            )
        )
    return sequences
