"""QGIS 4 / Qt 6 readiness: the ast equivalent of QGIS's pyqt5_to_pyqt6 migration check reports nothing over
csakd_qgis/, and it does report a planted PyQt5 import, an unscoped enum, exec_ and a bare QAction import."""

from __future__ import annotations

import pytest
from conftest import ROOT
from qt6_check import check_source, check_tree

pytestmark = pytest.mark.qgis


def test_plugin_needs_no_qt6_migration():
    assert [str(f) for f in check_tree(ROOT / "csakd_qgis")] == []


@pytest.mark.parametrize("source, expect", [
    ("from PyQt5 import QtCore\n", "import it from qgis.PyQt"),
    ("import PyQt5.QtWidgets\n", "import it from qgis.PyQt"),
    ("from qgis.PyQt.QtCore import Qt\nx = Qt.AlignLeft\n", "write Qt.AlignmentFlag.AlignLeft"),
    ("from qgis.PyQt.QtWidgets import QDialogButtonBox\nb = QDialogButtonBox.Ok\n",
     "write QDialogButtonBox.StandardButton.Ok"),
    ("from qgis.core import QgsProcessingParameterNumber as N\nt = N.Integer\n", "write N.Type.Integer"),
    ("d.exec_()\n", "use .exec()"),
    ("from qgis.PyQt.QtWidgets import QAction\n", "QAction is in QtGui with Qt 6"),
    ("from qgis.PyQt.QtCore import QRegExp\n", "QRegExp is removed"),
    ("from qgis.PyQt.QtWidgets import qApp\nqApp.quit()\n", "qApp is removed"),
])
def test_checker_reports_planted_qt5_only_code(tmp_path, source, expect):
    bad = tmp_path / "bad.py"
    bad.write_text(source, encoding="utf-8")
    findings = check_tree(tmp_path)
    assert findings and any(expect in f.message for f in findings), findings
    assert findings[0].path == str(bad) and findings[0].line >= 1


def test_checker_accepts_scoped_enums_and_the_qaction_fallback():
    src = ("from qgis.PyQt.QtCore import Qt\nfrom qgis.PyQt.QtWidgets import QDialogButtonBox\n"
           "try:\n    from qgis.PyQt.QtGui import QAction\nexcept ImportError:\n"
           "    from qgis.PyQt.QtWidgets import QAction\n"
           "a = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop\n"
           "b = QDialogButtonBox.StandardButton.Ok\nd.exec()\n")
    assert check_source(src) == []
