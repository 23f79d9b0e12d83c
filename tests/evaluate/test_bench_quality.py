"""The bench's quality column: the shipped held-out text, the --quality option, the joined table."""

from __future__ import annotations

import io

import pytest

from gptdesk.errors import InvalidInputError
from gptdesk.evaluate.bench_quality import QUALITY_TYPES, heldout_text, measure_type, parse_types, print_summary


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


def test_summary_puts_quality_beside_speed_and_checks_the_targets() -> None:
    def row(key: str, tps: float, x: float) -> dict[str, object]:
        return {"key": key, "tokens_per_second": tps, "speedup_vs_fp32": x, "peak_rss_bytes": 10**9}

    report = {
        "shapes": {"large": {"rows": [row("fp32", 5.0, 1.0), row("q8_0", 27.0, 5.4), row("q4_K_M", 42.0, 8.4)]}},
        "quality": {
            "rows": [
                {"type": "f32", "bits_per_char": 1.6, "vs_f32_percent": 0.0, "file_bytes": 0},
                {"type": "q8_0", "bits_per_char": 1.6002, "vs_f32_percent": 0.0125, "file_bytes": 22_000_000},
                {"type": "q4_K_M", "bits_per_char": 1.62, "vs_f32_percent": 1.25, "file_bytes": 18_000_000},
                {"type": "q4_0", "bits_per_char": 1.61, "vs_f32_percent": 0.625, "file_bytes": 16_000_000},
            ]
        },
    }
    out = io.StringIO()
    print_summary(report, out)
    lines = out.getvalue().splitlines()
    q4k = next(line for line in lines if line.startswith("q4_K_M"))
    assert "1.6200" in q4k and "+1.2%" in q4k and "42.0" in q4k and "8.4×" in q4k
    assert any(line.startswith("q8_0") and "27.0" in line for line in lines)
    assert "target q8_0 within 1% of f32: met" in out.getvalue()
    # Within 5% but worse than q4_0: the target is missed, and the line says so.
    assert "better than q4_0: MISSED" in out.getvalue()
    assert "at least 8× fp32 on the large shape: met (8.4×)" in out.getvalue()


def test_one_type_is_measured_on_the_shipped_text() -> None:
    row = measure_type("q8_0", threads=2)
    assert row["engine"] == "llama.cpp q8_0"
    assert row["characters"] == len(heldout_text())
    assert 1.2 < row["bits_per_char"] < 2.2
    assert row["file_bytes"] > 10_000_000
