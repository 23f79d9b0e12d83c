"""Small widgets of the main window: the message bar, the output pane with its variants, and their columns."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QSplitter,
    QTabWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

_LEVEL_STYLE = {
    "error": "background: #fdecea; color: #611a15; border: 1px solid #f5c6cb;",
    "warning": "background: #fff4e5; color: #663c00; border: 1px solid #ffe0b2;",
    "info": "background: #e8f4fd; color: #0d3c61; border: 1px solid #b6dcfe;",
}


class MessageBar(QFrame):
    """A non-modal message above the output: errors, warnings and notices the user can dismiss."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("message_bar")
        self.level = "info"
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()
        self.retranslate()

    @property
    def text(self) -> str:
        return self.label.text() if not self.isHidden() else ""

    def show_message(self, text: str, level: str = "info") -> None:
        self.level = level
        self.label.setText(text)
        self.setStyleSheet(f"QFrame#message_bar {{ {_LEVEL_STYLE.get(level, '')} }}")
        self.label.setAccessibleName(text)
        self.show()

    def retranslate(self) -> None:
        self.setAccessibleName(self.tr("Message"))
        self.close_button.setToolTip(self.tr("Dismiss the message"))
        self.close_button.setAccessibleName(self.tr("Dismiss the message"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


class OutputPane(QTabWidget):
    """The text: the prompt (muted) and what the model wrote; one tab per returned sequence.

    The tab bar hides itself while there is one variant.

    Signals:
        count_changed(int): the number of variants changed.
    """

    count_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("output")
        self.setTabBarAutoHide(True)
        self.setDocumentMode(True)
        self._editors: list[QPlainTextEdit] = []
        #: The same variants side by side; every change is written there too.
        self.columns = VariantColumns()
        self._context_length = 0
        self._prefix_length = 0  # earlier output that a continuation extends
        self._generated_format = QTextCharFormat()
        self._context_format = QTextCharFormat()
        self._context_format.setForeground(QColor("#6b6b6b"))
        self.reset(1)
        self.retranslate()

    def reset(self, count: int, prefix: str = "", context: str = "") -> None:
        """Show `count` variants, each with `context` (the prompt, muted) then `prefix` (earlier output)."""
        count = max(1, count)
        changed = count != len(self._editors)
        while len(self._editors) > count:
            editor = self._editors.pop()
            self.removeTab(len(self._editors))
            editor.deleteLater()
        while len(self._editors) < count:
            editor = QPlainTextEdit()
            editor.setReadOnly(True)
            editor.setObjectName(f"output_{len(self._editors)}")
            editor.setTextInteractionFlags(
                Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
            )
            font = QFont(editor.font())
            font.setPointSizeF(font.pointSizeF() * 1.1)
            editor.setFont(font)
            self._editors.append(editor)
            self.addTab(editor, "")
        self._context_length = len(context)
        self._prefix_length = len(prefix)
        # Columns only for several variants: one text is shown in the tab alone, written once.
        self.columns.set_count(count if count > 1 else 0, self._editors[0].font())
        for editor in self._views():
            editor.clear()
            cursor = QTextCursor(editor.document())
            cursor.insertText(context, self._context_format)
            cursor.insertText(prefix, self._generated_format)
        self.setCurrentIndex(0)
        self.retranslate()
        if changed:
            self.count_changed.emit(count)

    def append(self, sequence: int, text: str) -> None:
        """Add streamed text to one variant without disturbing a selection; follow the end if there."""
        if not text:
            return
        while sequence >= len(self._editors):
            self._grow(len(self._editors) + 1)
        for editor in self._views_of(sequence):
            bar = editor.verticalScrollBar()
            at_end = bar.value() >= bar.maximum() - 4
            cursor = QTextCursor(editor.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(text, self._generated_format)
            if at_end:
                bar.setValue(bar.maximum())

    def replace(self, sequence: int, text: str) -> None:
        """Show `text` as this variant's new text, instead of what it showed (a beam search's leader)."""
        while sequence >= len(self._editors):
            self._grow(len(self._editors) + 1)
        for editor in self._views_of(sequence):
            cursor = QTextCursor(editor.document())
            start = self._context_length + self._prefix_length
            cursor.setPosition(min(start, editor.document().characterCount() - 1))
            cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
            cursor.insertText(text, self._generated_format)

    def _grow(self, count: int) -> None:
        """Add variants (a batch engine may report more sequences than announced)."""
        context = self.full_text(0)[: self._context_length]
        texts = self.texts()
        current = self.currentIndex()
        prefix_length = self._prefix_length
        self.reset(count, context=context)
        self._prefix_length = prefix_length
        for index, text in enumerate(texts):
            self.append(index, text)
        self.setCurrentIndex(max(0, current))

    def set_texts(self, texts: list[str], context: str = "") -> None:
        self.reset(len(texts), context=context)
        for index, text in enumerate(texts):
            self.append(index, text)

    def text(self, sequence: int = 0) -> str:
        """What the model wrote in this variant (without the prompt)."""
        return self.full_text(sequence)[self._context_length :]

    def full_text(self, sequence: int = 0) -> str:
        """The variant as shown: the prompt and the text after it."""
        return self._editors[sequence].toPlainText() if 0 <= sequence < len(self._editors) else ""

    def texts(self) -> list[str]:
        return [self.text(i) for i in range(len(self._editors))]

    def editor(self, sequence: int = 0) -> QPlainTextEdit:
        return self._editors[sequence]

    def _views(self) -> list[QPlainTextEdit]:
        return [*self._editors, *self.columns.columns]

    def _views_of(self, sequence: int) -> list[QPlainTextEdit]:
        columns = self.columns.columns
        return [self._editors[sequence], *([columns[sequence]] if sequence < len(columns) else [])]

    def retranslate(self) -> None:
        self.setAccessibleName(self.tr("Output"))
        for index, editor in enumerate(self._editors):
            self.setTabText(index, self.tr("Variant {n}").format(n=index + 1))
            name = self.tr("Generated text") if len(self._editors) == 1 else self.tr("Variant {n}").format(n=index + 1)
            editor.setAccessibleName(name)
            editor.setAccessibleDescription(self.tr("The prompt in grey, then the text the model wrote"))
            editor.setPlaceholderText(self.tr("The generated text appears here as the model writes it."))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)


class VariantColumns(QWidget):
    """The output's variants side by side, one column each, so they can be watched growing together.

    The OutputPane writes every change to its columns too (see OutputPane.columns); clicking into
    a column selects that variant.

    Signals:
        variant_clicked(int): the user clicked into this variant's column.
    """

    variant_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("variant_columns")
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        self.columns: list[QPlainTextEdit] = []
        self.titles: list[QLabel] = []
        self._boxes: list[QWidget] = []
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)

    def set_count(self, count: int, font: QFont) -> None:
        while len(self.columns) > count:
            self.columns.pop()
            self.titles.pop()
            self._boxes.pop().deleteLater()
        while len(self.columns) < count:
            index = len(self.columns)
            box = QWidget()
            box_layout = QVBoxLayout(box)
            box_layout.setContentsMargins(0, 0, 0, 0)
            title = QLabel()
            column = QPlainTextEdit()
            column.setObjectName(f"variant_column_{index}")
            column.setReadOnly(True)
            column.setFont(font)
            column.setTextInteractionFlags(
                Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard
            )
            column.installEventFilter(self)
            title.setBuddy(column)
            box_layout.addWidget(title)
            box_layout.addWidget(column, 1)
            self.splitter.addWidget(box)
            self._boxes.append(box)
            self.columns.append(column)
            self.titles.append(title)
        self.retranslate()

    def text(self, index: int) -> str:
        return self.columns[index].toPlainText()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.FocusIn and isinstance(watched, QPlainTextEdit) and watched in self.columns:
            self.variant_clicked.emit(self.columns.index(watched))
        return super().eventFilter(watched, event)

    def retranslate(self) -> None:
        self.setAccessibleName(self.tr("Variants side by side"))
        for index, (title, column) in enumerate(zip(self.titles, self.columns, strict=True)):
            title.setText(self.tr("Variant {n}").format(n=index + 1))
            column.setAccessibleName(self.tr("Variant {n}").format(n=index + 1))
            column.setAccessibleDescription(self.tr("The prompt in grey, then the text the model wrote"))

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
