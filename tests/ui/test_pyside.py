"""Guards against known PySide6 defects that would crash the window."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    happened = Signal(object)


def test_emitting_a_signal_does_not_drop_references_to_true() -> None:
    # PySide6 6.12.0 returns True from SignalInstance.emit() without taking a reference, so each
    # emit drops one; after a few thousand streamed tokens CPython aborts with
    # "bool_dealloc: deallocating True or False". pyproject pins a version without the defect.
    emitter = _Emitter()
    received: list[object] = []
    emitter.happened.connect(received.append)
    before = sys.getrefcount(True)
    for n in range(200):
        emitter.happened.emit(n)
    after = sys.getrefcount(True)
    assert received == list(range(200))
    assert after >= before, f"{before - after} references to True lost in 200 emits"
