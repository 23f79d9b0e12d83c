"""The lab's charts (pyqtgraph, see docs/lab.md): next-token bars and the explorer's heat map; PNG and SVG export."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")  # never another Qt binding that happens to be installed

import numpy as np
import pyqtgraph as pg
import pyqtgraph.exporters as pg_exporters
from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics
from PySide6.QtWidgets import QVBoxLayout, QWidget

from gptdesk.errors import InvalidInputError
from gptdesk.i18n import Text
from gptdesk.lab.nextview import NextTokenView

RAW_COLOR = QColor("#9aa5b1")  # raw probability: grey
FINAL_COLOR = QColor("#1f6feb")  # after the settings: blue
CUT_COLOR = QColor("#e5534b")  # a token the settings cut or ban: red outline
FORMATS = ("png", "svg")


def _visible(piece: str) -> str:
    if piece == "":
        return "∅"
    return piece.replace(" ", "·").replace("\n", "↵").replace("\t", "→")


class _Chart(QWidget):
    """A pyqtgraph plot in a widget, exportable to PNG and SVG."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # reachable by Tab, so a screen reader names it
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def export(self, path: Path) -> Path:
        """Save the chart as PNG or SVG, by the file's suffix."""
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in FORMATS:
            raise InvalidInputError(
                Text(
                    f"Cannot save a chart as '{path.suffix or path.name}': use a .png or .svg file name.",
                    f"Нельзя сохранить график как «{path.suffix or path.name}»: укажите имя файла .png или .svg.",
                )
            )
        item = self.plot.getPlotItem()
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "png":
            exporter: Any = pg_exporters.ImageExporter(item)
            exporter.parameters()["width"] = max(int(item.sceneBoundingRect().width()), 900)
            exporter.export(str(path))
            return path
        # pyqtgraph's SVGExporter cannot parse the path data Qt 6.11 writes (pyqtgraph issue #3485:
        # "ValueError: not enough values to unpack" in correctCoordinates), so the scene is painted
        # straight into Qt's own SVG generator: still vectors, text stays text.
        from PySide6.QtCore import QRectF, QSize
        from PySide6.QtGui import QPainter
        from PySide6.QtSvg import QSvgGenerator

        source = item.sceneBoundingRect()
        generator = QSvgGenerator()
        generator.setFileName(str(path))
        generator.setSize(QSize(int(source.width()), int(source.height())))
        generator.setViewBox(QRectF(0, 0, source.width(), source.height()))
        generator.setTitle(self.accessibleName() or self.objectName())
        painter = QPainter(generator)
        try:
            self.plot.scene().render(painter, QRectF(0, 0, source.width(), source.height()), source)
        finally:
            painter.end()
        return path


class NextTokenChart(_Chart):
    """Top candidates as bars: raw probability beside the probability after the settings, with the top-k and
    top-p cut-offs drawn as vertical lines and cut tokens outlined in red."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("next_token_chart")
        self.plot.showGrid(y=True, alpha=0.3)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.tick_font = QFont("DejaVu Sans", 8)
        self.plot.getAxis("bottom").setStyle(tickFont=self.tick_font)
        # Each candidate's label as drawn: elided to its bar's slot, so none is dropped or overlaps.
        self.tick_labels: list[str] = []
        self.plot.getViewBox().sigResized.connect(self._set_ticks)
        self.legend = self.plot.addLegend(offset=(-10, 10))
        # The items are made once and updated in place: rebuilding them cost more than the figures.
        width = 0.4
        self.raw_bars = pg.BarGraphItem(x=[], height=[], width=width, brush=RAW_COLOR, pen=RAW_COLOR)
        self.final_bars = pg.BarGraphItem(x=[], height=[], width=width, brush=FINAL_COLOR, pen=FINAL_COLOR)
        self.cut_marks = pg.ScatterPlotItem(symbol="x", size=9, pen=pg.mkPen(CUT_COLOR, width=2), brush=CUT_COLOR)
        self.lines: dict[str, pg.InfiniteLine] = {}
        for item in (self.raw_bars, self.final_bars, self.cut_marks):
            self.plot.addItem(item)
        for name in ("top-k", "top-p"):
            line = pg.InfiniteLine(
                pos=0,
                angle=90,
                pen=pg.mkPen(CUT_COLOR, width=2, style=Qt.PenStyle.DashLine),
                label=name,
                labelOpts={"position": 0.92, "color": CUT_COLOR, "fill": (255, 255, 255, 200)},
            )
            line.setVisible(False)
            self.plot.addItem(line)
            self.lines[name] = line
        self.view: NextTokenView | None = None
        self.retranslate()

    def retranslate(self) -> None:
        self.legend.clear()
        self.legend.addItem(self.raw_bars, QCoreApplication.translate("LabChart", "raw (temperature 1, nothing cut)"))
        self.legend.addItem(self.final_bars, QCoreApplication.translate("LabChart", "after the settings"))
        self.plot.setLabel("left", QCoreApplication.translate("LabChart", "probability"))

    def set_view(self, view: NextTokenView) -> None:
        self.view = view
        self._draw()

    def _draw(self) -> None:
        view = self.view
        if view is None:
            return
        n = len(view.candidates)
        x = np.arange(n, dtype=float)
        raw = np.array([c.raw for c in view.candidates])
        final = np.array([c.final for c in view.candidates])
        cut = np.array([c.status != "kept" for c in view.candidates], dtype=bool)
        width = 0.4
        self.raw_bars.setOpts(
            x=x - width / 2,
            height=raw,
            width=width,
            pens=[pg.mkPen(CUT_COLOR if c else RAW_COLOR, width=2 if c else 1) for c in cut],
        )
        self.final_bars.setOpts(x=x + width / 2, height=final, width=width)
        top = float(max(raw.max(initial=0), final.max(initial=0), 0.05)) * 1.12
        self.cut_marks.setData(x=x[cut] + width / 2, y=np.full(int(cut.sum()), top * 0.015))
        for rank, name in ((view.top_k_rank, "top-k"), (view.top_p_rank, "top-p")):
            line = self.lines[name]
            line.setVisible(rank is not None and 0 < rank <= n)
            if rank is not None:
                line.setPos(rank - 0.5)
        self.plot.setXRange(-0.7, max(n, 1) - 0.3, padding=0)
        self.plot.setYRange(0, top, padding=0)
        self._set_ticks()

    def slot_pixels(self) -> float:
        """The width of one candidate's slot on screen (the x range spans n + 0.4 slots)."""
        n = len(self.view.candidates) if self.view is not None else 0
        width = self.plot.getViewBox().width() or self.width() * 0.85
        return float(width) / (max(n, 1) + 0.4)

    def _set_ticks(self, *_args: object) -> None:
        """Label every bar: a label wider than its slot is elided (pyqtgraph drops labels that cross
        the axis's ends and draws overlapping ones over each other)."""
        if self.view is None:
            return
        metrics = QFontMetrics(self.tick_font)
        room = max(int(self.slot_pixels() * 0.92), metrics.horizontalAdvance("W…"))
        self.tick_labels = [
            metrics.elidedText(_visible(c.piece), Qt.TextElideMode.ElideRight, room) for c in self.view.candidates
        ]
        self.plot.getAxis("bottom").setTicks([list(enumerate(self.tick_labels))])


class HeatMapChart(_Chart):
    """One measure over the explorer's grid: rows are the first swept setting's values, columns the second's."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("heat_map_chart")
        self.image = pg.ImageItem()
        self.plot.addItem(self.image)
        self.plot.invertY(True)
        self.plot.setAspectLocked(False)
        self._labels: list[pg.TextItem] = []
        self.values: np.ndarray[Any, np.dtype[np.float64]] = np.zeros((0, 0))

    def set_grid(
        self,
        values: np.ndarray[Any, np.dtype[np.float64]],
        rows: list[str],
        columns: list[str],
        title: str,
        higher_is_better: bool | None,
    ) -> None:
        """`values[row, column]`, NaN for a cell without a figure (not run, or stopped)."""
        self.values = values
        for label in self._labels:
            self.plot.removeItem(label)
        self._labels = []
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi == lo:
            hi = lo + 1.0
        # Green is better: red-yellow-green when higher is better, reversed when lower is.
        colors = ["#f8d7da", "#fff3cd", "#d1e7dd"]
        if higher_is_better is False:
            colors.reverse()
        if higher_is_better is None:
            colors = ["#e7f0fd", "#9ec5fe", "#3d8bfd"]
        cmap = pg.ColorMap(pos=[0.0, 0.5, 1.0], color=[QColor(c) for c in colors])
        shown = np.where(np.isfinite(values), values, lo)
        # ImageItem indexes [x, y]: transpose so that columns run along x.
        self.image.setImage(shown.T, levels=(lo, hi), lut=cmap.getLookupTable(nPts=256))
        for r in range(values.shape[0]):
            for c in range(values.shape[1]):
                v = values[r, c]
                text = "—" if not np.isfinite(v) else (f"{v:.2f}" if abs(v) < 10 else f"{v:.0f}")
                label = pg.TextItem(text, color="#111111", anchor=(0.5, 0.5))
                label.setPos(c + 0.5, r + 0.5)
                self.plot.addItem(label)
                self._labels.append(label)
        self.plot.getAxis("bottom").setTicks([[(c + 0.5, name) for c, name in enumerate(columns)]])
        self.plot.getAxis("left").setTicks([[(r + 0.5, name) for r, name in enumerate(rows)]])
        self.plot.setTitle(title, color="#111111")
        self.plot.setXRange(0, max(values.shape[1], 1), padding=0.02)
        self.plot.setYRange(0, max(values.shape[0], 1), padding=0.02)


def export_view(view: NextTokenView, path: Path) -> Path:
    """Draw a next-token view off screen and save it (for `gptdesk next --png/--svg`)."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # a terminal needs no display for a file
        os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")  # nor the offscreen platform's chatter
        app = QApplication([])
    chart = NextTokenChart()
    chart.resize(1200, 500)
    chart.set_view(view)
    chart.show()
    app.processEvents()
    try:
        return chart.export(path)
    finally:
        chart.close()
        chart.deleteLater()
        app.processEvents()
