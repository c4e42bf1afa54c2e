"""``csakd simulate``: a Wald-protocol LR-HSI + HR-MSI GeoTIFF pair from a reference HR-HSI raster.

Both subcommands are thin: parse arguments, call one core function, print a short summary. User errors
are raised as :class:`CsakdError` (``csakd`` prints them on one line and exits 1).
"""

from __future__ import annotations

import argparse
import logging
import math

from csakd_qgis.cli.common import scale_arg
from csakd_qgis.errors import CsakdError
from csakd_qgis.raster.simulate import MSI20_SENSOR, simulate_rasters

log = logging.getLogger("csakd")


def _shift(text: str) -> tuple[float, float]:
    parts = [p for p in text.replace(";", ",").split(",") if p.strip()]
    try:
        dx, dy = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"shift must be 'DX,DY' in LR pixels, got '{text}'") from None
    return dx, dy


def add_simulate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``simulate``: LR-HSI + HR-MSI GeoTIFFs from a reference HR-HSI (Wald protocol,)."""
    p = subparsers.add_parser(
        "simulate", help="simulate an LR-HSI / HR-MSI pair from a reference hyperspectral image",
        description="Wald protocol: the LR-HSI is the reference blurred (Gaussian, sigma = s/2 px) and block-"
                    "averaged by s; the HR-MSI is the reference integrated over the sensor's spectral response "
                    "functions. Bad bands (bbl=0) and all-nodata bands are dropped; the reference is cropped to "
                    "a multiple of s from its top-left corner.")
    p.add_argument("--hsi", required=True, metavar="REF", help="reference high-resolution hyperspectral raster")
    p.add_argument("--scale", required=True, type=scale_arg, metavar="S", help="integer scale factor (e.g. 3, 4)")
    p.add_argument("--sensor", default="S2A:B2,B3,B4,B8", metavar="SPEC",
                   help="MSI spectral responses: 'S2A:B2,B3,B4,B8', 'S2B', 'L8', 'L9', 'RE' (pyrsr data), a CSV "
                        "file (wavelength + one column per band), or 'gaussian:490/65,560/35,...' "
                        "(default: %(default)s)")
    p.add_argument("--out-lr", required=True, metavar="LR.tif", help="output low-resolution HSI GeoTIFF")
    p.add_argument("--out-msi", required=True, metavar="MSI.tif", help="output high-resolution MSI GeoTIFF")
    p.add_argument("--out-msi20", default=None, metavar="MSI20.tif",
                   help="also write the bands of --sensor20 at 2x the MSI pixel size (Sentinel-2's 20 m bands "
                        "beside its 10 m bands; Gaussian MTF-like blur sigma = 1 MSI px, then 2 x 2 mean), "
                        "for 'csakd fuse --msi20'")
    p.add_argument("--sensor20", default=MSI20_SENSOR, metavar="SPEC",
                   help="spectral responses of --out-msi20 (same forms as --sensor; default: %(default)s)")
    p.add_argument("--snr", type=float, default=None, metavar="DB",
                   help="add white Gaussian noise at this SNR in dB to both outputs (default: none)")
    p.add_argument("--shift", type=_shift, default=None, metavar="DX,DY",
                   help="shift the LR-HSI content by DX,DY LR pixels (east, south positive) to simulate "
                        "misregistration")
    p.add_argument("--seed", type=int, default=0, help="random seed of the noise (default: %(default)s)")
    p.set_defaults(func=run_simulate)
    return p


def run_simulate(args: argparse.Namespace) -> int:
    """Handler of ``csakd simulate``."""

    if args.snr is not None and not math.isfinite(args.snr):
        raise CsakdError("--snr must be a finite number of dB.")
    info = simulate_rasters(args.hsi, args.sensor, args.scale, args.out_lr, args.out_msi, snr_db=args.snr,
                            seed=args.seed, shift=args.shift, out_msi20=args.out_msi20, sensor20=args.sensor20)
    print(f"LR-HSI {info['lr_shape'][0]} x {info['lr_shape'][1]} px, {info['n_bands']} bands -> {info['lr_path']}")
    print(f"HR-MSI {info['hr_shape'][0]} x {info['hr_shape'][1]} px, {info['sensor']} "
          f"{','.join(info['msi_bands'])} -> {info['msi_path']}")
    if "msi20_path" in info:
        print(f"MSI at {info['msi20_factor']}x pixels {info['msi20_shape'][0]} x {info['msi20_shape'][1]} px, "
              f"{','.join(info['msi20_bands'])} -> {info['msi20_path']}")
    return 0


