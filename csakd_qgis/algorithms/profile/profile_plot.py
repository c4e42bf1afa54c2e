"""The plot of the spectral profile panel: matplotlib in Qt when it imports, else a plain QPainter plot.

Both draw reflectance over wavelength (nm), NaN as gaps, one colour per layer, one line style per pin, a
legend with the layer names; both give back what they drew (:meth:`plotted`) and a PNG of it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from qgis.PyQt.QtCore import QBuffer, QByteArray, QIODevice, QPointF, QRectF, Qt
from qgis.PyQt.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from qgis.PyQt.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f",
           "#bcbd22")
MPL_STYLES = ("-", "--", ":", "-.", (0, (6, 2)), (0, (3, 1, 1, 1)))  # the current point, then pins 1..5
QT_STYLES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine,
             Qt.PenStyle.DashDotDotLine, Qt.PenStyle.DashLine)
X_LABEL, Y_LABEL = "Wavelength (nm)", "Reflectance"
PNG_INCHES = (8.0, 4.5)


@dataclass
class Series:
    """One curve to draw: legend label, wavelengths, values (NaN = gap), colour, line style index, points?"""

    label: str
    x: np.ndarray
    y: np.ndarray
    colour: str
    style: int = 0
    points: bool = False


class MplPlot(QWidget):
    """matplotlib figure embedded with the Qt Agg canvas (works with PyQt5 and PyQt6)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        try:
            from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        except ImportError:  # matplotlib < 3.5 has only the Qt5 module
            from matplotlib.backends.backend_qt5agg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        super().__init__(parent)
        self.figure = Figure(figsize=(5.5, 3.4), dpi=100, constrained_layout=True)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.canvas)
        self.ax = self.figure.add_subplot()
        self.draw_series([], "")

    def draw_series(self, series: Sequence[Series], title: str) -> None:
        """Redraw the axes with ``series``."""
        ax = self.ax
        ax.clear()
        for s in series:
            style = MPL_STYLES[s.style % len(MPL_STYLES)]
            if s.points:
                ax.plot(s.x, s.y, linestyle="none", marker="os^Dvp"[s.style % 6], markersize=6, color=s.colour,
                        label=s.label)
            else:
                ax.plot(s.x, s.y, linestyle=style, linewidth=1.3, color=s.colour, label=s.label)
        ax.set_xlabel(X_LABEL)
        ax.set_ylabel(Y_LABEL)
        ax.set_title(title, fontsize=9)
        ax.grid(True, alpha=0.3)
        if series:
            ax.legend(fontsize=7, loc="best")
        self.canvas.draw()

    def plotted(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """label -> (x, y) of every curve on the axes, as matplotlib holds them."""
        return {ln.get_label(): (np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float))
                for ln in self.ax.get_lines()}

    def png_bytes(self) -> bytes:
        """The figure as PNG, 8 x 4.5 inches whatever the panel's size."""
        buf = io.BytesIO()
        size = self.figure.get_size_inches()
        try:
            self.figure.set_size_inches(*PNG_INCHES, forward=False)
            self.figure.savefig(buf, format="png", dpi=150)
        finally:
            self.figure.set_size_inches(*size, forward=False)
            self.canvas.draw_idle()
        return buf.getvalue()


def nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """About ``n`` round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step + 1e-9) + 1)]


class PainterPlot(QWidget):
    """A plain plot drawn with QPainter, for a QGIS whose Python has no matplotlib."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.series: list[Series] = []
        self.title = ""
        self.setMinimumSize(320, 220)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def draw_series(self, series: Sequence[Series], title: str) -> None:
        """Keep ``series`` and repaint."""
        self.series, self.title = list(series), title
        self.update()

    def plotted(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """label -> (x, y) of every curve drawn."""
        return {s.label: (np.asarray(s.x, float), np.asarray(s.y, float)) for s in self.series}

    def png_bytes(self) -> bytes:
        """The widget as PNG."""
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        self.grab().save(buf, "PNG")
        buf.close()
        return bytes(data)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API name)
        """Axes with ticks, the curves broken at NaN, points as circles, a legend."""
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("white"))
        font = QFont(p.font())
        font.setPointSizeF(8.0)
        p.setFont(font)
        left, top, right, bottom = 56.0, 22.0, 10.0, 36.0
        box = QRectF(left, top, max(self.width() - left - right, 10.0), max(self.height() - top - bottom, 10.0))
        xs = np.concatenate([s.x[np.isfinite(s.y)] for s in self.series]) if self.series else np.array([])
        ys = np.concatenate([s.y[np.isfinite(s.y)] for s in self.series]) if self.series else np.array([])
        x0, x1 = (float(xs.min()), float(xs.max())) if xs.size else (400.0, 2500.0)
        y0, y1 = (min(0.0, float(ys.min())), float(ys.max()) * 1.05) if ys.size else (0.0, 1.0)
        x1, y1 = (x1 if x1 > x0 else x0 + 1.0), (y1 if y1 > y0 else y0 + 1.0)

        def to_px(x: float, y: float) -> QPointF:
            return QPointF(box.left() + (x - x0) / (x1 - x0) * box.width(),
                           box.bottom() - (y - y0) / (y1 - y0) * box.height())

        p.setPen(QPen(QColor("#444444"), 1.0))
        p.drawRect(box)
        for t in nice_ticks(x0, x1):
            q = to_px(t, y0)
            p.drawLine(q, QPointF(q.x(), q.y() + 4))
            p.drawText(QRectF(q.x() - 30, q.y() + 5, 60, 14), Qt.AlignmentFlag.AlignCenter, f"{t:g}")
        for t in nice_ticks(y0, y1):
            q = to_px(x0, t)
            p.drawLine(q, QPointF(q.x() - 4, q.y()))
            p.drawText(QRectF(0, q.y() - 7, left - 6, 14),
                       Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, f"{t:.3g}")
        p.drawText(QRectF(box.left(), box.bottom() + 18, box.width(), 16), Qt.AlignmentFlag.AlignCenter, X_LABEL)
        p.drawText(QRectF(box.left(), 2, box.width(), 18), Qt.AlignmentFlag.AlignCenter, self.title)
        p.save()
        p.translate(10, box.center().y())
        p.rotate(-90)
        p.drawText(QRectF(-60, -8, 120, 16), Qt.AlignmentFlag.AlignCenter, Y_LABEL)
        p.restore()
        p.setClipRect(box)
        for s in self.series:
            pen = QPen(QColor(s.colour), 1.4)
            pen.setStyle(QT_STYLES[s.style % len(QT_STYLES)])
            p.setPen(pen)
            if s.points:
                p.setBrush(QColor(s.colour))
                for x, y in zip(s.x, s.y, strict=True):
                    if np.isfinite(y):
                        p.drawEllipse(to_px(float(x), float(y)), 3.5, 3.5)
                continue
            path, pen_down = QPainterPath(), False
            for x, y in zip(s.x, s.y, strict=True):
                if not np.isfinite(y):
                    pen_down = False
                    continue
                q = to_px(float(x), float(y))
                path.lineTo(q) if pen_down else path.moveTo(q)
                pen_down = True
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawPath(path)
        p.setClipping(False)
        metrics = p.fontMetrics()
        text_w = max((metrics.horizontalAdvance(s.label) for s in self.series), default=0) + 4
        row_h = metrics.height() + 2
        for k, s in enumerate(self.series):  # legend, top right inside the axes
            y = box.top() + 4 + row_h * k
            x = box.right() - text_w - 30
            pen = QPen(QColor(s.colour), 2.0)
            pen.setStyle(QT_STYLES[s.style % len(QT_STYLES)])
            p.setPen(pen)
            if s.points:
                p.setBrush(QColor(s.colour))
                p.drawEllipse(QPointF(x + 10, y + row_h / 2), 3.5, 3.5)
            else:
                p.drawLine(QPointF(x, y + row_h / 2), QPointF(x + 20, y + row_h / 2))
            p.setPen(QPen(QColor("#222222")))
            p.drawText(QRectF(x + 24, y, text_w, row_h),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, s.label)
        p.end()


def make_plot(parent: QWidget | None = None, use_matplotlib: bool = True) -> tuple[QWidget, str]:
    """The plot widget and a note ("" with matplotlib; why not otherwise)."""
    if use_matplotlib:
        try:
            return MplPlot(parent), ""
        except ImportError as exc:
            note = f"matplotlib is not available in QGIS's Python ({exc}): a simple plot is drawn instead."
    else:
        note = "matplotlib switched off: a simple plot is drawn instead."
    return PainterPlot(parent), note


__all__ = ["COLOURS", "MplPlot", "PainterPlot", "Series", "make_plot", "nice_ticks"]
