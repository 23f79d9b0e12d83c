"""Tools > "How well does this model know my text?": a real dialog measuring the embedded model, with Stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gptdesk.evaluate.bench_quality import heldout_text
from gptdesk.evaluate.perplexity import load_scorer, measure
from gptdesk.ui.perplexity_dialog import PerplexityDialog


@pytest.fixture
def dialog(qtbot: Any) -> PerplexityDialog:
    d = PerplexityDialog()
    qtbot.addWidget(d)
    d.show()
    return d


def test_measures_a_file_like_the_cli(qtbot: Any, dialog: PerplexityDialog, tmp_path: Path) -> None:
    text = heldout_text()[:700]
    path = tmp_path / "mine.txt"
    path.write_text(text, encoding="utf-8")
    assert dialog.load_file(path)
    dialog.engine_combo.setCurrentText("llamacpp")
    dialog.quant_combo.setCurrentText("q8_0")
    dialog.context_spin.setValue(64)
    assert dialog.start()
    assert not dialog.measure_button.isEnabled() and dialog.stop_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.running, timeout=120_000)
    result = dialog.measured
    assert result is not None and result.complete
    with load_scorer(None, engine="llamacpp", quant="q8_0") as scorer:
        direct = measure(text, scorer.tokenizer, scorer.score, context=64)
    assert result.bits_per_char == pytest.approx(direct.bits_per_char, rel=1e-9)
    shown = dialog.measured_label.text()
    assert f"{direct.bits_per_char:.4f} bits per character" in shown and "llamacpp q8_0" in shown
    assert dialog.progress_bar.value() == 1000
    assert dialog.measure_button.isEnabled() and not dialog.stop_button.isEnabled()


def test_stop_ends_a_long_run_with_the_figures_so_far(qtbot: Any, dialog: PerplexityDialog) -> None:
    dialog.text_edit.setPlainText(heldout_text() * 3)
    dialog.engine_combo.setCurrentText("transformers")
    assert not dialog.quant_combo.isEnabled()  # a llama.cpp type means nothing to transformers
    dialog.context_spin.setValue(64)
    assert dialog.start()
    # The first window is scored when the status counts tokens.
    qtbot.waitUntil(lambda: "tokens" in dialog.status_label.text(), timeout=120_000)
    dialog.stop_button.click()
    assert not dialog.stop_button.isEnabled()
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    result = dialog.measured
    assert result is not None and not result.complete
    assert 0 < result.characters < result.total_characters
    assert dialog.progress_bar.value() < 200
    assert "Stopped" in dialog.status_label.text()


def test_stop_during_the_conversion_ends_it_and_leaves_nothing(qtbot: Any, dialog: PerplexityDialog) -> None:
    from gptdesk.models.gguf.cache import cache_dir

    dialog.text_edit.setPlainText(heldout_text()[:300])
    dialog.engine_combo.setCurrentText("llamacpp")
    dialog.quant_combo.setCurrentText("q5_K_M")  # not cached in this test's cache: made from f16 first
    assert dialog.start()
    qtbot.waitUntil(
        lambda: "q5_K_M" in dialog.status_label.text() or "f16" in dialog.status_label.text(), timeout=60_000
    )
    dialog.stop_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=60_000)
    assert dialog.status_label.text() == "Stopped before the measure began."
    assert dialog.measured is None and dialog.measure_button.isEnabled()
    made = [p.name for p in cache_dir().rglob("*") if p.is_file() and "gguf" in p.name]
    assert made == [], made  # neither the f16 input nor a part of the q5_K_M file is left


def test_a_measure_in_the_window_is_kept_for_the_model_manager(
    qtbot: Any, dialog: PerplexityDialog, tmp_path: Path
) -> None:
    from gptdesk.models import measured

    dialog.text_edit.setPlainText(heldout_text()[:400])
    dialog.engine_combo.setCurrentText("llamacpp")
    dialog.quant_combo.setCurrentText("q8_0")
    dialog.context_spin.setValue(64)
    assert dialog.start()
    qtbot.waitUntil(lambda: not dialog.running, timeout=120_000)
    path = tmp_path / "opened.txt"
    path.write_text(heldout_text()[400:800], encoding="utf-8")
    assert dialog.load_file(path)
    assert dialog.start()
    qtbot.waitUntil(lambda: not dialog.running, timeout=120_000)
    kept = measured.load().quality_for("embedded")["q8_0"]
    assert [e.text for e in kept] == ["opened.txt", ""]  # newest first; "": typed or pasted in the window
    assert {e.characters for e in kept} == {400}
    assert kept[0].bits_per_char == pytest.approx(dialog.measured.bits_per_char)  # type: ignore[union-attr]
    assert kept[0].text_sha256 == measured.text_digest(heldout_text()[400:800])


def test_close_button_and_escape_close_it(qtbot: Any, dialog: PerplexityDialog) -> None:
    from PySide6.QtCore import Qt

    with qtbot.waitSignal(dialog.finished, timeout=5000):
        dialog.close_button.click()
    assert not dialog.isVisible()
    dialog.show()
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    assert not dialog.isVisible()


def test_empty_text_and_bad_file_say_what_to_do(dialog: PerplexityDialog, tmp_path: Path) -> None:
    assert not dialog.start()
    assert "paste or open a text" in dialog.status_label.text()
    bad = tmp_path / "cp1251.txt"
    bad.write_bytes("Привет".encode("cp1251"))
    assert not dialog.load_file(bad)
    assert "UTF-8" in dialog.status_label.text()


def test_tools_menu_opens_it_in_russian(make_window: Any) -> None:
    window = make_window(lang="ru")
    assert window.tools_menu.title() == "&Инструменты"
    assert window.act_perplexity.text() == "Насколько модель знает мой текст?…"
    window.act_perplexity.trigger()
    opened = window.perplexity_dialog
    assert opened.isVisible()
    assert opened.windowTitle() == "Насколько модель знает мой текст?"
    assert opened.measure_button.text() == "&Измерить"
    assert "Чем меньше, тем лучше" in opened.method_label.text()
    opened.close()


def test_model_manager_says_what_each_converted_file_holds(qtbot: Any) -> None:
    from gptdesk.models.gguf.convert import ensure_gguf
    from gptdesk.models.locate import resolve
    from gptdesk.ui.model_manager import _COL, ModelManagerDialog

    ensure_gguf(resolve(None), "q4_K_M")
    manager = ModelManagerDialog()
    qtbot.addWidget(manager)
    index = manager.row_index("embedded")
    tip = manager.table.item(index, _COL["model"]).toolTip()
    assert "llama.cpp: q4_K_M" in tip
    assert "22 matrices have rows that are not a multiple of 256" in tip
    manager.close()


def test_tools_menu_picks_a_k_quant_and_reloads_the_model(qtbot: Any, make_window: Any) -> None:
    window = make_window()
    assert window.act_quants["q8_0"].isChecked()
    with qtbot.waitSignal(window.model_loaded, timeout=180_000):
        window.start(None)
    assert window.engine.info.engine == "llamacpp" and window.engine.info.dtype == "q8_0"
    with qtbot.waitSignal(window.model_loaded, timeout=180_000):
        window.act_quants["q4_K_M"].trigger()
    assert window.engine.info.model_id == "embedded"
    assert window.engine.info.dtype == "q4_K_M"
    assert window.act_quants["q4_K_M"].isChecked() and not window.act_quants["q8_0"].isChecked()
    assert window._qsettings.value("quant") == "q4_K_M"
    # The measure opens for the model in the window.
    window.act_perplexity.trigger()
    assert window.perplexity_dialog.model == "embedded"
    assert window.perplexity_dialog.model_label.text() == "embedded"
    window.perplexity_dialog.close()


def test_tools_menu_sets_llama_cpp_threads_and_reloads_the_model(qtbot: Any, make_window: Any) -> None:
    from gptdesk.engine.llamacpp.native import physical_cores

    window = make_window()
    cores = physical_cores()
    assert list(window.act_threads) == list(range(cores + 1)) and window.act_threads[0].isChecked()
    assert window.act_threads[0].text() == f"Automatic: one per core ({cores})"
    assert window.act_threads[1].text() == "Threads: 1"
    with qtbot.waitSignal(window.model_loaded, timeout=180_000):
        window.start(None)
    assert window.engine.fast.threads == cores
    with qtbot.waitSignal(window.model_loaded, timeout=180_000):
        window.act_threads[1].trigger()
    assert window.engine.fast.threads == 1
    assert window.act_threads[1].isChecked() and not window.act_threads[0].isChecked()
    assert window._qsettings.value("threads") in (1, "1")
    window.set_language("ru")
    assert window.threads_menu.title() == "П&отоки llama.cpp"
    assert window.act_threads[0].text() == f"Автоматически: по одному на ядро ({cores})"
    assert window.act_threads[1].text() == "Потоков: 1"
    # A new window starts with the saved choice.
    again = make_window()
    assert again.act_threads[1].isChecked() and again.loader.threads_wanted == 1


def test_tools_menu_sets_the_kept_cache_and_reloads_the_model(qtbot: Any, make_window: Any) -> None:
    from gptdesk.ui.main_window import CACHE_AUTO

    window = make_window()
    assert window.act_cache[CACHE_AUTO].isChecked() and window.loader.cache_tokens_wanted is None
    assert window.act_cache[CACHE_AUTO].text() == "Automatic: one full context of the model"
    assert window.act_cache[0].text() == "Off: read the whole text every time"
    assert window.act_cache[8192].text() == "Up to 8\u202f192 tokens"
    with qtbot.waitSignal(window.model_loaded, timeout=180_000):
        window.start(None)
    assert window.engine.fast.store.limit == window.engine.info.n_positions
    assert "MB per 1,000 tokens" in window.act_cache[0].toolTip()
    with qtbot.waitSignal(window.model_loaded, timeout=180_000):
        window.act_cache[0].trigger()
    assert window.engine.fast.store.limit == 0
    assert window.act_cache[0].isChecked() and not window.act_cache[CACHE_AUTO].isChecked()
    assert window._qsettings.value("cache_tokens") in (0, "0")
    window.set_language("ru")
    assert window.cache_menu.title() == "Хранимый &кэш (продолжение без ожидания)"
    assert window.act_cache[0].text() == "Выключен: каждый раз читать весь текст"
    # A new window starts with the saved choice, and loads the model with it.
    again = make_window()
    assert again.act_cache[0].isChecked() and again.loader.cache_tokens_wanted == 0


def test_load_time_options_reload_only_an_engine_that_takes_them(qtbot: Any, make_window: Any) -> None:
    """The type, threads and kept cache are llama.cpp's load options (Capabilities.load_options): an engine
    without them (here the scripted one, as transformers) is not loaded again when they change."""
    from tests.ui.fake_engine import FakeEngine

    engine = FakeEngine()
    window = make_window(engine)
    assert not engine.capabilities.load_options
    window.act_cache[0].trigger()
    window.act_threads[1].trigger()
    assert not window.loader.loading and window.engine is engine
    assert window.loader.cache_tokens_wanted == 0 and window.loader.threads_wanted == 1  # for the next load
