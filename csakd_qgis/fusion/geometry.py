"""The output geometry of a fusion run: the MSI's (the HSI/MSI shift removed once, before any method runs) or the
HSI's (nothing moved), and the checks and log lines that go with it.

Every method takes its spatial detail from the MSI, so by default (``msi``) the estimated sub-pixel HSI shift is
removed from the HSI reads once (:meth:`raster.coreg.FusionGrid.with_shift`) and model-based methods then fit
their PSF with its centre fixed at 0 (the shift is not applied a second time). ``hsi`` keeps the HSI where its
georeferencing puts it: no correction and the PSF centre also at 0, so no method moves the low frequencies.
"""

from __future__ import annotations

from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.coreg import MIN_CORRECTED_SHIFT_LR, FusionGrid, ShiftEstimate

GEOMETRIES = ("msi", "hsi")
DEFAULT_GEOMETRY = "msi"
MAX_SHIFT_LR = 1.0  # larger estimated HSI/MSI shifts (LR px) are refused: the pair is not co-registered
RELIABLE_PEAK = 0.05  # phase-correlation peaks below this are too weak to refuse (or trust) a large estimate


def check_geometry(geometry: str | None, shift_correct: bool = False) -> str:
    """The geometry option as 'msi' or 'hsi'; ``shift_correct`` (the former switch) implies 'msi'."""
    g = str(geometry or DEFAULT_GEOMETRY).strip().lower()
    if g not in GEOMETRIES:
        raise CsakdError(f"Geometry '{geometry}' is not known: use msi (the output in the MSI's geometry, the HSI "
                         "shift removed) or hsi (the HSI's geometry kept).")
    if shift_correct and g == "hsi":
        raise CsakdError("shift_correct asks for the MSI geometry but geometry is 'hsi': drop one of the two "
                         "options (shift correction is implied by geometry msi).")
    return g


def check_shift(est: ShiftEstimate) -> None:
    """One-line CsakdError when a reliable shift estimate is larger than ``MAX_SHIFT_LR`` LR px."""
    if est.method == "none" or est.confidence < RELIABLE_PEAK:
        return
    if max(abs(est.dx), abs(est.dy)) > MAX_SHIFT_LR:
        raise CsakdError(f"The HSI is shifted by dx={est.dx:+.2f}, dy={est.dy:+.2f} LR px against the MSI (more than "
                         f"{MAX_SHIFT_LR:g} LR px): the images are not co-registered: run csakd:coregister or fix "
                         "the georeferencing.")


def align(grid: FusionGrid, est: ShiftEstimate, geometry: str) -> tuple[FusionGrid, tuple[float, float], list[str]]:
    """The grid the methods read (the shift removed for 'msi'), the shift applied (LR px) and the log lines."""
    lines = [est.message]
    if geometry == "hsi":
        return grid, (0.0, 0.0), lines + ["Geometry hsi: the HSI is kept where it lies (no shift removed, PSF "
                                          "centre at 0)."]
    if est.method == "none":
        return grid, (0.0, 0.0), lines + ["Geometry msi: no shift estimate, nothing removed."]
    if max(abs(est.dx), abs(est.dy)) > MAX_SHIFT_LR:  # only an unreliable estimate gets here (check_shift)
        return grid, (0.0, 0.0), lines + ["Geometry msi: the shift estimate is unreliable, nothing removed."]
    if max(abs(est.dx), abs(est.dy)) < MIN_CORRECTED_SHIFT_LR:
        return grid, (0.0, 0.0), lines + [f"Geometry msi: the shift is below {MIN_CORRECTED_SHIFT_LR} LR px, "
                                          "nothing removed."]
    grid = grid.with_shift(est.dx, est.dy)
    return grid, (float(est.dx), float(est.dy)), lines + [grid.messages[-1], "Geometry msi: the output lies in the "
                                                          "MSI's geometry (PSF centre of model-based methods at 0)."]


__all__ = ["DEFAULT_GEOMETRY", "GEOMETRIES", "MAX_SHIFT_LR", "align", "check_geometry", "check_shift"]
