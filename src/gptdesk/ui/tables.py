"""What the model manager's two tables share: cells made on demand, and the "fits in memory" tooltip."""

from __future__ import annotations

from PySide6.QtWidgets import QTableWidget, QTableWidgetItem

from gptdesk.i18n import Text


def cell(table: QTableWidget, row: int, column: int) -> QTableWidgetItem:
    """The item at (row, column), made the first time it is asked for."""
    item = table.item(row, column)
    if item is None:
        item = QTableWidgetItem()
        table.setItem(row, column, item)
    return item


def fits_tip(fits: bool, need: str, free: str) -> Text:
    """Whether a typical generation's memory (`need`) fits what is available now (`free`)."""
    if fits:
        return Text(
            f"Fits: needs ≈ {need} for a typical generation; {free} is available now.",
            f"Помещается: нужно ≈ {need} для обычной генерации; сейчас доступно {free}.",
        )
    return Text(
        f"Does not fit: needs ≈ {need}, only {free} is available now.",
        f"Не помещается: нужно ≈ {need}, а сейчас доступно только {free}.",
    )
