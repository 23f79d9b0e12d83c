"""The model manager's "what each llama.cpp type costs" panel: real measured.json, real GGUF files, real measures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

from gptdesk.evaluate.bench_quality import heldout_text
from gptdesk.i18n import set_language
from gptdesk.models import measured
from gptdesk.models.cost import estimate, format_bytes
from gptdesk.models.gguf.convert import ensure_gguf
from gptdesk.models.gguf.sizes import QUANT_TYPES, estimated_file_bytes
from gptdesk.models.locate import resolve
from gptdesk.models.measured import QualityEntry, SpeedEntry
from gptdesk.ui.model_manager import _COL, ModelManagerDialog
from gptdesk.ui.quant_costs import COL

_TYPES = ["f32", *(q for q in QUANT_TYPES if q != "f32")]


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    set_language("en")
    yield
    set_language(None)


def _embedded_shape() -> tuple[int, int, int]:
    config = json.loads((resolve(None).path / "config.json").read_text(encoding="utf-8"))
    return int(config["n_layer"]), int(config["n_embd"]), int(config["vocab_size"])


def _speed(quant: str, engine: str, tps: float, x_fp32: float | None, *, n_layer_add: int = 0) -> SpeedEntry:
    n_layer, n_embd, n_vocab = _embedded_shape()
    return SpeedEntry(
        when="2026-12-03T10:00:00Z",
        shape="embedded",
        n_layer=n_layer + n_layer_add,
        n_embd=n_embd,
        n_vocab=n_vocab,
        type=quant,
        engine=engine,
        tokens_per_second=tps,
        x_fp32=x_fp32,
        peak_rss_bytes=300_000_000,
        threads=2,
    )


def _quality(quant: str, text: str, sha: str, bpc: float, when: str = "2026-12-03T10:00:00Z") -> QualityEntry:
    engine = "transformers float32" if quant == "f32" else f"llamacpp {quant}"
    return QualityEntry(when, "embedded", quant, engine, text, sha, 5000, bpc, 2 ** (bpc * 2.5), True)


def _manager(qtbot: Any) -> ModelManagerDialog:
    dialog = ModelManagerDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.select("embedded")
    return dialog


def _cell(dialog: ModelManagerDialog, quant: str, column: str) -> tuple[str, str]:
    """The text and tooltip of one type's cell ("f32" is the transformers fp32 line)."""
    assert [c.type for c in dialog.costs.costs] == _TYPES
    item = dialog.costs.table.item(_TYPES.index(quant), COL[column])
    assert item is not None
    return item.text(), item.toolTip()


def test_shows_measured_speed_and_quality(qtbot: Any) -> None:
    assert (
        measured.record_speed(
            [
                _speed("f32", "transformers", 50.0, 1.0),
                _speed("q8_0", "llamacpp", 210.04, 4.2),
                _speed("q4_0", "llamacpp", 999.0, 9.9, n_layer_add=1),  # another shape: not this model's
            ]
        )
        is None
    )
    mine = _quality("f32", "mine.txt", "a" * 64, 2.0)
    q8 = _quality("q8_0", "mine.txt", "a" * 64, 2.001)
    typed = _quality("q4_K_M", "", "b" * 64, 2.1)
    f16 = _quality("f16", "-", "c" * 64, 2.2)
    q5 = _quality("q5_K_M", "-", "c" * 64, 2.233, when="2026-12-03T11:00:00Z")
    for entry in (mine, q8, typed, f16, q5):
        assert measured.record_quality(entry) is None

    dialog = _manager(qtbot)
    panel = dialog.costs
    assert panel.table.objectName() == "quant_costs"
    assert panel.title() == "What each llama.cpp type costs for Embedded Russian literature model"
    assert _cell(dialog, "f32", "type")[0] == "transformers fp32"
    assert _cell(dialog, "q8_0", "type")[0] == "q8_0 (default)"
    assert _cell(dialog, "q4_K_M", "type")[0] == "q4_K_M"

    assert _cell(dialog, "f32", "speed")[0] == "50.0 tok/s"
    text, tip = _cell(dialog, "q8_0", "speed")
    assert text == "210.0 tok/s (4.2× fp32)"
    assert "`gptdesk bench`" in tip and "2 threads" in tip
    for quant in ("f16", "q6_K", "q5_K_M", "q4_K_M", "q4_0"):
        text, tip = _cell(dialog, quant, "speed")
        assert text == "—"
        # The embedded model's shape is not one the bench builds: the tooltip says which ones it does.
        assert "gptdesk bench --shapes small,large" in tip

    assert _cell(dialog, "f32", "quality")[0] == "2.0000, mine.txt"
    percent = (q8.bits_per_char - mine.bits_per_char) / mine.bits_per_char * 100
    assert f"{percent:+.2f}" == "+0.05"
    assert _cell(dialog, "q8_0", "quality")[0] == "2.0010, mine.txt, +0.05% vs f32"
    # No f32 measure on that text: compared with f16; a different text: no comparison at all.
    assert _cell(dialog, "q5_K_M", "quality")[0] == "2.2330, standard input, +1.50% vs f16"
    assert _cell(dialog, "f16", "quality")[0] == "2.2000, standard input"
    text, tip = _cell(dialog, "q4_K_M", "quality")
    assert text == "2.1000, text typed in the window"
    assert tip.splitlines()[1].startswith("text typed in the window: 2.1000 bits/char")
    for quant in ("q6_K", "q4_0"):
        text, tip = _cell(dialog, quant, "quality")
        assert text == "—" and "How well does this model know my text?" in tip

    # A newer measure of q8_0 on another text comes first; the tooltip keeps both texts.
    assert measured.record_quality(_quality("q8_0", "other.txt", "d" * 64, 2.5, "2026-12-03T12:00:00Z")) is None
    dialog.refresh()
    text, tip = _cell(dialog, "q8_0", "quality")
    assert text == "2.5000, other.txt"
    assert [line.split(":")[0] for line in tip.splitlines()[1:]] == ["other.txt", "mine.txt"]

    # RAM: the estimate for a typical generation, with the fits mark the models table uses.
    shape = dialog.rows()[dialog.row_index("embedded")].shape
    assert shape is not None
    q4 = estimate(shape, dtype="q4_K_M", prompt_tokens=64, max_new_tokens=100, engine="llamacpp")
    text, tip = _cell(dialog, "q4_K_M", "ram")
    assert text == f"{format_bytes(q4.total_bytes)} ✓" and tip.startswith("Fits: needs ≈")
    assert "llama.cpp engine" in tip
    # The reference line is the models table's own float32 figure.
    ram_f32 = dialog.table.item(dialog.row_index("embedded"), _COL["ram_float32"])
    assert ram_f32 is not None and _cell(dialog, "f32", "ram")[0] == ram_f32.text()

    dialog.select("rugpt3large")
    assert panel.title() == "What each llama.cpp type costs for ruGPT-3 Large (760M)"
    assert _cell(dialog, "q8_0", "quality")[0] == "—"
    # ruGPT-3 Large is a bench shape: the tooltip names the command that measures it.
    assert "gptdesk bench --shapes large --configs fp32,f16,q8_0" in _cell(dialog, "q8_0", "speed")[1]
    assert not panel.measure_button.isEnabled()  # not downloaded: nothing to measure with


def test_a_measure_made_in_the_dialog_appears(qtbot: Any) -> None:
    dialog = _manager(qtbot)
    panel = dialog.costs
    assert _cell(dialog, "q8_0", "quality")[0] == "—"
    panel.select_type("q8_0")
    assert panel.measure_button.isEnabled()
    panel.measure_button.click()
    opened = panel.perplexity_dialog
    assert opened is not None and opened.isVisible()
    assert opened.engine_combo.currentText() == "llamacpp"
    assert opened.quant_combo.currentText() == "q8_0"
    opened.text_edit.setPlainText(heldout_text()[:700])
    opened.context_spin.setValue(64)
    assert opened.start()
    qtbot.waitUntil(lambda: not opened.running, timeout=120_000)
    result = opened.measured
    assert result is not None and result.complete
    # Shown as soon as the measure ends, the dialog still open.
    shown = f"{result.bits_per_char:.4f}, text typed in the window"
    assert _cell(dialog, "q8_0", "quality")[0] == shown
    opened.close()
    dialog.refresh()
    assert _cell(dialog, "q8_0", "quality")[0] == shown
    assert _cell(dialog, "q4_0", "quality")[0] == "—"


def test_closing_the_manager_stops_a_measure_it_opened(qtbot: Any) -> None:
    dialog = ModelManagerDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.costs.title() == "What each llama.cpp type costs (select a model above)"
    assert dialog.costs.table.rowCount() == 0 and not dialog.costs.measure_button.isEnabled()
    dialog.select("embedded")
    dialog.costs.select_type("f16")
    dialog.costs.measure_button.click()
    opened = dialog.costs.perplexity_dialog
    assert opened is not None and opened.quant_combo.currentText() == "f16"
    opened.text_edit.setPlainText(heldout_text() * 3)
    opened.context_spin.setValue(64)
    assert opened.start()
    qtbot.waitUntil(lambda: "tokens" in opened.status_label.text(), timeout=120_000)
    thread = opened._thread
    assert thread is not None
    dialog.close()  # the manager is deleted on close in the app: its child must not outlive the thread
    assert thread.isFinished() and not opened.isVisible()
    assert dialog.costs.perplexity_dialog is None
    assert measured.load().quality == []  # stopped part way: an incomplete measure is not kept


def test_measure_opens_transformers_for_the_reference_line(qtbot: Any) -> None:
    dialog = _manager(qtbot)
    dialog.costs.select_type("f32")
    dialog.costs.measure_button.click()
    opened = dialog.costs.perplexity_dialog
    assert opened is not None and opened.engine_combo.currentText() == "transformers"
    opened.close()


def test_file_is_the_cached_gguf_or_an_estimate(qtbot: Any) -> None:
    dialog = _manager(qtbot)
    shape = dialog.rows()[dialog.row_index("embedded")].shape
    assert shape is not None
    text, tip = _cell(dialog, "q4_K_M", "file")
    assert text == "≈ " + format_bytes(estimated_file_bytes(shape, "q4_K_M"))
    assert "no GGUF file of this type" in tip

    path = ensure_gguf(resolve(None), "q4_K_M").path
    dialog.refresh()
    text, tip = _cell(dialog, "q4_K_M", "file")
    assert text == format_bytes(path.stat().st_size) and tip == str(path)
    assert _cell(dialog, "q4_0", "file")[0].startswith("≈ ")
    # The estimate was the file's size (the embedded model's K-quants mostly fall back to 32-blocks).
    assert estimated_file_bytes(shape, "q4_K_M") == pytest.approx(path.stat().st_size, rel=0.002)


def test_unknown_shape_shows_question_marks(qtbot: Any, tmp_path: Path) -> None:
    # A download that stopped before its config.json arrived: listed, but its shape is unknown.
    repo = tmp_path / "hf" / "hub" / "models--someone--half-model"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / ("0" * 40 + ".incomplete")).write_bytes(b"x" * 1000)
    dialog = _manager(qtbot)
    dialog.select("someone/half-model")
    assert dialog.costs.title().endswith("someone/half-model")
    for quant in _TYPES:
        assert _cell(dialog, quant, "file")[0] == "?"
        assert _cell(dialog, quant, "ram")[0] == "?"
        assert _cell(dialog, quant, "speed")[0] == "—"


def test_russian(qtbot: Any) -> None:
    assert (
        measured.record_speed([_speed("f32", "transformers", 50.0, 1.0), _speed("q8_0", "llamacpp", 210.0, 4.2)])
        is None
    )
    assert measured.record_quality(_quality("f32", "", "a" * 64, 2.0)) is None
    assert measured.record_quality(_quality("q8_0", "", "a" * 64, 2.001)) is None
    assert measured.record_quality(_quality("q4_0", "-", "b" * 64, 2.3)) is None
    dialog = _manager(qtbot)
    assert dialog.costs.measure_button.text() == "Measure on my text…"
    set_language("ru")
    QApplication.sendEvent(dialog, QEvent(QEvent.Type.LanguageChange))
    panel = dialog.costs
    assert panel.title() == "Во что обходится каждый тип llama.cpp — Встроенная модель русской литературы"
    headers = [panel.table.horizontalHeaderItem(i).text() for i in range(panel.table.columnCount())]
    assert headers == ["Тип", "Файл", "ОЗУ", "Скорость на этом компьютере", "Качество (бит на символ, меньше — лучше)"]
    assert _cell(dialog, "q8_0", "type")[0] == "q8_0 (по умолчанию)"
    assert _cell(dialog, "q8_0", "speed")[0] == "210,0 ток/с (4,2× fp32)"
    assert _cell(dialog, "q8_0", "quality")[0] == "2,0010, текст, набранный в окне, +0,05% к f32"
    assert _cell(dialog, "q4_0", "quality")[0] == "2,3000, стандартный ввод"
    assert "Инструменты" in _cell(dialog, "q6_K", "quality")[1]
    assert "измеряет только формы ruGPT-3" in _cell(dialog, "q6_K", "speed")[1]
    assert panel.measure_button.text() == "Измерить на моём тексте…"
    assert "`gptdesk bench` на этом компьютере" in panel.note_label.text()


def test_damaged_store_reads_as_nothing_measured(qtbot: Any) -> None:
    path = measured.measured_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00\xff{not json\x9c" * 50)
    dialog = _manager(qtbot)
    for quant in _TYPES:
        assert _cell(dialog, quant, "speed")[0] == "—"
        assert _cell(dialog, quant, "quality")[0] == "—"
    path.write_text('{"speed": [{"type": "q8_0"}], "quality": 7}', encoding="utf-8")  # valid JSON, wrong shape
    dialog.refresh()
    assert all(_cell(dialog, q, "speed")[0] == "—" for q in _TYPES)
