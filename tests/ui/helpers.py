"""Helpers for driving real widgets from GUI tests."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication, QWidget


def type_text(qtbot: Any, widget: QWidget, text: str) -> None:
    """Type `text` into `widget` key by key, Cyrillic included.

    QTest.keyClicks maps characters to keys through an ASCII table and aborts on anything else
    (qasciikey.cpp), so other characters go as key events that carry their text, as a Russian
    keyboard layout sends them.
    """
    widget.setFocus()
    for char in text:
        if char.isascii() and char != "\n":
            qtbot.keyClicks(widget, char)
            continue
        key = Qt.Key.Key_Return if char == "\n" else Qt.Key.Key_unknown
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(widget, QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier, char))
