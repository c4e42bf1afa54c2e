"""Shared plumbing for the thin Processing algorithms: feedback bridge, error mapping, output checks, styles."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterRasterLayer,
    QgsProject,
)
from qgis.PyQt.QtCore import QCoreApplication

from csakd_qgis import oscompat
from csakd_qgis.algorithms import styling
from csakd_qgis.errors import CancelledError, CsakdError
from csakd_qgis.failures import failure_message
from csakd_qgis.raster.guard import Backup, check_regular_input, check_sidecars, is_special_file
from csakd_qgis.raster.io import check_output_path, read_meta


@contextlib.contextmanager
def cancel_on_signals(feedback: QgsProcessingFeedback | None):
    """While running, Ctrl-C (SIGINT) and SIGTERM cancel through the feedback, like the dialog's Cancel button.

    qgis_process has no handler of its own, so without this a signal kills the run and leaves its temporary
    files. Only possible on the main thread (where Python delivers signals).
    """
    if feedback is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: object) -> None:
        feedback.cancel()

    previous = {sig: signal.signal(sig, on_signal) for sig in oscompat.stop_signals()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def loaded_layer_of(path: str) -> str | None:
    """The name of a layer of the open project that reads the file ``path`` (QGIS keeps it open), else None."""
    target = os.path.normcase(os.path.abspath(path))
    for layer in QgsProject.instance().mapLayers().values():
        source = layer.source().split("|")[0]
        if source and os.path.normcase(os.path.abspath(source)) == target:
            return layer.name()
    return None


class _FeedbackWarnings(logging.Handler):
    """Engine warnings (e.g. stale temporaries removed) shown in the algorithm's log, not lost."""

    def __init__(self, feedback: QgsProcessingFeedback) -> None:
        super().__init__(logging.WARNING)
        self.feedback = feedback

    def emit(self, record: logging.LogRecord) -> None:
        self.feedback.pushWarning(record.getMessage())


class RasterLayerParameter(QgsProcessingParameterRasterLayer):
    """A raster layer parameter that never opens a special file: QGIS checks a value by loading it, and a FIFO
    blocks that load for ever; the algorithm's own checks then refuse it with one line."""

    def checkValueIsAcceptable(self, value, context=None):  # noqa: N802 (QGIS API name)
        if is_special_file(value):
            return True
        return super().checkValueIsAcceptable(value, context)

    def clone(self):
        copy = RasterLayerParameter(self.name(), self.description(), self.defaultValue(), True)
        copy.setFlags(self.flags())  # optional or not, advanced ... as this one
        copy.setHelp(self.help())
        return copy


class CsakdAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses declare parameters and call one core function through :meth:`run_core`."""

    GROUP = ""
    GROUP_ID = ""

    def tr(self, text: str) -> str:
        """Translate a user-visible string."""
        return QCoreApplication.translate("csakd", text)

    def createInstance(self):  # noqa: N802
        return type(self)()

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """Raster inputs given as file paths are checked by the plugin first (QGIS would call an existing empty or
        non-raster file 'not found'), then QGIS's checks and the display-band options."""
        for definition in self.parameterDefinitions():
            value = parameters.get(definition.name())
            role = definition.description()
            if role.startswith("..."):  # the second half of an "X ... or Y" pair of parameters
                role = "input"
            if f"({definition.name()})" not in role:
                role += f" ({definition.name()})"
            if isinstance(value, str) and definition.type() in ("raster", "file"):
                try:  # before QGIS opens it: a FIFO would block it for ever
                    check_regular_input(value, role)
                except CsakdError as exc:
                    return False, str(exc)
            if definition.type() == "raster" and isinstance(value, str) and os.path.isfile(value):
                try:
                    read_meta(value, role)
                except CsakdError as exc:
                    return False, str(exc)
        ok, msg = super().checkParameterValues(parameters, context)
        if ok and self.parameterDefinition(styling.DISPLAY_BANDS) is not None:
            try:
                self.display_targets(parameters, context)
            except QgsProcessingException as exc:
                return False, str(exc)
        return ok, msg

    def group(self) -> str:
        return self.tr(self.GROUP)

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP_ID

    def add_display_parameters(self) -> None:
        """The advanced display-band options of an algorithm that writes rasters."""
        for p in styling.display_parameters():
            self.addParameter(p)

    def display_targets(self, parameters: dict, context: QgsProcessingContext,
                        feedback: QgsProcessingFeedback | None = None) -> tuple[float, ...]:
        """Display wavelengths (nm) chosen by DISPLAY_BANDS / DISPLAY_WAVELENGTHS."""
        choice = self.enum_string(parameters, styling.DISPLAY_BANDS, context)
        custom = self.parameterAsString(parameters, styling.DISPLAY_WAVELENGTHS, context) or ""
        if custom.strip() and choice != styling.CUSTOM and feedback is not None:
            feedback.pushWarning(f"DISPLAY_WAVELENGTHS '{custom}' is ignored because DISPLAY_BANDS is '{choice}' "
                                 "(choose 'custom' to use it).")
        return styling.display_targets(choice, custom)

    def style_outputs(self, parameters: dict, context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                      abstracts: dict[str, str]) -> None:
        """Write the display style (.qml) and metadata (.qmd) beside each output raster and apply them on load.

        ``abstracts`` maps each written raster to its layer abstract (what made it).
        """
        targets = self.display_targets(parameters, context, feedback)
        for path, abstract in abstracts.items():
            if not path or not os.path.exists(path):
                continue
            try:
                bands = styling.write_sidecars(path, targets, abstract)
            except OSError as exc:
                raise QgsProcessingException(
                    f"The display style beside '{path}' could not be written: {exc.strerror or exc}. Check the free "
                    "disk space and the folder permissions.") from None
            styling.load_with_style(context, path)
            feedback.pushInfo(f"Display style of {os.path.basename(path)}: band(s) {', '.join(map(str, bands))} "
                              f"(nearest {'/'.join(f'{t:g}' for t in targets[:len(bands)])} nm), "
                              f"2-98 % stretch, saved as {os.path.basename(styling.sidecar_paths(path)[0])}")

    @staticmethod
    def progress_bridge(feedback: QgsProcessingFeedback | None) -> tuple[Callable, Callable]:
        """Return (progress(fraction, message), cancel()) callables that talk to the QGIS feedback."""
        last = {"msg": None}

        def progress(fraction: float, message: str = "") -> None:
            if feedback is None:
                return
            feedback.setProgress(max(0.0, min(100.0, 100.0 * float(fraction))))
            if message and message != last["msg"]:
                feedback.setProgressText(message)
                last["msg"] = message

        def cancel() -> bool:
            return bool(feedback is not None and feedback.isCanceled())

        return progress, cancel

    @staticmethod
    def run_core(feedback: QgsProcessingFeedback | None, func: Callable, *args, **kwargs):
        """Call a core function, mapping every failure to one-line QgsProcessingException; SIGINT/SIGTERM cancel."""

        t0 = time.perf_counter()
        engine_log = logging.getLogger("csakd")
        handler = _FeedbackWarnings(feedback) if feedback is not None else None
        if handler is not None:
            engine_log.addHandler(handler)
        with cancel_on_signals(feedback), contextlib.ExitStack() as stack:
            if handler is not None:
                stack.callback(engine_log.removeHandler, handler)
            try:
                result = func(*args, **kwargs)
            except CancelledError as exc:  # a batch says which of its pairs finished
                nothing = str(exc) == str(CancelledError())
                raise QgsProcessingException(f"Cancelled: {exc}." + (" No output was written." if nothing else "")
                                             ) from None
            except QgsProcessingException:
                raise
            except Exception as exc:  # noqa: BLE001 - one line instead of a traceback
                line = failure_message(exc)
                if line is None:
                    if feedback is not None:
                        feedback.pushDebugInfo(traceback.format_exc())
                    line = (f"Internal error ({type(exc).__name__}: {' '.join(str(exc).split())}); please report "
                            "it.")
                raise QgsProcessingException(line) from None
        if feedback is not None:
            feedback.pushInfo(f"Finished in {time.perf_counter() - t0:.2f} s")
        return result

    @staticmethod
    def check_output(path: str, inputs: list[str], role: str = "output raster") -> tuple[bool, str]:
        """Validate an output destination before running; returns (ok, message) for checkParameterValues."""

        if not path or path.startswith(("memory:", "TEMPORARY_OUTPUT")):
            return True, ""
        try:
            check_output_path(path, inputs, role=role)
            if path.lower().endswith((".tif", ".tiff")):
                check_sidecars([path], inputs)
        except CsakdError as exc:
            return False, str(exc)
        layer = loaded_layer_of(path) if oscompat.windows_semantics() else None
        if layer is not None:
            return False, (f"The {role} '{path}' is loaded in the project as the layer '{layer}', and Windows cannot "
                           "replace a file QGIS keeps open: remove that layer from the project (or choose another "
                           "output name) and run again.")
        return True, ""

    def enum_string(self, parameters: dict, name: str, context: QgsProcessingContext) -> str:
        """The value of a static-string enum parameter, refusing values that are not among its options.

        QGIS validates enum values given to an algorithm directly, but not values reaching a child algorithm of
        a model (e.g. from a string model parameter): parameterAsEnumString would silently use the default.
        """
        options = list(self.parameterDefinition(name).options())
        text = self.parameterAsString(parameters, name, context).strip()
        if not text:
            return self.parameterAsEnumString(parameters, name, context)
        if text in options:
            return text
        if text.isdigit() and int(text) < len(options):
            return options[int(text)]
        raise QgsProcessingException(f"{name} '{text}' is not available: choose one of {', '.join(options)}.")


    @staticmethod
    @contextlib.contextmanager
    def removed_on_failure(paths: list[str]):
        """If the run fails, delete the output files it created (and their sidecars) and put back the outputs
        and sidecars it replaced: a raster and its style are both the new ones or both the old ones."""
        made, kept = [], []
        try:
            for p in (p for p in paths if p):
                sidecars = styling.sidecar_paths(p) if p.lower().endswith((".tif", ".tiff")) else ()
                for q in (p, p + ".aux.xml", *sidecars):
                    if not os.path.exists(q):
                        made.append(q)
                    elif os.path.isfile(q):
                        kept.append(Backup(q))
            yield
        except BaseException:
            for q in made:
                if os.path.exists(q):
                    with contextlib.suppress(OSError):
                        os.remove(q)
            for backup in kept:
                with contextlib.suppress(OSError):
                    backup.restore()
            raise
        finally:
            for backup in kept:
                backup.close()

    @staticmethod
    def layer_path(alg: QgsProcessingAlgorithm, parameters: dict, name: str,
                   context: QgsProcessingContext, role: str) -> str:
        """File path of a raster layer parameter, with a clear error if it cannot be loaded.

        A file path is used as it is (checked by :meth:`checkParameterValues`): loading it as a QGIS layer would
        compute statistics (GDAL errors on stderr for an all-nodata raster) and is not needed.
        """
        value = parameters.get(name)
        if isinstance(value, str):
            try:
                check_regular_input(value, f"{role} ({name})")
            except CsakdError as exc:
                raise QgsProcessingException(str(exc)) from None
        if isinstance(value, str) and os.path.isfile(value):
            return value
        layer = alg.parameterAsRasterLayer(parameters, name, context)
        if layer is None or not layer.isValid():
            value = parameters.get(name)
            raise QgsProcessingException(
                f"The {role} ({name}) '{value}' could not be opened as a raster: check that the file exists "
                "and is a GDAL-readable raster (GeoTIFF, ENVI, ...).")
        source = layer.source().split("|")[0]
        if not os.path.exists(source):
            raise QgsProcessingException(
                f"The {role} ({name}) must be a file-based raster; '{source}' is not a local file. "
                "Save the layer to a GeoTIFF first.")
        return source
