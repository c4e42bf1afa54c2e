"""QGIS plugin object: registers the Processing provider (headless and in the desktop) and, in the desktop,
the Plugins > CSAKD > "Check / install dependencies" dialog and "Spectral profile" panel (also a toolbar button)."""

from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QThread, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from csakd_qgis.algorithms.profile.profile_panel import SpectralProfile
from csakd_qgis.deps import PIP_NAMES, DependencyCheck, InstallResult, python_line
from csakd_qgis.provider import CsakdProvider

try:  # Qt 6 (QGIS 4) moved QAction to QtGui; Qt 5 has it in QtWidgets
    from qgis.PyQt.QtGui import QAction
except ImportError:
    from qgis.PyQt.QtWidgets import QAction

MENU = "&CSAKD"


class _InstallWorker(QThread):
    """Runs one pip install off the GUI thread, forwarding its output lines."""

    line = pyqtSignal(str)
    finished_with = pyqtSignal(object)

    def __init__(self, check: DependencyCheck, runtime: str) -> None:
        super().__init__()
        self.check, self.runtime = check, runtime

    def run(self) -> None:
        self.finished_with.emit(self.check.install(self.runtime, self.line.emit))


class DependencyDialog(QDialog):
    """Shows :class:`DependencyCheck`: a table of the runtimes, install buttons for the missing ones, pip's log."""

    def __init__(self, parent=None, check: DependencyCheck | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("CSAKD: check / install dependencies")
        self.check = check or DependencyCheck()
        self.summary, self.result, self.where = QLabel(), QLabel(), QLabel(python_line())
        for label in (self.summary, self.result, self.where):
            label.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Package", "Status", "Details"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setMinimumHeight(90)
        self.resize(720, 480)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.buttons = {r: QPushButton(f"Install {PIP_NAMES[r]}") for r in ("onnx", "torch")}
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        for w in (self.summary, self.where, self.table, *self.buttons.values(), self.log, self.result, close):
            lay.addWidget(w)
        for r, b in self.buttons.items():
            b.clicked.connect(lambda _=False, r=r: self.start(r))
        self.worker: _InstallWorker | None = None
        self.render()

    def render(self) -> None:
        """Fill the widgets from the current status."""
        self.summary.setText(self.check.summary())
        rows = self.check.rows()
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        offer = self.check.installable()
        for r, b in self.buttons.items():
            b.setEnabled(r in offer and self.worker is None)

    def start(self, runtime: str) -> None:
        """Install ``runtime`` in the background; the buttons stay disabled until pip ends."""
        self.log.clear()
        self.result.setText(f"Installing {PIP_NAMES[runtime]} ...")
        self.worker = _InstallWorker(self.check, runtime)
        self.worker.line.connect(self.log.appendPlainText)
        self.worker.finished_with.connect(self.done)
        self.render()
        self.worker.start()

    def done(self, res: InstallResult) -> None:
        """Show pip's result in one line and the refreshed status."""
        if self.worker is not None:
            self.worker.wait()
        self.worker = None
        self.result.setText(res.message)
        self.render()


class CsakdPlugin:
    """Keeps a Python reference to the provider so its algorithms are not garbage-collected."""

    def __init__(self, iface=None) -> None:
        self.iface = iface
        self.provider = None
        self.deps_action = None
        self.profile: SpectralProfile | None = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API name)
        """Register the provider; QGIS calls this for qgis_process and at desktop start."""
        if self.provider is not None:
            return

        registry = QgsApplication.processingRegistry()
        if registry.providerById(CsakdProvider.ID) is not None:
            return  # already registered (e.g. by another load of this plugin)
        provider = CsakdProvider()
        if registry.addProvider(provider):
            self.provider = provider
        # addProvider returns False (and deletes the object) on a duplicate id: keep no dangling ref.

    def initGui(self) -> None:  # noqa: N802 (QGIS API name)
        """Desktop start: make sure the provider is registered; add the dependency dialog and the spectral profile
        panel to the menu."""
        self.initProcessing()
        if self.iface is not None and self.deps_action is None:
            self.deps_action = QAction("Check / install dependencies", self.iface.mainWindow())
            self.deps_action.triggered.connect(self.show_dependencies)
            self.iface.addPluginToMenu(MENU, self.deps_action)
        if self.iface is not None and self.profile is None:
            self.profile = SpectralProfile(self.iface, MENU)

    def show_dependencies(self) -> None:
        """Open the dependency dialog over the main window."""
        DependencyDialog(self.iface.mainWindow() if self.iface is not None else None).exec()

    def unload(self) -> None:
        """Remove the provider when the plugin is disabled or reloaded."""
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        if self.deps_action is not None and self.iface is not None:
            self.iface.removePluginMenu(MENU, self.deps_action)
            self.deps_action = None
        if self.profile is not None:
            self.profile.unload()
            self.profile = None
