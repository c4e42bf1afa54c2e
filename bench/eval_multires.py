"""Held-apart evaluation of Sentinel-2's 20 m bands in fusion (Wald protocol): 10 m bands only vs with the
20 m bands, (a) sharpened to 10 m first or (b) injected at their own resolution, for GLP and glp+cy.

    flock /tmp/csakd-heavy.lock .venv/bin/python bench/eval_multires.py \
        [--out docs/results/multires.json] [--md docs/results/multires.md] [--scenes enmap_test_x3]

Scenes: the EnMAP test tiles of ``bench/eval_model_based.py`` (the corpus TEST split, never used to tune
anything) at s = 3. The reference is cropped to a multiple of 6 (both grids whole); the LR-HSI is its Wald
degradation by s; the HR-MSI is S2A B2, B3, B4, B8 at the reference pixels; the 20 m bands are S2A B5, B6, B7,
B8A, B11, B12 simulated at twice the HR pixel size (Gaussian blur sigma = 1 HR px, MTF about 0.29 at their
Nyquist, then 2 x 2 block mean: :func:`spectral.degrade.simulate_msi20`). PSF and SRF of glp+cy are estimated
from each pair. Rows: the 10 m bands alone, (a) ``fusion.multires.stack_bands``, (b)
``fusion.multires.fuse_per_resolution`` (glp+cy: its consistency projection on the (b) output), and the
trap (the 20 m bands merely upsampled beside the 10 m bands), and a bound (the 20 m bands' responses known at
the HR pixels: what a perfect sharpening would give). SWIR = reference bands above 1300 nm.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_model_based import SCENES, load_scene  # noqa: E402

from csakd_qgis.fusion.classical import fuse_classical  # noqa: E402
from csakd_qgis.fusion.fuse import fuse  # noqa: E402
from csakd_qgis.fusion.model_based import run_candidate  # noqa: E402
from csakd_qgis.fusion.multires import (  # noqa: E402
    S2_20M_BANDS,
    fuse_per_resolution,
    stack_bands,
    upsampled_bands,
)
from csakd_qgis.fusion.observation import estimate_observation  # noqa: E402
from csakd_qgis.quality.metrics import compute_metrics  # noqa: E402
from csakd_qgis.raster.io import read_reflectance, write_raster  # noqa: E402
from csakd_qgis.spectral.degrade import (  # noqa: E402
    crop_to_multiple,
    simulate_msi20,
    simulate_pair,
    synthesize_msi,
)
from csakd_qgis.spectral.srf import load_srf, srf_matrix  # noqa: E402

MSI10 = "S2A:B2,B3,B4,B8"
MSI20 = "S2A:" + ",".join(S2_20M_BANDS)
F20 = 2  # the 20 m bands' pixels in HR pixels
SWIR_NM = 1300.0
VARIANTS = ("10m", "a", "b", "upsampled", "oracle")
METHODS = ("glp", "glp+cy")


def make_scene(name: str):
    """(ref, wavelengths, lr, msi10, msi20, s, the 20 m bands' responses at HR) of a held-apart scene."""
    key, _, s, _ = SCENES[name]
    cube, wl = load_scene(key)
    ref = crop_to_multiple(cube, int(np.lcm(s, F20)))
    lr, msi = simulate_pair(ref, wl, None, MSI10, s)
    z = simulate_msi20(ref, wl, None, MSI20, F20)
    z_hr = synthesize_msi(ref, srf_matrix(load_srf(MSI20), wl))
    return ref, np.asarray(wl, float), lr, msi, z, s, z_hr


def fuse_variant(method: str, variant: str, lr, msi, z, s, z_hr=None):
    """The fused HR-HSI of one method and one way of using the 20 m bands (``oracle``: the 20 m bands' responses
    known at HR, ``z_hr``: the bound a perfect sharpening would reach, not a method)."""
    if variant == "b":
        out = fuse_per_resolution(lr, msi, z, s, F20)
        if method == "glp":
            return out
        return run_candidate(method, lr, msi, s, estimate_observation(lr, msi, s), base_out=out)
    m = msi
    if variant == "oracle":
        m = np.concatenate([msi, z_hr], axis=0)
    elif variant == "a":
        m = stack_bands(msi, z, F20)
    elif variant == "upsampled":
        m = upsampled_bands(msi, z, F20)
    if method == "glp":
        return fuse_classical(lr, m, s, "glp")
    return run_candidate(method, lr, m, s, estimate_observation(lr, m, s))


def engine_check(ref, wl, lr, msi, z, s, swir) -> dict:
    """The same pair through ``fusion.fuse.fuse`` (GeoTIFFs, tiled raster job, small tiles) with and without
    ``msi20``: the raster path must give the array numbers (method (a))."""
    from rasterio.crs import CRS
    from rasterio.transform import from_origin

    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as d:
        crs, x0, y0 = CRS.from_epsg(32633), 500000.0, 4000000.0
        paths = {"lr": Path(d) / "lr.tif", "msi": Path(d) / "msi.tif", "z": Path(d) / "z.tif"}
        write_raster(paths["lr"], lr, crs, from_origin(x0, y0, 10.0 * s, 10.0 * s), wavelengths=list(wl))
        write_raster(paths["msi"], msi, crs, from_origin(x0, y0, 10.0, 10.0))
        write_raster(paths["z"], z, crs, from_origin(x0, y0, 10.0 * F20, 10.0 * F20))
        for method in METHODS:
            for v, extra in (("10m", {}), ("a", {"msi20": paths["z"]})):
                o = Path(d) / f"{method}_{v}.tif"
                t0 = time.perf_counter()
                fuse(paths["lr"], paths["msi"], o, method, tile=24, overlap=12, **extra)
                sec = time.perf_counter() - t0
                est = read_reflectance(o)
                met, sw = compute_metrics(ref, est, s), compute_metrics(ref, est, s, bands=swir)
                out[f"{method} {v}"] = {"psnr": round(met["psnr"], 3), "psnr_swir": round(sw["psnr"], 3),
                                        "sam": round(met["sam"], 3), "seconds": round(sec, 2)}
                print(f"engine {method:7s} {v:4s} PSNR {met['psnr']:7.3f}  SWIR {sw['psnr']:7.3f}  SAM "
                      f"{met['sam']:6.3f}  {sec:.1f} s", flush=True)
    return out


def evaluate(name: str) -> dict:
    ref, wl, lr, msi, z, s, z_hr = make_scene(name)
    swir = [int(i) for i in np.nonzero(wl > SWIR_NM)[0]]
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for method in METHODS:
        rows[method] = {}
        for v in VARIANTS:
            out = fuse_variant(method, v, lr, msi, z, s, z_hr)
            met = compute_metrics(ref, out, s)
            sw = compute_metrics(ref, out, s, bands=swir)
            rows[method][v] = {"psnr": round(met["psnr"], 3), "psnr_swir": round(sw["psnr"], 3),
                               "sam": round(met["sam"], 3), "ergas": round(met["ergas"], 3)}
            print(f"{name} {method:7s} {v:9s} PSNR {met['psnr']:7.3f}  SWIR {sw['psnr']:7.3f}  SAM "
                  f"{met['sam']:6.3f}", flush=True)
    return {"scene": name, "scale": s, "hr_shape": list(ref.shape[1:]), "bands": int(ref.shape[0]),
            "swir_bands": len(swir), "methods": rows, "engine": engine_check(ref, wl, lr, msi, z, s, swir)}


def markdown(res: dict) -> str:
    lines = ["| scene | method | MSI bands | PSNR (dB) | SWIR PSNR (dB) | SAM (deg) | ERGAS |",
             "|---|---|---|---|---|---|---|"]
    label = {"10m": "10 m only (B2, B3, B4, B8)", "a": "+ 20 m, (a) sharpened to 10 m",
             "b": "+ 20 m, (b) detail at own resolution", "upsampled": "+ 20 m merely upsampled (trap)",
             "oracle": "bound: 20 m bands known at 10 m"}
    for r in res["scenes"]:
        for method, rows in r["methods"].items():
            for v, m in rows.items():
                lines.append(f"| {r['scene']} | {method} | {label[v]} | {m['psnr']:.2f} | {m['psnr_swir']:.2f} | "
                             f"{m['sam']:.3f} | {m['ergas']:.3f} |")
    lines += ["", "Gain of (a) over the 10 m bands only: " + "; ".join(
        f"{r['scene']} {method}: SWIR {rows['a']['psnr_swir'] - rows['10m']['psnr_swir']:+.2f} dB, PSNR "
        f"{rows['a']['psnr'] - rows['10m']['psnr']:+.2f} dB, SAM {rows['a']['sam'] - rows['10m']['sam']:+.3f} deg"
        for r in res["scenes"] for method, rows in r["methods"].items())]
    lines += ["", "Through the tiled raster job (`fusion.fuse.fuse`, GeoTIFFs, tile 24 / overlap 12 px, PSF and SRF "
              "estimated on the scene sample):", "", "| scene | run | PSNR (dB) | SWIR PSNR (dB) | SAM (deg) | s |",
              "|---|---|---|---|---|---|"]
    for r in res["scenes"]:
        for k, m in r["engine"].items():
            lines.append(f"| {r['scene']} | {k.replace(' a', ' + 20 m (a)').replace(' 10m', ' 10 m only')} | "
                         f"{m['psnr']:.2f} | {m['psnr_swir']:.2f} | {m['sam']:.3f} | {m['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "multires.json"))
    ap.add_argument("--md", default=str(ROOT / "docs" / "results" / "multires.md"))
    ap.add_argument("--scenes", default="enmap_test_x3")
    a = ap.parse_args(argv)
    res = {"msi10": MSI10, "msi20": MSI20, "f20": F20, "scenes": [evaluate(n) for n in a.scenes.split(",") if n],
           "env": {"cpu_count": os.cpu_count(), "numpy": np.__version__}}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    Path(a.md).write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
