"""A predictor for tests: any ``f(lr, msi) -> hr`` batch function (e.g. a small torch module) through the engine."""

from __future__ import annotations

import time

import numpy as np

from csakd_qgis.fusion.predictors import Predictor, apply_mask, fill_nodata, nodata_mask


class CallablePredictor(Predictor):
    """Wrap any ``f(lr, msi) -> hr`` batch function (e.g. a torch module in tests) as a predictor."""

    def __init__(self, fn, scale: int, hsi_bands: int, msi_bands: int, name: str = "callable",
                 halo_lr: int = 0, fill: bool = True) -> None:
        self.fn, self.name = fn, name
        self.scale, self.hsi_bands, self.msi_bands = int(scale), int(hsi_bands), int(msi_bands)
        self.halo_lr, self.fill = int(halo_lr), fill
        self.device_used, self.network_seconds, self.messages = "cpu", 0.0, []

    def predict(self, lr: np.ndarray, msi: np.ndarray) -> np.ndarray:
        """Fill nodata, call the function, mask nodata."""
        self._check(lr, msi)
        mask = nodata_mask(lr, msi, self.scale)
        if self.fill and mask is not None:
            lr = np.stack([fill_nodata(x) for x in lr])
            msi = np.stack([fill_nodata(x) for x in msi])
        t0 = time.perf_counter()
        out = np.asarray(self.fn(lr, msi), np.float32)
        self.network_seconds += time.perf_counter() - t0
        return apply_mask(out.copy() if mask is not None else out, mask)
