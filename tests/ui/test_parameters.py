"""The parameters panel: presets, explained knobs, live validation, the cost estimate and refusal."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QSpinBox

from gptdesk.settings.generation import GenerationSettings
from gptdesk.settings.help import FIELD_HELP
from gptdesk.settings.presets import PRESETS
from gptdesk.ui.params import FIELDS, ParametersPanel, escape, unescape
from tests.ui.fake_engine import FakeEngine


def _plain(html: str) -> str:
    doc = QTextDocument()
    doc.setHtml(html)
    return " ".join(doc.toPlainText().split())


def _norm(text: str) -> str:
    return " ".join(text.split())


def test_every_setting_has_an_editor_label_and_tooltip(qtbot: Any) -> None:
    panel = ParametersPanel()
    qtbot.addWidget(panel)
    assert {name for name, _ in FIELDS} == set(GenerationSettings.model_fields)
    for name, _kind in FIELDS:
        tip = _plain(panel.editor(name).toolTip())
        assert _norm(FIELD_HELP[name].help.en) in tip, name
        assert FIELD_HELP[name].label.en in tip
        assert panel.editor(name).accessibleName() == FIELD_HELP[name].label.en


def test_defaults_are_the_balanced_preset_and_valid(qtbot: Any) -> None:
    panel = ParametersPanel()
    qtbot.addWidget(panel)
    assert panel.preset_combo.currentData() == "balanced"
    assert panel.current == PRESETS["balanced"].settings()
    assert panel.issues == []
    assert panel.issues_label.isHidden()


def test_switching_preset_sets_the_knobs_and_disables_idle_ones(qtbot: Any) -> None:
    panel = ParametersPanel()
    qtbot.addWidget(panel)
    panel.show()
    greedy = panel.preset_combo.findData("greedy")
    panel.preset_combo.setFocus()
    panel.preset_combo.setCurrentIndex(greedy)
    panel.preset_combo.activated.emit(greedy)
    do_sample = panel.editor("do_sample")
    assert isinstance(do_sample, QCheckBox) and not do_sample.isChecked()
    assert panel.current is not None and panel.current.do_sample is False
    for knob in ("temperature", "top_k", "top_p"):
        editor = panel.editor(knob)
        assert not editor.isEnabled(), knob
        assert "random sampling is off" in _plain(editor.toolTip())
        assert "random sampling is off" in editor.accessibleDescription()
    assert panel.editor("num_beams").isEnabled()
    # Turning sampling back on enables them again, and the preset list says "Custom".
    do_sample.setFocus()
    qtbot.keyClick(do_sample, Qt.Key.Key_Space)
    assert do_sample.isChecked()
    assert all(panel.editor(k).isEnabled() for k in ("temperature", "top_k", "top_p"))
    assert panel.preset_combo.currentData() is None
    assert panel.preset_combo.currentText() == "Custom"

    sber = panel.preset_combo.findData("sber_demo")
    panel.preset_combo.setCurrentIndex(sber)
    panel.preset_combo.activated.emit(sber)
    assert panel.current == PRESETS["sber_demo"].settings()
    # Its 10 beams are legal but costly: a warning, not an error.
    assert panel.issues == []
    assert any(w.field == "num_beams" for w in panel.warnings)
    assert "num_beams = 10" in _plain(panel.issues_label.text())


def test_max_length_is_disabled_while_max_new_tokens_is_set(qtbot: Any) -> None:
    panel = ParametersPanel()
    qtbot.addWidget(panel)
    assert panel.editor("max_length").isEnabled()
    panel.set_values({"max_new_tokens": 50})
    assert not panel.editor("max_length").isEnabled()
    assert "max_new_tokens is set" in _plain(panel.editor("max_length").toolTip())
    panel.set_values({"max_new_tokens": None})
    assert panel.editor("max_length").isEnabled()


def test_invalid_values_are_flagged_live_before_generate(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine())
    window.prompt_edit.setPlainText("Проверка")
    panel = window.params
    top_p = panel.editor("top_p")
    assert isinstance(top_p, QDoubleSpinBox)
    top_p.setValue(0.0)
    assert panel.current is None
    assert "top_p = 0.0 is out of range" in _plain(panel.issues_label.text())
    assert panel.issues_label.isVisible()
    assert top_p.property("invalid") is True
    assert not window.generate_button.isEnabled()
    assert not window.act_generate.isEnabled()
    assert "invalid" in window.generate_button.toolTip()
    top_p.setValue(0.9)
    assert panel.current is not None and panel.issues_label.isHidden()
    assert top_p.property("invalid") is False
    assert window.generate_button.isEnabled()

    # A contradiction between two fields: more variants than beams with beam search.
    panel.set_values({"do_sample": False, "num_beams": 2, "num_return_sequences": 3})
    assert panel.current is None
    assert "num_return_sequences = 3 is greater than num_beams = 2" in _plain(panel.issues_label.text())
    assert panel.editor("num_return_sequences").property("invalid") is True

    # Temperature 0 with sampling: the settings model's own message, shown in the panel.
    panel.set_values({"do_sample": True, "num_beams": 1, "num_return_sequences": 1, "temperature": 0.0})
    assert "temperature = 0 with do_sample on" in _plain(panel.issues_label.text())

    # A seed that is not a number names the value.
    panel.set_values({"temperature": 1.0, "seed": "abc"})
    assert "seed = 'abc' is not a whole number" in _plain(panel.issues_label.text())
    assert not window.generate()


def test_stop_strings_round_trip_escapes(qtbot: Any) -> None:
    assert unescape("\\n\\nКонец\\t\\\\") == "\n\nКонец\t\\"
    assert escape("\n\nКонец\t\\") == "\\n\\nКонец\\t\\\\"
    panel = ParametersPanel()
    qtbot.addWidget(panel)
    panel.set_values({"stop": ["\n\n", "Конец"]})
    assert panel.current is not None and panel.current.stop == ["\n\n", "Конец"]
    # The escapes the CLI's --stop accepts, Cyrillic untouched, and every string back as it was.
    assert unescape("\\x41\\u0416 старину.\\r\\n") == "AЖ старину.\r\n"
    for text in ("a\rb\x01c\\d\te", "конец.\n", "\\x41 stays literal"):
        assert unescape(escape(text)) == text
    editor = panel.editor("stop")
    editor.setPlainText("старину.\\x2e\\n")
    assert panel.current is not None and panel.current.stop == ["старину..\n"]


def test_a_malformed_stop_escape_names_the_line_and_the_fix(qtbot: Any) -> None:
    panel = ParametersPanel()
    qtbot.addWidget(panel)
    panel.editor("stop").setPlainText("Конец\nстоп\\x4")
    assert panel.current is None
    shown = _plain(panel.issues_label.text())
    assert "the line 'стоп\\x4' has a malformed escape '\\x4'" in shown and "\\xHH with two hex digits" in shown
    assert panel.editor("stop").property("invalid")
    panel.editor("stop").setPlainText("Конец\nстоп\\x41")
    assert panel.current is not None and panel.current.stop == ["Конец", "стопA"]
    assert not panel.editor("stop").property("invalid")


def test_optional_lengths_show_unset(qtbot: Any) -> None:
    panel = ParametersPanel()
    qtbot.addWidget(panel)
    spin = panel.editor("max_new_tokens")
    assert isinstance(spin, QSpinBox)
    assert spin.value() == 0 and spin.text() == "unset"
    spin.setValue(20)
    assert panel.current is not None and panel.current.max_new_tokens == 20


def test_cost_estimate_is_shown_for_the_model_and_settings(qtbot: Any, make_window: Any) -> None:
    window = make_window(FakeEngine())
    window.prompt_edit.setPlainText("Жили были старик со старухой")
    window.params.set_values({"max_new_tokens": 50})
    # Recomputed shortly after typing stops (debounced), not on every keystroke.
    expected = "5 prompt tokens, up to 50 new."
    qtbot.waitUntil(lambda: window.params.estimate_label.text().startswith(expected), timeout=5000)
    text = window.params.estimate_label.text()
    assert "weights" in text and "per token" in text


def test_a_generation_the_machine_cannot_afford_is_refused(qtbot: Any, make_window: Any, monkeypatch: Any) -> None:
    import gptdesk.models.cost

    engine = FakeEngine()
    window = make_window(engine)
    window.prompt_edit.setPlainText("Дорого")
    window.params.set_values({"do_sample": True, "num_return_sequences": 16, "max_new_tokens": 400})
    monkeypatch.setattr(gptdesk.models.cost, "available_memory", lambda: 1_000_000)
    window.estimate.update()
    assert "does not fit in the free memory" in window.params.estimate_label.text()
    assert not window.generate()
    message = window.message_bar.text
    assert message.startswith("Not started: Not enough memory for this generation")
    assert "Try: num_return_sequences=" in message or "free at least" in message
    assert engine.calls == []


def test_banned_words_one_per_line_reach_the_generation(qtbot: Any, make_window: Any) -> None:
    panel = ParametersPanel()
    qtbot.addWidget(panel)
    panel.editor("bad_words").setPlainText("однако\n\n тем не менее\n")
    assert panel.current is not None and panel.current.bad_words == ["однако", " тем не менее"]
    panel.set_values({"bad_words": ["вдруг"]})
    assert panel.editor("bad_words").toPlainText() == "вдруг"
    # A word too long to ban is named with the fix, live.
    panel.editor("bad_words").setPlainText("я" * 101)
    assert panel.current is None and "bad_words[0]" in panel.issues_label.text()
    # In the window: the engine receives the list.
    engine = FakeEngine()
    window = make_window(engine)
    window.params.editor("bad_words").setPlainText("вдруг")
    window.prompt_edit.setPlainText("Жили-были")
    with qtbot.waitSignal(window.generation_finished, timeout=10_000):
        assert window.generate()
    assert engine.calls[-1][1].bad_words == ["вдруг"]
    assert window.store.find()[0].settings["bad_words"] == ["вдруг"]
