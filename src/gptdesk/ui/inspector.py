"""The token inspector: the prompt's tokens with their ids, generated tokens shaded by probability."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from PySide6.QtCore import QAbstractListModel, QEvent, QModelIndex, QPersistentModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QListView,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gptdesk.engine.base import Alternative, TokenEvent, TokenPiece

AnyIndex = QModelIndex | QPersistentModelIndex
_ITEM_ROLE = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True)
class TokenItem:
    """A token as the inspector shows it."""

    token_id: int
    piece: str
    logprob: float | None = None
    alternatives: tuple[Alternative, ...] = ()

    @property
    def probability(self) -> float | None:
        return math.exp(self.logprob) if self.logprob is not None else None


def visible(piece: str) -> str:
    """A token piece with its whitespace made visible: '·' for a space, '↵' for a line break."""
    if piece == "":
        return "∅"
    return piece.replace(" ", "·").replace("\n", "↵").replace("\t", "→").replace("\r", "␍")


def shade(probability: float) -> QColor:
    """Pale red for unlikely tokens through pale yellow to pale green for likely ones."""
    p = min(max(probability, 0.0), 1.0)
    return QColor.fromHsvF(p * 120 / 360, 0.45, 1.0)


def percent(probability: float) -> str:
    value = probability * 100
    if value >= 99.95:
        return "100%"
    if value >= 10:
        return f"{value:.0f}%"
    if value >= 0.1:
        return f"{value:.1f}%"
    return "<0.1%"


class TokenListModel(QAbstractListModel):
    """Tokens for a flowing list view; the tooltip lists the alternatives."""

    def __init__(self, *, show_probability: bool) -> None:
        super().__init__()
        self.items: list[TokenItem] = []
        self.show_probability = show_probability
        self.labels = {"id": "id", "probability": "probability", "alternatives": "alternatives"}

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.items)

    def set_items(self, items: list[TokenItem]) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.endResetModel()

    def extend(self, items: list[TokenItem]) -> None:
        first = len(self.items)
        self.beginInsertRows(QModelIndex(), first, first + len(items) - 1)
        self.items.extend(items)
        self.endInsertRows()

    def subtitle(self, item: TokenItem) -> str:
        if self.show_probability and item.probability is not None:
            return percent(item.probability)
        return str(item.token_id)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self.items):
            return None
        item = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return visible(item.piece)
        if role == _ITEM_ROLE:
            return item
        if role == Qt.ItemDataRole.AccessibleTextRole:
            text = f"{item.piece!r}, {self.labels['id']} {item.token_id}"
            if item.probability is not None:
                text += f", {self.labels['probability']} {percent(item.probability)}"
            return text
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.tooltip(item)
        if role == Qt.ItemDataRole.BackgroundRole and self.show_probability and item.probability is not None:
            return shade(item.probability)
        return None

    def tooltip(self, item: TokenItem) -> str:
        head = f"<b>{html.escape(visible(item.piece))}</b> — {self.labels['id']} {item.token_id}"
        if item.probability is not None:
            head += f", {self.labels['probability']} {percent(item.probability)}"
        if not item.alternatives:
            return f"<qt>{head}</qt>"
        rows = "".join(
            f"<tr><td>{'▶' if alt.token_id == item.token_id else ''}</td>"
            f"<td><code>{html.escape(visible(alt.text))}</code></td>"
            f"<td align='right'>{percent(math.exp(alt.logprob))}</td></tr>"
            for alt in item.alternatives
        )
        return f"<qt>{head}<br>{self.labels['alternatives']}:<table>{rows}</table></qt>"


class TokenDelegate(QStyledItemDelegate):
    """Paints a token as a small card: the piece, and its id or probability underneath."""

    PAD = 4

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        # The list view asks every item's size again at each relayout, and a relayout follows
        # every batch of streamed tokens: measuring text each time made a 3,000-token list
        # freeze the window for 100+ ms. A token's card never changes, so measure it once.
        self._sizes: dict[tuple[str, str, str], QSize] = {}

    def sizeHint(self, option: QStyleOptionViewItem, index: AnyIndex) -> QSize:
        model = index.model()
        if not isinstance(model, TokenListModel) or not 0 <= index.row() < len(model.items):
            return super().sizeHint(option, index)
        item = model.items[index.row()]
        subtitle = model.subtitle(item)
        key = (item.piece, subtitle, option.font.key())
        size = self._sizes.get(key)
        if size is None:
            main = QFontMetrics(option.font)
            small = QFontMetrics(self._small(option.font))
            width = max(main.horizontalAdvance(visible(item.piece)), small.horizontalAdvance(subtitle))
            size = QSize(width + 2 * self.PAD, main.height() + small.height() + 2 * self.PAD)
            self._sizes[key] = size
        return size

    @staticmethod
    def _small(font: QFont) -> QFont:
        smaller = QFont(font)
        smaller.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        return smaller

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: AnyIndex) -> None:
        model = index.model()
        item = index.data(_ITEM_ROLE)
        if not isinstance(model, TokenListModel) or not isinstance(item, TokenItem):
            super().paint(painter, option, index)
            return
        painter.save()
        rect = QRect(option.rect).adjusted(1, 1, -1, -1)
        palette: QPalette = option.palette
        background = index.data(Qt.ItemDataRole.BackgroundRole)
        fill = background if isinstance(background, QColor) else palette.color(QPalette.ColorRole.AlternateBase)
        painter.fillRect(rect, fill)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        pen = QPen(palette.color(QPalette.ColorRole.Highlight) if selected else fill.darker(130))
        pen.setWidth(2 if selected else 1)
        painter.setPen(pen)
        painter.drawRect(rect)
        # Pale backgrounds: always dark text, whatever the theme.
        text_color = QColor("#111111") if isinstance(background, QColor) else palette.color(QPalette.ColorRole.Text)
        main = QFontMetrics(option.font)
        painter.setPen(text_color)
        painter.setFont(option.font)
        top = rect.adjusted(self.PAD - 1, self.PAD - 1, 0, 0)
        painter.drawText(top, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, visible(item.piece))
        painter.setFont(self._small(option.font))
        painter.setPen(
            QColor("#555555") if isinstance(background, QColor) else palette.color(QPalette.ColorRole.PlaceholderText)
        )
        bottom = rect.adjusted(self.PAD - 1, self.PAD - 1 + main.height(), 0, 0)
        painter.drawText(bottom, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, model.subtitle(item))
        painter.restore()


def _token_view(model: TokenListModel) -> QListView:
    view = QListView()
    view.setModel(model)
    view.setItemDelegate(TokenDelegate(view))
    view.setViewMode(QListView.ViewMode.ListMode)
    view.setFlow(QListView.Flow.LeftToRight)
    view.setWrapping(True)
    view.setResizeMode(QListView.ResizeMode.Adjust)
    view.setSpacing(1)
    view.setUniformItemSizes(False)
    # Lay long lists out a slice per pass of the event loop, so none of them blocks it.
    view.setLayoutMode(QListView.LayoutMode.Batched)
    view.setBatchSize(200)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.setMouseTracking(True)
    return view


class TokenInspector(QWidget):
    """Prompt tokens, generated tokens (one variant at a time) and the alternatives of the selected one.

    Signals:
        token_selected(object): a generated token (TokenItem) was clicked or selected.
    """

    token_selected = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._generated: dict[int, list[TokenItem]] = {}
        self._variant = 0

        self.prompt_title = QLabel()
        self.prompt_model = TokenListModel(show_probability=False)
        self.prompt_view = _token_view(self.prompt_model)
        self.prompt_view.setObjectName("prompt_tokens")
        self.prompt_title.setBuddy(self.prompt_view)

        self.generated_title = QLabel()
        self.generated_model = TokenListModel(show_probability=True)
        self.generated_view = _token_view(self.generated_model)
        self.generated_view.setObjectName("generated_tokens")
        self.generated_title.setBuddy(self.generated_view)
        self.generated_view.selectionModel().currentChanged.connect(self._on_current_changed)
        self.generated_view.clicked.connect(self._on_clicked)

        self.alternatives_title = QLabel()
        self.alternatives = QTableWidget(0, 3)
        self.alternatives.setObjectName("alternatives")
        self.alternatives.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.alternatives.verticalHeader().hide()
        self.alternatives.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.alternatives_title.setBuddy(self.alternatives)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.prompt_title)
        top_layout.addWidget(self.prompt_view)
        middle = QWidget()
        middle_layout = QVBoxLayout(middle)
        middle_layout.setContentsMargins(0, 0, 0, 0)
        middle_layout.addWidget(self.generated_title)
        middle_layout.addWidget(self.generated_view)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.alternatives_title)
        bottom_layout.addWidget(self.alternatives)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(top)
        splitter.addWidget(middle)
        splitter.addWidget(bottom)
        splitter.setSizes([120, 220, 160])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(splitter)
        self.retranslate()

    # -- data ------------------------------------------------------------------------------------

    def set_prompt_tokens(self, pieces: list[TokenPiece]) -> None:
        self.prompt_model.set_items([TokenItem(p.id, p.text) for p in pieces])
        self._update_titles()

    def clear_generated(self) -> None:
        self._generated = {}
        self._variant = 0
        self.generated_model.set_items([])
        self._show_alternatives(None)
        self._update_titles()

    def add_generated_many(self, events: list[TokenEvent]) -> None:
        """Add a batch of tokens with one model update (cheaper than one insert per token)."""
        shown: list[TokenItem] = []
        for event in events:
            if event.token_id < 0:  # text released at the end without a token of its own
                continue
            item = TokenItem(event.token_id, event.piece, event.logprob, event.alternatives)
            self._generated.setdefault(event.sequence, []).append(item)
            if event.sequence == self._variant:
                shown.append(item)
        if shown:
            self.generated_model.extend(shown)
            self._update_titles()

    def show_variant(self, sequence: int) -> None:
        if sequence == self._variant:
            return
        self._variant = sequence
        self.generated_model.set_items(self._generated.get(sequence, []))
        self._show_alternatives(None)
        self._update_titles()

    def generated_items(self, sequence: int = 0) -> list[TokenItem]:
        return list(self._generated.get(sequence, []))

    # -- selection -------------------------------------------------------------------------------

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        item = current.data(_ITEM_ROLE) if current.isValid() else None
        self._show_alternatives(item if isinstance(item, TokenItem) else None)

    def _on_clicked(self, index: QModelIndex) -> None:
        item = index.data(_ITEM_ROLE)
        if isinstance(item, TokenItem):
            self._show_alternatives(item)

    def _show_alternatives(self, item: TokenItem | None) -> None:
        alternatives = item.alternatives if item is not None else ()
        self.alternatives.setRowCount(len(alternatives))
        for row, alt in enumerate(alternatives):
            cells = (visible(alt.text), str(alt.token_id), percent(math.exp(alt.logprob)))
            for column, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                if item is not None and alt.token_id == item.token_id:
                    font = cell.font()
                    font.setBold(True)
                    cell.setFont(font)
                cell.setBackground(shade(math.exp(alt.logprob)))
                cell.setForeground(QColor("#111111"))
                self.alternatives.setItem(row, column, cell)
        if item is not None:
            self.token_selected.emit(item)
        self._update_titles(item)

    # -- language --------------------------------------------------------------------------------

    def _update_titles(self, selected: TokenItem | None = None) -> None:
        self.prompt_title.setText(self.tr("Prompt tokens: {n}").format(n=len(self.prompt_model.items)))
        self.generated_title.setText(
            self.tr("Generated tokens: {n} (variant {k}); colour shows probability").format(
                n=len(self.generated_model.items), k=self._variant + 1
            )
        )
        if selected is None:
            self.alternatives_title.setText(self.tr("Top alternatives (click a generated token)"))
        else:
            self.alternatives_title.setText(
                self.tr("Top alternatives for “{piece}”").format(piece=visible(selected.piece))
            )

    def retranslate(self) -> None:
        labels = {"id": "id", "probability": self.tr("probability"), "alternatives": self.tr("alternatives")}
        self.prompt_model.labels = labels
        self.generated_model.labels = labels
        self.prompt_view.setAccessibleName(self.tr("Prompt tokens"))
        self.prompt_view.setAccessibleDescription(self.tr("Each token of the prompt with its id"))
        self.generated_view.setAccessibleName(self.tr("Generated tokens"))
        self.generated_view.setAccessibleDescription(
            self.tr("Each generated token shaded by its probability; select one to see the alternatives")
        )
        self.alternatives.setAccessibleName(self.tr("Top alternatives"))
        self.alternatives.setHorizontalHeaderLabels([self.tr("Token"), "id", self.tr("Probability")])
        self._update_titles()

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)
