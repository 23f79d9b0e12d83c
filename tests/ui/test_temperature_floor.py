"""The window refuses temperatures between 0 and 0.05 live, with the settings' own message (issue 13, item 8)."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QDoubleSpinBox

from gptdesk.ui.params import ParametersPanel


def test_a_temperature_below_the_floor_is_flagged(qtbot: Any) -> None:
    panel = ParametersPanel()
    qtbot.addWidget(panel)
    spin = panel.editor("temperature")
    assert isinstance(spin, QDoubleSpinBox)
    spin.setValue(0.01)
    assert panel.current is None
    assert [issue.field for issue in panel.issues] == ["temperature"]
    assert panel.issues[0].text.en.startswith("temperature = 0.01 is below 0.05")
    assert spin.property("invalid") is True
    spin.setValue(0.05)
    assert panel.current is not None and panel.current.temperature == 0.05
