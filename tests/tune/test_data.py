"""The texts a tuning run reads: checks with their fixes, the held-out split, sequences cut with a stride."""

from __future__ import annotations

from pathlib import Path

import pytest

from gptdesk.errors import InvalidInputError
from gptdesk.tune.data import HELDOUT_SHARE, cut_sequences, read_texts

PROSE = "Он вышел на улицу и долго смотрел на небо.\n" * 1000  # 43,000 characters


def test_the_last_five_percent_is_held_out_at_a_line_break(tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(PROSE, encoding="utf-8")
    b.write_text("Вторая часть.\n" * 500, encoding="utf-8")
    texts = read_texts([a, b])
    assert texts.text == texts.train_text + texts.heldout_text
    share = len(texts.heldout_text) / len(texts.text)
    assert HELDOUT_SHARE * 0.75 <= share <= HELDOUT_SHARE
    assert texts.train_text.endswith("\n")
    assert texts.heldout_text.startswith("Вторая часть.")
    assert texts.n_bytes == len(texts.text.encode("utf-8"))
    assert texts.digest == read_texts([a, b]).digest
    assert texts.digest != read_texts([b, a]).digest


def test_a_non_utf8_file_is_named_with_the_iconv_fix(tmp_path: Path) -> None:
    bad = tmp_path / "cp1251.txt"
    bad.write_bytes(PROSE.encode("cp1251"))
    with pytest.raises(InvalidInputError) as info:
        read_texts([bad])
    assert str(bad) in str(info.value)
    assert "iconv -f cp1251 -t utf-8" in str(info.value)


def test_binary_and_empty_files_are_refused_by_name(tmp_path: Path) -> None:
    binary = tmp_path / "doc.bin"
    binary.write_bytes(b"PK\x03\x04\x00\x00" + bytes(range(256)))
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="binary file"):
        read_texts([binary])
    with pytest.raises(InvalidInputError, match="empty"):
        read_texts([empty])
    with pytest.raises(InvalidInputError, match="Cannot read"):
        read_texts([tmp_path / "missing.txt"])


def test_a_text_too_short_to_hold_out_is_refused_with_the_size_needed(tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("Коротко.\n" * 100, encoding="utf-8")
    with pytest.raises(InvalidInputError, match="too short to tune on: 900 characters"):
        read_texts([short])


def test_sequences_move_by_the_stride_and_the_last_ends_at_the_end() -> None:
    ids = list(range(10))
    assert cut_sequences(ids, 4, 3) == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert cut_sequences(ids, 4, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]
    assert cut_sequences(ids, 11, 2) == []
