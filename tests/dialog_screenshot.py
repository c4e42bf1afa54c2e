"""Screenshot of the Processing dialog of an algorithm, as the QGIS desktop shows it (GUI-enabled subprocess).

The pytest suite runs QGIS with the GUI disabled, so tests/test_algorithms.py runs this script in a
separate process:

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/dialog_screenshot.py csakd:fuse out.png [KEY=VALUE ...]

It starts a GUI QgsApplication (offscreen platform: real widgets, no display needed), initialises
Processing and registers this checkout's provider, builds QGIS's own ``AlgorithmDialog`` (what the
toolbox opens), pre-fills the KEY=VALUE parameters, grabs the widget into a PNG and prints one JSON line
describing what the dialog shows (parameter labels, help text) so the caller can check it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    alg_id, png = argv[0], Path(argv[1])
    params = dict(a.split("=", 1) for a in argv[2:])
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")
    os.makedirs(os.environ["XDG_RUNTIME_DIR"], mode=0o700, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    sys.path.append("/usr/share/qgis/python/plugins")

    from qgis.core import QgsApplication

    app = QgsApplication([], True)  # GUI enabled: widgets can be created and painted
    app.initQgis()
    from processing.core.Processing import Processing
    from processing.gui.AlgorithmDialog import AlgorithmDialog
    from qgis.gui import QgsCollapsibleGroupBox
    from qgis.PyQt import sip
    from qgis.PyQt.QtWidgets import QGroupBox, QLabel, QSplitter, QTextBrowser

    Processing.initialize()
    from csakd_qgis.plugin import CsakdPlugin

    plugin = CsakdPlugin(None)
    plugin.initProcessing()
    alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
    if alg is None:
        print(f"algorithm {alg_id} is not registered", file=sys.stderr)
        return 1
    dlg = AlgorithmDialog(alg)
    dlg.setParameters(params)
    dlg.show()
    dlg.resize(1200, 900)  # after show(): the dialog restores its saved geometry when shown
    for box in dlg.findChildren(QGroupBox, "grpAdvanced"):  # a QgsCollapsibleGroupBox: show the advanced options
        sip.cast(box, QgsCollapsibleGroupBox).setCollapsed(False)
    for splitter in dlg.findChildren(QSplitter):  # give the help text a readable width
        if splitter.count() == 2:
            splitter.setSizes([720, 480])
    for _ in range(20):  # let the help browser and the layer combos lay out and paint
        app.processEvents()
    png.parent.mkdir(parents=True, exist_ok=True)
    ok = dlg.grab().save(str(png), "PNG")
    labels = [w.text() for w in dlg.findChildren(QLabel) if w.isVisible() and w.text().strip()]
    help_text = " ".join(w.toPlainText() for w in dlg.findChildren(QTextBrowser) if w.isVisible())
    print(json.dumps({"saved": bool(ok), "title": dlg.windowTitle(), "labels": labels, "help": help_text,
                      "size": [dlg.width(), dlg.height()]}))
    dlg.close()
    del dlg
    plugin.unload()
    app.exitQgis()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
