"""The real-pair protocol: the reference moved onto the MSI's geometry by the shift estimated from the pair."""

from __future__ import annotations

import numpy as np

from csakd_qgis.fusion.observation import PSF, degrade
from csakd_qgis.quality.metrics import psnr
from csakd_qgis.quality.real_pairs import reference_on_msi_geometry, score_both_geometries
from csakd_qgis.spectral.degrade import shift_image, synthesize_msi
from csakd_qgis.spectral.srf import load_srf, srf_matrix
from tests.fusion.test_noref import S2, mixed_scene


def test_reference_moved_onto_the_msi_geometry():
    s, d = 4, (0.4, -0.25)  # HSI content moved by d LR px relative to the MSI
    truth, wl = mixed_scene(size=96)
    msi = synthesize_msi(truth, srf_matrix(load_srf(S2), wl))
    hsi_ref = shift_image(truth, d[0] * s, d[1] * s)  # the reference as the HSI side sees the scene
    lr = degrade(hsi_ref, PSF.wald(s), s)
    moved, info = reference_on_msi_geometry(hsi_ref, lr, msi, s)
    assert np.allclose(info["shift_lr_px"], d, atol=0.03)
    b = 12
    assert psnr(truth[:, b:-b, b:-b], moved[:, b:-b, b:-b]) > psnr(truth[:, b:-b, b:-b], hsi_ref[:, b:-b, b:-b]) + 10
    both = score_both_geometries(hsi_ref, moved, truth, s, d)  # an output in the MSI geometry (the truth itself)
    assert both["msi"]["psnr"] > both["hsi"]["psnr"] + 10 and set(both["msi"]) == {"psnr", "sam", "ergas"}
