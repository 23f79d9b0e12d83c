"""The measurement store the model manager reads: a real JSON file in the cache folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gptdesk.models import measured
from gptdesk.models.measured import QualityEntry, SpeedEntry


def _speed(when: str, type_: str, tps: float, n_embd: int = 1536) -> SpeedEntry:
    return SpeedEntry(
        when, "ai-forever/rugpt3large_based_on_gpt2", 24, n_embd, 50257, type_, "llamacpp", tps, None, 1, 2
    )


def _quality(
    when: str, model: str, type_: str, bpc: float, text: str = "mine.txt", complete: bool = True
) -> QualityEntry:
    return QualityEntry(
        when, model, type_, f"llamacpp {type_}", text, measured.text_digest(text), 100, bpc, 3.0, complete
    )


def test_entries_survive_a_round_trip_and_the_newest_wins(tmp_path: Path) -> None:
    path = tmp_path / "measured.json"
    assert measured.record_speed([_speed("2026-01-01T00:00:00Z", "q8_0", 20.0)], path) is None
    assert (
        measured.record_speed([_speed("2026-02-01T00:00:00Z", "q8_0", 22.5), _speed("x", "q4_0", 30.0, 768)], path)
        is None
    )
    assert measured.record_quality(_quality("2026-01-01T00:00:00Z", "m", "q8_0", 1.61), path) is None
    assert measured.record_quality(_quality("2026-01-02T00:00:00Z", "m", "q8_0", 1.60), path) is None
    assert measured.record_quality(_quality("2026-01-03T00:00:00Z", "m", "q8_0", 1.70, "other.txt"), path) is None
    assert measured.record_quality(_quality("2026-01-04T00:00:00Z", "m", "q4_0", 9.9, complete=False), path) is None
    assert measured.record_quality(_quality("2026-01-05T00:00:00Z", "n", "q4_0", 1.9), path) is None
    m = measured.load(path)
    speed = m.speed_for(24, 1536, 50257)
    assert set(speed) == {"q8_0"} and speed["q8_0"].tokens_per_second == 22.5
    assert m.speed_for(24, 768, 50257)["q4_0"].tokens_per_second == 30.0
    quality = m.quality_for("m")
    assert set(quality) == {"q8_0"}  # the stopped q4_0 measure covers part of a text: not shown
    assert [(e.text, e.bits_per_char) for e in quality["q8_0"]] == [("other.txt", 1.70), ("mine.txt", 1.60)]
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == 1
    assert not list(tmp_path.glob(".measured.*"))  # the temporary file was renamed into place


@pytest.mark.parametrize("content", [b"\xff\xfe garbage", b"[1, 2]", b'{"speed": [{"when": 1}], "quality": "no"}'])
def test_a_damaged_file_reads_as_nothing_measured_and_is_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "measured.json"
    path.write_bytes(content)
    m = measured.load(path)
    assert m.speed == [] and m.quality == []
    assert measured.record_speed([_speed("t", "f32", 4.0)], path) is None
    assert measured.load(path).speed_for(24, 1536, 50257)["f32"].tokens_per_second == 4.0


def test_a_folder_that_cannot_be_written_is_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    problem = measured.record_quality(_quality("t", "m", "q8_0", 1.6), blocker / "measured.json")
    assert problem is not None and str(blocker) in problem


def test_the_store_lives_in_the_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPTDESK_CACHE_DIR", str(tmp_path / "c"))
    assert measured.measured_path() == tmp_path / "c" / "measured.json"
    assert measured.record_speed([_speed("t", "q4_K_M", 35.0)]) is None
    assert measured.load().speed_for(24, 1536, 50257)["q4_K_M"].tokens_per_second == 35.0


def test_engine_labels_name_the_type() -> None:
    assert measured.type_of("llamacpp q4_K_M") == "q4_K_M"
    assert measured.type_of("transformers float32") == "f32"
    assert measured.type_of("transformers bfloat16") == "bf16"


def test_a_model_is_found_under_any_of_its_names(tmp_path: Path) -> None:
    path = tmp_path / "measured.json"
    measured.record_quality(_quality("t1", "sberbank-ai/rugpt3large_based_on_gpt2", "q8_0", 1.2), path)
    measured.record_quality(_quality("t2", "ai-forever/rugpt3large_based_on_gpt2", "q4_K_M", 1.3), path)
    m = measured.load(path)
    assert set(m.quality_for("ai-forever/rugpt3large_based_on_gpt2")) == {"q4_K_M"}
    both = m.quality_for("ai-forever/rugpt3large_based_on_gpt2", "sberbank-ai/rugpt3large_based_on_gpt2")
    assert set(both) == {"q8_0", "q4_K_M"}
