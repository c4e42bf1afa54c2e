"""The output geometry of a fusion run: the MSI's (the HSI/MSI shift removed once, before any method runs) or the
HSI's (nothing moved), and the checks and log lines that go with it.

Every method takes its spatial detail from the MSI, so by default (``msi``) the sub-pixel HSI shift, estimated
once, is removed in exactly one place: for methods with an observation model it is the centre of their PSF (the
HSI is read as it is and the model says where it looks: no resampling of the aliased LR-HSI, the consistency is
with the data themselves), for every other method the HSI reads are resampled once
(:meth:`raster.coreg.FusionGrid.with_shift`). ``hsi`` keeps the HSI where its georeferencing puts it: nothing
resampled and the PSF centre at 0, so no method moves the low frequencies.
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


def align(grid: FusionGrid, est: ShiftEstimate, geometry: str, in_model: bool = False
          ) -> tuple[FusionGrid, tuple[float, float], list[str]]:
    """The grid the method reads, the shift removed (LR px) and the log lines. ``in_model``: the method's
    observation model carries the shift as its PSF centre, so the grid is not resampled."""
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
    applied = (float(est.dx), float(est.dy))
    if in_model:
        return grid, applied, lines + [f"Geometry msi: the shift is the PSF centre of the observation model "
                                       f"(dx={est.dx:+.3f}, dy={est.dy:+.3f} LR px; the HSI is not resampled)."]
    grid = grid.with_shift(est.dx, est.dy)
    return grid, applied, lines + [grid.messages[-1], "Geometry msi: the output lies in the MSI's geometry."]


__all__ = ["DEFAULT_GEOMETRY", "GEOMETRIES", "MAX_SHIFT_LR", "align", "check_geometry", "check_shift"]
