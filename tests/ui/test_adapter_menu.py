"""Tools › Adapter: apply an adapter from `gptdesk tune` in the window; the status bar and the history name it,
and Reproduce loads the adapter that made the text (real widgets, a tiny model on the default engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gptdesk.settings.presets import get_preset
from tests.models.test_adapter_apply import _random_adapter


def test_an_adapter_is_applied_recorded_and_reproduced(
    qtbot: Any, make_window: Any, tiny_model_dir: Path, tmp_path: Path
) -> None:
    _random_adapter(tiny_model_dir, tmp_path, "rand", str(tiny_model_dir))
    window = make_window()
    with qtbot.waitSignal(window.model_loaded, timeout=120_000):
        assert window.loader.load_model(str(tiny_model_dir), kind="folder", label="tiny")
    window.fill_adapter_menu()
    assert list(window.act_adapters) == [None, "rand"] and window.act_adapters[None].isChecked()
    assert "held-out bits per character 2.000 → 1.900" in window.act_adapters["rand"].toolTip()
    with qtbot.waitSignal(window.model_loaded, timeout=120_000):
        window.act_adapters["rand"].trigger()
    assert window.engine.info.adapter == "rand" and window.engine.info.engine == "llamacpp"
    assert window.figures.labels["model"].text().endswith("+ adapter rand")
    window.fill_adapter_menu()
    assert window.act_adapters["rand"].isChecked()
    # A generation with the adapter is recorded with it.
    window.params.set_settings(get_preset("greedy").settings(max_new_tokens=6, min_new_tokens=6))
    window.prompt_edit.setPlainText("Привет")
    with qtbot.waitSignal(window.generation_finished, timeout=60_000):
        assert window.generate()
    record = window.store.find()[0]
    assert record.adapter == "rand" and record.adapter_digest == window.engine.info.adapter_digest
    with_adapter = record.output
    # Without the adapter the text differs; Reproduce loads the adapter again and gives the recorded text.
    with qtbot.waitSignal(window.model_loaded, timeout=120_000):
        window.act_adapters[None].trigger()
    assert window.engine.info.adapter is None
    with qtbot.waitSignal(window.generation_finished, timeout=60_000):
        assert window.generate()
    assert window.store.find()[0].output != with_adapter
    with qtbot.waitSignal(window.generation_finished, timeout=180_000):
        assert window.history_actions.reproduce(record.id)
    assert window.engine.info.adapter == "rand"
    again = window.store.find()[0]
    assert again.kind == "reproduce" and again.output == with_adapter and again.adapter == "rand"
