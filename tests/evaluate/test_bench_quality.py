"""The bench's quality column: the shipped held-out text, the --quality option, the joined table."""

from __future__ import annotations

import pytest

from gptdesk.errors import InvalidInputError
from gptdesk.evaluate.bench_quality import QUALITY_TYPES, heldout_text, measure_type, parse_types


def test_the_held_out_text_ships_with_the_package() -> None:
    text = heldout_text()
    assert len(text) == 11_116
    # The openings of three held-out works (tools/prepare_corpus.py HELDOUT), in order.
    assert text.startswith("Александр Пушкин\nПИКОВАЯ ДАМА")
    assert "Дама с собачкой\nГоворили, что на набережной появилось новое лицо" in text
    assert "Николай Васильевич Гоголь\nНос" in text


def test_quality_option_takes_types_or_none() -> None:
    assert parse_types("none") == []
    assert parse_types("f32, q4_K_M") == ["f32", "q4_K_M"]
    assert parse_types(",".join(QUALITY_TYPES)) == list(QUALITY_TYPES)
    with pytest.raises(InvalidInputError) as err:
        parse_types("q8_0,q3_k")
    assert "q3_k" in err.value.text.en and "q4_K_M" in err.value.text.ru


def test_one_type_is_measured_on_the_shipped_text() -> None:
    row = measure_type("q8_0", threads=2)
    assert row["engine"] == "llama.cpp q8_0"
    assert row["characters"] == len(heldout_text())
    assert 1.2 < row["bits_per_char"] < 2.2
    assert row["file_bytes"] > 10_000_000
