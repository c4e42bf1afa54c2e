"""Plugins > CSAKD > Spectral profile: a dock panel and a map tool drawing the spectra under the cursor.

A click (or a move with Shift held) on the map draws, at that point, the spectrum of every visible raster
layer with band wavelengths, read through the layer's data provider (:mod:`gui.layer_spectrum`); profiles
can be pinned to compare places and the shown ones exported as CSV or PNG.
"""

from __future__ import annotations

import numpy as np
from qgis.core import QgsCoordinateReferenceSystem, QgsPointXY, QgsProject, QgsRasterLayer
from qgis.gui import QgsDockWidget, QgsMapCanvas, QgsMapMouseEvent, QgsMapTool
from qgis.PyQt.QtCore import QPointF, Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QCursor, QIcon, QPainter, QPainterPath, QPen, QPixmap
from qgis.PyQt.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

try:  # Qt 6 (QGIS 4) moved QAction to QtGui; Qt 5 has it in QtWidgets
    from qgis.PyQt.QtGui import QAction
except ImportError:
    from qgis.PyQt.QtWidgets import QAction

from csakd_qgis.algorithms.profile.layer_spectrum import OUTSIDE, LayerBands, Reading, read_spectrum
from csakd_qgis.algorithms.profile.profile_plot import COLOURS, Series, make_plot
from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.io import write_bytes_atomic
from csakd_qgis.raster.profiles import Profile, profiles_csv

PIN_LIMIT = 5  # pinned places kept; pinning one more drops the oldest
TITLE = "Spectral profile"


class ProfileMapTool(QgsMapTool):
    """Emits the map point of a left click, and of every move while Shift is held."""

    picked = pyqtSignal(QgsPointXY)

    def __init__(self, canvas: QgsMapCanvas) -> None:
        super().__init__(canvas)
        self.setCursor(QCursor(Qt.CursorShape.CrossCursor))

    def canvasReleaseEvent(self, e: QgsMapMouseEvent) -> None:  # noqa: N802 (QGIS API name)
        if e.button() == Qt.MouseButton.LeftButton:
            self.picked.emit(QgsPointXY(e.mapPoint()))

    def canvasMoveEvent(self, e: QgsMapMouseEvent) -> None:  # noqa: N802 (QGIS API name)
        if e.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.picked.emit(QgsPointXY(e.mapPoint()))


class ProfilePanel(QgsDockWidget):
    """The dock: plot, a status line per layer, the fusion info, pin / clear / export buttons."""

    def __init__(self, canvas: QgsMapCanvas, parent: QWidget | None = None, use_matplotlib: bool = True) -> None:
        super().__init__(TITLE, parent)
        self.setObjectName("CsakdSpectralProfile")
        self.canvas = canvas
        self.bands = LayerBands()
        self.colours: dict[str, str] = {}
        self.current: list[Profile] = []
        self.pins: list[list[Profile]] = []
        self.n_pinned = 0
        self.point: QgsPointXY | None = None
        body = QWidget()
        self.plot, note = make_plot(body, use_matplotlib)
        self.status, self.info, self.message, self.note = QLabel(), QLabel(), QLabel(), QLabel(note)
        for label in (self.status, self.info, self.message, self.note):
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.note.setVisible(bool(note))
        self.buttons = {key: QPushButton(text) for key, text in (
            ("pin", "Pin"), ("clear", "Clear pins"), ("csv", "Export CSV..."), ("png", "Export PNG..."))}
        self.buttons["pin"].clicked.connect(self.pin)
        self.buttons["clear"].clicked.connect(self.clear_pins)
        self.buttons["csv"].clicked.connect(lambda: self._ask_save("CSV", "CSV (*.csv)", self.export_csv))
        self.buttons["png"].clicked.connect(lambda: self._ask_save("PNG", "PNG image (*.png)", self.export_png))
        row = QHBoxLayout()
        for b in self.buttons.values():
            row.addWidget(b)
        lay = QVBoxLayout(body)
        lay.addWidget(self.plot, 1)
        for w in (self.status, self.info, self.message, self.note):
            lay.addWidget(w)
        lay.addLayout(row)
        self.setWidget(body)
        self.set_status("Click the map (or move with Shift held) to draw the spectra of the visible raster layers.")

    # ------------------------------------------------------------------------------------------ reading
    def layers(self) -> list[QgsRasterLayer]:
        """The visible raster layers of the canvas, top first."""
        return [lyr for lyr in self.canvas.layers() if isinstance(lyr, QgsRasterLayer)]

    def show_at(self, point: QgsPointXY, crs: QgsCoordinateReferenceSystem | None = None) -> list[Reading]:
        """Read and draw every visible raster layer's spectrum at ``point`` (canvas CRS unless ``crs``)."""
        crs = crs or self.canvas.mapSettings().destinationCrs()
        self.point = QgsPointXY(point)
        self.say("")
        where = f"{point.x():.2f}, {point.y():.2f} ({crs.authid() or 'map CRS'})"
        layers = self.layers()
        context = QgsProject.instance().transformContext()
        readings = [read_spectrum(lyr, point, crs, context, self.bands) for lyr in layers]
        self.current = [r.profile for r in readings if r.profile is not None]
        per_layer = False
        if not layers:
            head = "No visible raster layer: add the fused output or the LR-HSI to the map."
        elif all(r.reason == OUTSIDE for r in readings):
            head = f"Point {where} is outside every visible raster layer."
        else:
            head, per_layer = f"{'Spectra' if self.current else 'No spectrum'} at {where}:", True
        lines = [head]
        for r in readings if per_layer else ():
            if r.profile is not None:
                gaps = int(np.isnan(r.profile.values).sum())
                lines.append(f"{r.layer}: pixel (row {r.pixel[0]}, col {r.pixel[1]}), {len(r.profile.values)} "
                             f"bands, {gaps} gap(s) (bad bands / nodata)")
            elif not (self.current and r.reason == OUTSIDE):
                lines.append(f"{r.layer}: {r.reason}.")
        self.set_status("\n".join(lines))
        info = [(lyr.name(), self.bands.fusion_line(lyr)) for lyr, r in zip(layers, readings, strict=True)
                if r.profile is not None]
        self.info.setText("\n".join(f"{name}: {text}" for name, text in info if text))
        self.info.setVisible(bool(self.info.text()))
        self.redraw()
        return readings

    def set_status(self, text: str) -> None:
        """Show ``text`` (one line per layer) under the plot."""
        self.status.setText(text)

    def say(self, text: str) -> None:
        """Show the outcome of a button (pin, export) on its own line."""
        self.message.setText(text)
        self.message.setVisible(bool(text))

    # ------------------------------------------------------------------------------------------ pins
    def pin(self) -> None:
        """Keep the current profiles drawn (up to PIN_LIMIT places; the oldest goes first)."""
        if not self.current:
            self.say("Nothing to pin: click the map on a raster layer first.")
            return
        self.n_pinned += 1
        self.pins.append([Profile(p.layer, p.x, p.y, p.wavelengths, p.values, p.as_points, self.n_pinned)
                          for p in self.current])
        dropped = self.pins[:-PIN_LIMIT]
        del self.pins[:-PIN_LIMIT]
        self.say(f"Pinned as pin {self.n_pinned}" + (f" (pin {dropped[0][0].pin} dropped: {PIN_LIMIT} pins at most)."
                                                      if dropped else "."))
        self.redraw()

    def clear_pins(self) -> None:
        """Forget the pinned profiles."""
        self.pins.clear()
        self.say("Pins cleared.")
        self.redraw()

    def shown(self) -> list[Profile]:
        """Every profile drawn: the current ones, then the pinned ones."""
        return self.current + [p for group in self.pins for p in group]

    def colour(self, layer: str) -> str:
        """One colour per layer name, kept for the session."""
        if layer not in self.colours:
            self.colours[layer] = COLOURS[len(self.colours) % len(COLOURS)]
        return self.colours[layer]

    def redraw(self) -> None:
        """Draw :meth:`shown` (pins in their own line style, in pinning order)."""
        order = {group[0].pin: k + 1 for k, group in enumerate(self.pins)}
        series = [Series(p.label, p.wavelengths, p.values, self.colour(p.layer), order.get(p.pin, 0), p.as_points)
                  for p in self.shown()]
        title = "" if self.point is None else f"x {self.point.x():.1f}, y {self.point.y():.1f}"
        self.plot.draw_series(series, title)

    def plotted(self) -> dict:
        """label -> (wavelengths, values) as the plot holds them."""
        return self.plot.plotted()

    # ------------------------------------------------------------------------------------------ export
    def export_csv(self, path: str) -> bool:
        """Write the shown profiles as CSV (wavelength + one column per profile); False, with a line, if not."""
        return self._export(path, "CSV", lambda: profiles_csv(self.shown()).encode("utf-8"))

    def export_png(self, path: str) -> bool:
        """Write the plot as PNG; False, with a line, if not."""
        return self._export(path, "PNG", self.plot.png_bytes)

    def _export(self, path: str, kind: str, data) -> bool:
        if not self.shown():
            self.say(f"Nothing to export as {kind}: click the map on a raster layer first.")
            return False
        try:
            write_bytes_atomic(path, data(), f"spectral profile {kind}")
        except CsakdError as exc:
            self.say(str(exc))
            return False
        self.say(f"{len(self.shown())} profile(s) written to {path}.")
        return True

    def _ask_save(self, kind: str, filt: str, export) -> None:
        path, _ = QFileDialog.getSaveFileName(self, f"Export spectral profiles as {kind}", "", filt)
        if path:
            export(path)


def profile_icon() -> QIcon:
    """A small spectrum curve on white, drawn here so the plugin ships no extra image."""
    pix = QPixmap(32, 32)
    pix.fill(QColor("white"))
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QPen(QColor("#555555"), 1.5))
    p.drawLine(QPointF(4, 28), QPointF(30, 28))
    p.drawLine(QPointF(4, 28), QPointF(4, 3))
    path = QPainterPath(QPointF(5, 24))
    for x, y in ((9, 22), (12, 23), (15, 20), (17, 8), (21, 6), (24, 10), (26, 9), (29, 14)):
        path.lineTo(QPointF(x, y))
    p.setPen(QPen(QColor("#2e7d32"), 2.2))
    p.drawPath(path)
    p.end()
    return QIcon(pix)


class SpectralProfile:
    """The menu / toolbar action, the panel and the map tool, created on first use."""

    def __init__(self, iface, menu: str) -> None:
        self.iface, self.menu = iface, menu
        self.action = QAction(profile_icon(), TITLE, iface.mainWindow())
        self.action.setCheckable(True)
        self.action.setToolTip("Spectral profile: click the map to draw the spectra of the visible raster layers")
        self.action.triggered.connect(self.activate)
        iface.addPluginToMenu(menu, self.action)
        iface.addToolBarIcon(self.action)
        self.panel: ProfilePanel | None = None
        self.tool: ProfileMapTool | None = None

    def activate(self) -> None:
        """Show the panel and make the profile tool the canvas's map tool."""
        canvas = self.iface.mapCanvas()
        if self.panel is None:
            self.panel = ProfilePanel(canvas, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.panel)
            self.tool = ProfileMapTool(canvas)
            self.tool.setAction(self.action)
            self.tool.picked.connect(self.panel.show_at)
            self.panel.closed.connect(self.release_tool)
        self.panel.show()
        self.panel.raise_()
        canvas.setMapTool(self.tool)
        self.action.setChecked(True)

    def release_tool(self) -> None:
        """The panel was closed: the canvas goes back to the pan tool."""
        canvas = self.iface.mapCanvas()
        if self.tool is not None and canvas.mapTool() is self.tool:
            self.iface.actionPan().trigger()
            if canvas.mapTool() is self.tool:
                canvas.unsetMapTool(self.tool)

    def unload(self) -> None:
        """Remove the action, the tool and the panel."""
        self.release_tool()
        self.iface.removePluginMenu(self.menu, self.action)
        self.iface.removeToolBarIcon(self.action)
        if self.panel is not None:
            self.iface.removeDockWidget(self.panel)
            self.panel.deleteLater()
        self.panel = self.tool = None


__all__ = ["PIN_LIMIT", "ProfileMapTool", "ProfilePanel", "SpectralProfile", "profile_icon"]
