"""The user's own LR-HSI + HR-MSI pair for scene adaptation: co-registered and read on its common grid (bounded)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from csakd_qgis.fusion.fuse import radiometry_check
from csakd_qgis.raster.coreg import plan_grid

MAX_ADAPT_LR = 384  # adaptive training reads a central window of at most this many LR px a side


@dataclass
class PairData:
    """The user's pair on its common grid (a central window of at most MAX_ADAPT_LR LR px a side)."""

    lr: np.ndarray
    msi: np.ndarray
    scale: int
    wavelengths: list[float | None]
    fwhm: list[float | None]
    msi_wavelengths: list[float | None]
    msi_names: list[str]
    window_lr: tuple[int, int, int, int]
    grid_lr: tuple[int, int]
    messages: list[str]


def read_pair(hsi: str | os.PathLike, msi: str | os.PathLike, max_lr: int = MAX_ADAPT_LR) -> PairData:
    """Co-register (:func:`coreg.plan_grid`) and read the pair on its common grid (bounded window)."""

    grid = plan_grid(hsi, msi)
    msgs = list(grid.messages)
    with grid:
        r, c, h, w = grid.central_window_lr(max_lr)
        lr, m = grid.read_sample(max_lr)
    if (h, w) != (grid.lr_height, grid.lr_width):
        msgs.append(f"Training on a central window of {h} x {w} of the {grid.lr_height} x {grid.lr_width} LR px "
                    "(bounded memory and time).")
    note = radiometry_check(lr, m)
    if note:
        msgs.append(note)
    meta, mm = grid.hsi, grid.msi
    names = []
    for i in grid.msi_bands:
        d = mm.descriptions[i] if i < len(mm.descriptions) else None
        names.append((d or f"band {i + 1}").split(" (")[0])
    return PairData(lr=lr, msi=m, scale=grid.scale, wavelengths=[meta.wavelengths[i] for i in grid.hsi_bands],
                    fwhm=[meta.fwhm[i] for i in grid.hsi_bands],
                    msi_wavelengths=[mm.wavelengths[i] for i in grid.msi_bands], msi_names=names,
                    window_lr=(r, c, h, w), grid_lr=(grid.lr_height, grid.lr_width), messages=msgs)


__all__ = ["MAX_ADAPT_LR", "PairData", "read_pair"]
