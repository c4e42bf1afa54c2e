"""Runs inside desktop QGIS (``qgis --code desktop_canvas.py``): fuse, look at the map canvas, report as JSON.

tests/algorithms/test_desktop_canvas.py starts QGIS under Xvfb with this script and a job file named by
CSAKD_CANVAS_JOB: {"params": csakd:fuse parameters, "out_dir": folder for the screenshots and report.json}.
In the running desktop it calls ``processing.runAndLoadResults("csakd:fuse", ...)`` as the Python console
would, grabs the map canvas once the layer is drawn, then opens the output again in a new project (as a
drag and drop does) and grabs the canvas again. report.json says what each layer's renderer uses and where
the raster lies in the screenshots; the test checks them. QGIS quits when done.
"""

import json
import os
import sys
import traceback

from qgis.core import QgsApplication, QgsCoordinateTransform, QgsPointXY, QgsProject
from qgis.PyQt.QtCore import QEventLoop, QTimer
from qgis.utils import iface, plugins


def _wait_drawn(canvas, timeout_ms: int = 20000) -> None:
    """Refresh the canvas and wait until it has finished drawing."""
    loop = QEventLoop()
    canvas.mapCanvasRefreshed.connect(loop.quit)
    QTimer.singleShot(timeout_ms, loop.quit)
    canvas.refresh()
    loop.exec()
    canvas.mapCanvasRefreshed.disconnect(loop.quit)
    for _ in range(5):
        QgsApplication.processEvents()


def _shot(layer, png: str) -> dict:
    """Zoom the canvas to the layer, wait for the drawing, save the canvas as PNG; the layer's pixel box in it."""
    canvas = iface.mapCanvas()
    for _ in range(5):  # let the project take the layer's CRS before zooming
        QgsApplication.processEvents()

    def extent():
        crs = canvas.mapSettings().destinationCrs()
        return QgsCoordinateTransform(layer.crs(), crs, QgsProject.instance()).transformBoundingBox(layer.extent())

    canvas.setExtent(extent())
    _wait_drawn(canvas)
    canvas.grab().save(png, "PNG")
    m2p, box = canvas.mapSettings().mapToPixel(), extent()
    ul = m2p.transform(QgsPointXY(box.xMinimum(), box.yMaximum()))
    lr = m2p.transform(QgsPointXY(box.xMaximum(), box.yMinimum()))
    return {"png": png, "box": [ul.x(), ul.y(), lr.x(), lr.y()], "canvas_size": [canvas.width(), canvas.height()],
            "crs": canvas.mapSettings().destinationCrs().authid()}


def _describe(layer) -> dict:
    """What the layer's renderer draws: type, bands with their names, stretch limits, and the abstract."""
    renderer = layer.renderer()
    bands = list(renderer.usesBands())
    info = {"renderer": renderer.type(), "bands": bands, "band_names": [layer.bandName(b) for b in bands],
            "abstract": layer.metadata().abstract(), "source": layer.source()}
    if renderer.type() == "multibandcolor":
        enh = [renderer.redContrastEnhancement(), renderer.greenContrastEnhancement(),
               renderer.blueContrastEnhancement()]
        info["limits"] = [[e.minimumValue(), e.maximumValue()] for e in enh]
    return info


def main() -> None:
    job = json.load(open(os.environ["CSAKD_CANVAS_JOB"], encoding="utf-8"))
    out_dir = job["out_dir"]
    report = {"plugin_loaded": "csakd_qgis" in plugins,
              "plugin_file": getattr(sys.modules.get("csakd_qgis"), "__file__", None)}
    try:
        import processing

        iface.mainWindow().resize(1400, 900)
        QgsApplication.processEvents()
        report["results"] = {k: (v if isinstance(v, (int, float, str)) else str(v))
                             for k, v in processing.runAndLoadResults("csakd:fuse", dict(job["params"])).items()}
        layers = list(QgsProject.instance().mapLayers().values())
        report["loaded"] = _describe(layers[0]) if len(layers) == 1 else {"n_layers": len(layers)}
        report["loaded"].update(_shot(layers[0], os.path.join(out_dir, "canvas_after_fuse.png")))
        iface.mainWindow().grab().save(os.path.join(out_dir, "window_after_fuse.png"), "PNG")
        iface.newProject(False)  # a fresh project, then the file as a drag and drop opens it
        for _ in range(5):
            QgsApplication.processEvents()
        report["new_project_crs"] = QgsProject.instance().crs().authid()
        reopened = iface.addRasterLayer(report["results"]["OUTPUT"], "fused (reopened)")
        report["reopened"] = _describe(reopened)
        report["reopened"].update(_shot(reopened, os.path.join(out_dir, "canvas_reopened.png")))
        QgsProject.instance().setDirty(False)
    except Exception:  # noqa: BLE001 - reported to the test, which fails with it
        report["error"] = traceback.format_exc()
    with open(os.path.join(out_dir, "report.json"), "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    QgsApplication.exit(0)


QTimer.singleShot(0, main)  # inside the event loop, once the desktop has started
