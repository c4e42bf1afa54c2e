"""Runs inside desktop QGIS (``qgis --code desktop_profile.py``): the spectral profile tool clicked on the map.

tests/gui/test_desktop_profile.py starts QGIS under Xvfb with this script and a job file named by
CSAKD_CANVAS_JOB: {"layers": [[path, name], ...], "clicks": {name: [x, y] in the first layer's CRS},
"only_visible": layer name, "out_dir": folder}. The script loads the layers, starts Plugins > CSAKD >
Spectral profile through its action, clicks the canvas (a real mouse click on the canvas viewport for the
first point, the map tool's release handler with a QgsMapMouseEvent for the others), and reports per click
the panel's lines and the arrays its plot holds; it pins, exports CSV and PNG, grabs the panel, draws the
same point in a panel without matplotlib, and reports every message QGIS logged. QGIS quits when done.
"""

import json
import math
import os
import sys
import traceback

from qgis.core import Qgis, QgsApplication, QgsPointXY, QgsProject
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QEventLoop, QPoint, Qt, QTimer
from qgis.PyQt.QtTest import QTest
from qgis.utils import iface, plugins

LOG: list[list] = []
ERRORS: list[str] = []


def _log(message, tag, level) -> None:
    LOG.append([tag, int(level), message])


def _excepthook(kind, value, tb) -> None:
    """Python errors raised in Qt callbacks (the map tool's events, the buttons) go here, not to a dialog."""
    ERRORS.append("".join(traceback.format_exception(kind, value, tb)))


def _pump(n: int = 10) -> None:
    for _ in range(n):
        QgsApplication.processEvents()


def _wait_drawn(canvas, timeout_ms: int = 20000) -> None:
    loop = QEventLoop()
    canvas.mapCanvasRefreshed.connect(loop.quit)
    QTimer.singleShot(timeout_ms, loop.quit)
    canvas.refresh()
    loop.exec()
    canvas.mapCanvasRefreshed.disconnect(loop.quit)
    _pump()


def _plotted(panel) -> dict:
    out = {}
    for label, (x, y) in panel.plotted().items():
        out[label] = {"x": [float(v) for v in x], "y": [None if math.isnan(v) else float(v) for v in y]}
    return out


def _state(panel) -> dict:
    return {"status": panel.status.text(), "info": panel.info.text(), "message": panel.message.text(),
            "plotted": _plotted(panel),
            "point": None if panel.point is None else [panel.point.x(), panel.point.y()]}


def main() -> None:
    job = json.load(open(os.environ["CSAKD_CANVAS_JOB"], encoding="utf-8"))
    out_dir = job["out_dir"]
    report = {"plugin_loaded": "csakd_qgis" in plugins}
    QgsApplication.messageLog().messageReceived.connect(_log)
    sys.excepthook = _excepthook
    try:
        iface.mainWindow().resize(1500, 950)
        layers = [iface.addRasterLayer(path, name) for path, name in job["layers"]]
        report["valid"] = [lyr.isValid() for lyr in layers]
        canvas = iface.mapCanvas()
        _pump()
        canvas.setExtent(layers[0].extent())
        _wait_drawn(canvas)
        prof = plugins["csakd_qgis"].profile
        menu_actions = [a.text() for m in iface.pluginMenu().actions() if m.menu()
                        for a in m.menu().actions()]
        report["menu"] = menu_actions
        prof.action.trigger()
        _pump()
        panel, tool = prof.panel, prof.tool
        report["tool_active"] = canvas.mapTool() is tool and prof.action.isChecked()
        report["panel_visible"] = panel.isVisible()
        report["matplotlib"] = type(panel.plot).__name__
        m2p = canvas.mapSettings().mapToPixel()
        report["clicks"] = {}
        for k, (name, (x, y)) in enumerate(job["clicks"].items()):
            px = m2p.transform(QgsPointXY(x, y))
            pos = QPoint(int(round(px.x())), int(round(px.y())))
            if k == 0:  # a real mouse click on the canvas
                QTest.mouseClick(canvas.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)
            else:
                tool.canvasReleaseEvent(QgsMapMouseEvent(canvas, QEvent.Type.MouseButtonRelease, pos,
                                                         Qt.MouseButton.LeftButton))
            _pump()
            report["clicks"][name] = _state(panel)
            if k == 0:
                panel.pin()
                panel.grab().save(os.path.join(out_dir, "panel_first.png"), "PNG")
        # a Shift move draws too; then a second place beside the pinned first one, exported and grabbed
        first = next(iter(job["clicks"].values()))
        px = m2p.transform(QgsPointXY(*first))
        pos = QPoint(int(round(px.x())) + 1, int(round(px.y())))
        tool.canvasMoveEvent(QgsMapMouseEvent(canvas, QEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton,
                                              Qt.MouseButton.NoButton, Qt.KeyboardModifier.ShiftModifier))
        report["shift_move_point"] = [panel.point.x(), panel.point.y()]
        panel.show_at(QgsPointXY(*job["second"]))
        report["final"] = _state(panel)
        report["csv_ok"] = panel.export_csv(os.path.join(out_dir, "profiles.csv"))
        report["png_ok"] = panel.export_png(os.path.join(out_dir, "profiles.png"))
        report["after_export"] = panel.message.text()
        panel.setFloating(True)
        panel.resize(760, 640)
        _pump()
        panel.grab().save(os.path.join(out_dir, "panel.png"), "PNG")
        bad = os.path.join(out_dir, "missing_folder", "profiles.csv")
        report["export_bad"] = [panel.export_csv(bad), panel.message.text(), os.path.exists(bad)]
        panel.setFloating(False)
        _pump()
        iface.mainWindow().grab().save(os.path.join(out_dir, "window.png"), "PNG")
        # only the layer without wavelengths visible
        root = QgsProject.instance().layerTreeRoot()
        for lyr in layers:
            root.findLayer(lyr.id()).setItemVisibilityChecked(lyr.name() == job["only_visible"])
        _pump()
        panel.show_at(QgsPointXY(*first))
        report["only_no_wavelengths"] = _state(panel)
        for lyr in layers:
            root.findLayer(lyr.id()).setItemVisibilityChecked(False)
        _pump()
        panel.show_at(QgsPointXY(*first))
        report["none_visible"] = _state(panel)
        for lyr in layers:
            root.findLayer(lyr.id()).setItemVisibilityChecked(True)
        _pump()
        # the same point in a panel drawn without matplotlib
        from csakd_qgis.algorithms.profile.profile_panel import ProfilePanel

        plain = ProfilePanel(canvas, iface.mainWindow(), use_matplotlib=False)
        plain.setFloating(True)
        plain.resize(760, 640)
        plain.show()
        plain.show_at(QgsPointXY(*job["second"]))
        _pump()
        plain.grab().save(os.path.join(out_dir, "panel_plain.png"), "PNG")
        report["plain"] = {**_state(plain), "widget": type(plain.plot).__name__, "note": plain.note.text()}
        for _ in range(6):
            plain.pin()
        report["plain_pins"] = [group[0].pin for group in plain.pins]
        report["plain_pin_message"] = plain.message.text()
        plain.close()
        panel.close()
        _pump()
        report["closed_releases_tool"] = canvas.mapTool() is not tool and not prof.action.isChecked()
        prof.action.trigger()
        _pump()
        report["reopened"] = panel.isVisible() and canvas.mapTool() is tool
        prof.unload()
        report["unloaded"] = prof.panel is None and canvas.mapTool() is not tool
        QgsProject.instance().setDirty(False)
    except Exception:  # noqa: BLE001 - reported to the test, which fails with it
        report["error"] = traceback.format_exc()
    report["log"], report["errors"] = list(LOG), list(ERRORS)
    # the check of the check: an exception raised in a Qt callback is caught by it
    QTimer.singleShot(0, lambda: 1 / 0)
    _pump(20)
    report["probe"] = ERRORS[len(report["errors"]):]
    report["critical"] = [m for m in report["log"] if m[1] >= int(Qgis.Critical) or "Traceback" in m[2]
                          or m[0] == "Python error"]
    with open(os.path.join(out_dir, "report.json"), "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    sys.stdout.flush()
    QgsApplication.exit(0)


QTimer.singleShot(0, main)  # inside the event loop, once the desktop has started
