"""The history database: what is stored, migrations, search, exports, and environment faults."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from gptdesk.engine.base import Finished, ModelInfo, Timings, TokenEvent
from gptdesk.history import (
    HistoryBugError,
    HistoryStore,
    HistoryUnavailableError,
    LiveRecorder,
    data_dir,
    default_path,
    export,
)
from gptdesk.history.errors import classify
from gptdesk.history.migrations import MIGRATIONS, migrate
from gptdesk.i18n import Text
from gptdesk.settings.presets import get_preset

INFO = ModelInfo(
    model_id="embedded",
    source="/models/embedded",
    revision="embedded-abc123",
    engine="transformers",
    device="cpu",
    dtype="float32",
    n_params=1,
    n_layer=1,
    n_embd=1,
    n_head=1,
    n_positions=512,
    vocab_size=10,
)


def _finished(texts: list[str], reason: str = "length", seed: int = 42) -> Finished:
    return Finished(
        texts=texts,
        finish_reasons=[reason] * len(texts),  # type: ignore[list-item]
        prompt_tokens=3,
        generated_tokens=[7] * len(texts),
        seed=seed,
        timings=Timings(load_prompt=0.01, first_token=0.2, total=1.2, generated_tokens=7),
    )


def test_data_dir_follows_the_environment(tmp_path: Path) -> None:
    assert data_dir() == tmp_path / "data"  # tests/conftest.py points GPTDESK_DATA_DIR here
    assert default_path() == tmp_path / "data" / "history.sqlite3"


def test_a_generation_is_stored_with_everything_needed_to_reproduce_it() -> None:
    settings = get_preset("creative").settings(max_new_tokens=50)
    with HistoryStore() as store:
        gen_id = store.begin("Жили-были", settings, seed=42, info=INFO)
        running = store.get(gen_id)
        assert running.status == "running" and running.prompt == "Жили-были" and running.output == ""
        store.update_output(gen_id, ["старик"])
        assert store.get(gen_id).output == "старик"
        store.finish(gen_id, _finished(["старик со старухой"]))
        record = store.get(gen_id)
    assert record.status == "finished"
    assert record.output == "старик со старухой"
    assert record.settings == settings.model_dump()
    assert record.seed == 42
    assert (record.model_id, record.model_revision, record.engine, record.device, record.dtype) == (
        "embedded",
        "embedded-abc123",
        "transformers",
        "cpu",
        "float32",
    )
    assert record.versions["python"] and "gptdesk" in record.versions and "torch" in record.versions
    assert record.first_token_s == pytest.approx(0.2) and record.total_s == pytest.approx(1.2)
    assert record.tokens_per_second == pytest.approx(6 / 1.0)
    assert record.generated_tokens == 7 and record.prompt_tokens == 3
    assert record.reproduce_settings() == settings.updated(seed=42)


def test_variants_and_lineage() -> None:
    with HistoryStore() as store:
        first = store.begin("Начало", {"do_sample": True}, seed=1, info=INFO)
        store.finish(first, _finished(["один", "два", "три"]))
        second = store.begin("Началоодин", {"do_sample": True}, seed=2, info=INFO, kind="continue", parent_id=first)
        assert store.get(first).texts == ["один", "два", "три"]
        child = store.get(second)
        assert child.kind == "continue" and child.parent_id == first
        with pytest.raises(HistoryBugError):
            store.begin("x", {}, seed=None, info=None, kind="nonsense")


def test_search_is_case_insensitive_for_cyrillic_and_newest_first() -> None:
    with HistoryStore() as store:
        a = store.begin("Москва — столица", {}, seed=1, info=INFO)
        store.update_output(a, ["России"])
        b = store.begin("Жили-были", {}, seed=2, info=INFO)
        store.update_output(b, ["старик со СТАРУХОЙ"])
        assert [r.id for r in store.find()] == [b, a]
        assert [r.id for r in store.find("москва")] == [a]
        assert [r.id for r in store.find("старухой")] == [b]
        assert [r.id for r in store.find("embedded")] == [b, a]
        assert store.find("нет такого") == []
        assert store.count() == 2


def test_migrations_are_recorded_and_an_old_database_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, upto="m001_generations") == ["m001_generations"]
    db.execute(
        "INSERT INTO generations (created_at, updated_at, status, prompt, output, settings, versions) "
        "VALUES ('2026-01-01', '2026-01-01', 'finished', 'Старая затравка', 'старый текст', '{}', '{}')"
    )
    db.close()
    with HistoryStore(path) as store:
        assert store.migrations() == [name for name, _ in MIGRATIONS]
        (old,) = store.find()
        assert old.prompt == "Старая затравка" and old.texts == ["старый текст"] and old.kind == "new"
    with HistoryStore(path) as store:  # opening again runs nothing twice
        assert store.migrations() == [name for name, _ in MIGRATIONS]


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.sqlite3"
    HistoryStore(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', '2030-01-01')")
    db.commit()
    db.close()
    with pytest.raises(HistoryUnavailableError) as info:
        HistoryStore(path)
    assert info.value.reason == "newer"
    assert "m999_from_the_future" in str(info.value) and "Update GPT Desk" in str(info.value)


def test_wal_mode() -> None:
    with HistoryStore() as store:
        mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_generations_left_running_by_a_dead_process_are_marked_interrupted() -> None:
    with HistoryStore() as store:
        gen_id = store.begin("Оборвалось", {}, seed=3, info=INFO)
        store.update_output(gen_id, ["на полу"])
        mine = store.begin("Идёт", {}, seed=4, info=INFO)
        db = sqlite3.connect(store.path)
        db.execute("UPDATE generations SET pid = 999999999 WHERE id = ?", (gen_id,))  # no such process
        db.commit()
        db.close()
    with HistoryStore() as store:
        record = store.get(gen_id)
        assert record.status == "interrupted" and record.output == "на полу"
        assert store.get(mine).status == "running"  # this process is alive: still running


def test_disk_full_is_an_environment_fault_with_a_fix() -> None:
    with HistoryStore() as store:
        gen_id = store.begin("x", {}, seed=1, info=INFO)
        db = store._db()
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: as good as a full disk
        with pytest.raises(HistoryUnavailableError) as info:
            store.update_output(gen_id, ["очень длинный текст " * 5000])
    assert info.value.reason == "full"
    assert info.value.message("en").startswith("The disk is full: the history could not be saved")
    assert "Free some disk space" in info.value.message("en")
    assert "Освободите место на диске" in info.value.message("ru")


def test_a_locked_database_is_an_environment_fault(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    HistoryStore(path).close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        # Opening reads only (the schema is current), so it does not wait for the lock ...
        store = HistoryStore(path, timeout=0.1)
        assert store.problem is not None and store.problem.reason == "locked"
        # ... and the first write says what is wrong and how to fix it.
        with pytest.raises(HistoryUnavailableError) as info:
            store.begin("x", {}, seed=1, info=INFO)
        store.close()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert info.value.reason == "locked"
    assert str(path) in str(info.value) and "Close other GPT Desk windows" in str(info.value)


def test_a_damaged_file_is_an_environment_fault(tmp_path: Path) -> None:
    path = tmp_path / "damaged.sqlite3"
    path.write_bytes(b"this is not a database" * 200)
    with pytest.raises(HistoryUnavailableError) as info:
        HistoryStore(path)
    assert info.value.reason == "corrupt"
    assert "Move it away" in str(info.value) and str(path) in str(info.value)


def test_a_file_where_the_folder_should_be_is_an_environment_fault(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(HistoryUnavailableError) as info:
        HistoryStore(blocker / "history.sqlite3")
    assert info.value.reason == "os"
    assert "GPTDESK_DATA_DIR" in str(info.value)


def test_bugs_are_told_apart_from_the_environment(tmp_path: Path) -> None:
    syntax = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError) as raised:
        syntax.execute("SELEC nonsense")
    error = classify(raised.value, tmp_path / "h.sqlite3", Text("testing", "проверка"))
    assert isinstance(error, HistoryBugError)
    assert "Please report it" in str(error)
    with HistoryStore() as store, pytest.raises(HistoryBugError):
        store.get(12345)


def test_recorder_writes_the_prompt_first_and_the_output_as_it_grows() -> None:
    with HistoryStore() as store:
        recorder = LiveRecorder.start(store, "Затравка", {"seed": None}, seed=9, info=INFO, interval=0.05)
        assert store.get(recorder.gen_id).prompt == "Затравка"  # before any token
        recorder.add(TokenEvent(text="Жили", token_id=1, piece="Жили"))
        recorder.add(TokenEvent(text="", token_id=2, piece="<0xD0>"))  # half a character adds no text
        recorder.add(TokenEvent(text="-были", token_id=3, piece="-были"))
        import time

        deadline = time.monotonic() + 5
        while store.get(recorder.gen_id).output != "Жили-были" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.get(recorder.gen_id).output == "Жили-были"  # flushed by the timer, not at the end
        recorder.finish(_finished(["Жили-были"], seed=9))
        record = store.get(recorder.gen_id)
    assert record.status == "finished" and record.seed == 9


def test_recorder_keeps_the_partial_output_of_a_failed_generation() -> None:
    with HistoryStore() as store:
        recorder = LiveRecorder.start(store, "Затравка", {}, seed=1, info=INFO, interval=60)
        recorder.add(TokenEvent(text="начало", token_id=1, piece="начало"))
        recorder.fail(RuntimeError("boom"))
        record = store.get(recorder.gen_id)
    assert record.status == "failed" and record.output == "начало" and record.error == "boom"


def test_recorder_reports_a_full_disk_but_does_not_raise() -> None:
    with HistoryStore() as store:
        recorder = LiveRecorder.start(store, "x", {}, seed=1, info=INFO, interval=60)
        db = store._db()
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
        recorder.add(TokenEvent(text="очень длинный текст " * 5000, token_id=1, piece="x"))
        recorder.finish(_finished(["очень длинный текст " * 5000]))
    assert isinstance(recorder.error, HistoryUnavailableError) and recorder.error.reason == "full"


def test_exports() -> None:
    with HistoryStore() as store:
        a = store.begin("Москва — столица", get_preset("greedy").settings(), seed=1, info=INFO)
        store.finish(a, _finished(["России. ```код```"]))
        b = store.begin("Жили-были", get_preset("balanced").settings(), seed=2, info=INFO)
        store.finish(b, _finished(["старик", "старуха"]))
        records = store.find()
    payload = json.loads(export(records, "json"))
    assert payload["format"] == "gptdesk-history"
    assert [g["id"] for g in payload["generations"]] == [b, a]
    assert payload["generations"][0]["variants"] == ["старик", "старуха"]
    assert payload["generations"][1]["settings"]["do_sample"] is False
    assert payload["generations"][1]["model"]["revision"] == "embedded-abc123"

    markdown = export(records, "markdown", "en")
    assert f"## Generation #{a} — " in markdown and "### Output — variant 2" in markdown
    assert "````text\nРоссии. ```код```\n````" in markdown  # the fence outgrows the text's backticks
    assert "| `do_sample` | false |" in markdown and "| `seed` | random |" in markdown
    assert "embedded @ embedded-abc123 (transformers cpu float32)" in markdown
    assert "## Генерация #" in export(records, "markdown", "ru")

    text = export(records[:1], "text", "en")
    assert text.startswith(f"=== Generation #{b}")
    assert "--- Prompt ---\nЖили-были\n--- Output (variant 1) ---\nстарик\n" in text
    with pytest.raises(Exception, match="Unknown export format"):
        export(records, "pdf")


def test_history_imports_no_qt() -> None:
    import subprocess
    import sys

    code = "import sys, gptdesk.history, gptdesk.history.store; print('PySide6' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_the_adapter_that_made_a_generation_is_recorded() -> None:
    import dataclasses

    with_adapter = dataclasses.replace(INFO, adapter="pushkin", adapter_digest="ab" * 32)
    with HistoryStore() as store:
        gen = store.begin("Мой дядя", get_preset("greedy").settings(), seed=1, info=with_adapter)
        store.finish(gen, _finished(["самых честных правил"]))
        plain = store.begin("Мой дядя", get_preset("greedy").settings(), seed=1, info=INFO)
        record, without = store.get(gen), store.get(plain)
    assert record is not None and without is not None
    assert (record.adapter, record.adapter_digest) == ("pushkin", "ab" * 32)
    assert record.to_dict()["model"]["adapter"] == "pushkin" and without.adapter is None
