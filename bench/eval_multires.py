"""Sentinel-2's 20 m bands in fusion (Wald protocol): 10 m bands only vs with the 20 m bands, (a) sharpened to
10 m first or (b) injected at their own resolution, for GLP and glp+cy, on development and held-apart scenes.

    flock /tmp/csakd-heavy.lock .venv/bin/python bench/eval_multires.py \
        [--out docs/results/multires.json] [--md docs/results/multires.md] [--set dev|held|both] [--blur20 1.0]

Scenes (all at s = 3), from ``bench/eval_model_based.py``'s lists, those whose bands reach past 2300 nm:
development (``DEV``: the only ones any choice of the method was made on) = its DEV_SCENES dev_enmap_val_x4
(the EnMAP corpus VAL tiles), dev_jasper, dev_abu_airport_1, dev_sandiego_plane; held-apart (``HELD``) = its
SCENES enmap_test_x3 (the corpus TEST tiles), cuprite, moffett, abu_beach_1, abu_urban_1. The reference is
cropped to a multiple of 6 (both grids whole); the LR-HSI is its Wald degradation by s; the HR-MSI is S2A B2,
B3, B4, B8 at the reference pixels; the 20 m bands are S2A B5, B6, B7, B8A, B11, B12 simulated at twice the
HR pixel size (Gaussian blur sigma = ``--blur20`` HR px, 1 = MTF about 0.29 at their Nyquist, then 2 x 2
block mean: :func:`spectral.degrade.simulate_msi20`; other values test a blur the sharpening does not assume).
PSF and SRF of glp+cy are estimated from each pair (with the 20 m bands: the PSF on the 10 m bands,
``fusion.multires.multires_observation``). Rows: the 10 m bands alone; (a) the engine's method
(``fusion.multires.stack_bands``); (a0) its first version (gains on levels, no back-projection, PSF on all
bands); (b) ``fusion.multires.fuse_per_resolution`` (glp+cy: its consistency projection on the (b) output);
the trap (the 20 m bands merely upsampled beside the 10 m bands); a bound (the 20 m bands' responses known at
the HR pixels: what a perfect sharpening would give). SWIR = reference bands above 1300 nm. The tiled raster
job (``fusion.fuse.fuse``, GeoTIFFs) is checked against the arrays on every scene.
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

from eval_model_based import DEV_SCENES, SCENES, load_scene  # noqa: E402

from bench.multires_variants import fuse_per_resolution, sharpen_bands_levels, stack_bands, upsampled_bands  # noqa: E402
from csakd_qgis.fusion.classical import fuse_classical  # noqa: E402
from csakd_qgis.fusion.fuse import fuse  # noqa: E402
from csakd_qgis.fusion.model_based import run_candidate  # noqa: E402
from csakd_qgis.fusion.multires import (  # noqa: E402
    S2_20M_BANDS,
    multires_observation,
    sharpen_bands,
)
from csakd_qgis.fusion.observation import estimate_observation  # noqa: E402
from csakd_qgis.fusion.scene import fuse_scene  # noqa: E402
from csakd_qgis.quality.metrics import compute_metrics  # noqa: E402
from csakd_qgis.raster.io import read_reflectance, write_raster  # noqa: E402
from csakd_qgis.raster.resample import upsample_bicubic  # noqa: E402
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
SCALE = 3
VARIANTS = ("10m", "a", "a0", "b", "upsampled", "oracle")
METHODS = ("glp", "glp+cy")
DEV = ("dev_enmap_val_x4", "dev_jasper", "dev_abu_airport_1", "dev_sandiego_plane")
HELD = ("enmap_test_x3", "cuprite", "moffett", "abu_beach_1", "abu_urban_1")
SHARPENED = (4, 5)  # B11, B12 among the 20 m bands: their sharpening is reported against their HR truth


def make_scene(name: str, blur20: float = 1.0):
    """(ref, wavelengths, lr, msi10, msi20, s, the 20 m bands' responses at HR) of a scene, at s = ``SCALE``."""
    key = {**SCENES, **DEV_SCENES}[name][0]
    cube, wl = load_scene(key)
    s = SCALE
    ref = crop_to_multiple(cube, int(np.lcm(s, F20)))
    lr, msi = simulate_pair(ref, wl, None, MSI10, s)
    z = simulate_msi20(ref, wl, None, MSI20, F20, sigma=blur20)
    z_hr = synthesize_msi(ref, srf_matrix(load_srf(MSI20), wl))
    return ref, np.asarray(wl, float), lr, msi, z, s, z_hr


def fuse_variant(method: str, variant: str, lr, msi, z, s, z_hr=None):
    """The fused HR-HSI of one method and one way of using the 20 m bands (``oracle``: the 20 m bands' responses
    known at HR, ``z_hr``: the bound a perfect sharpening would reach, not a method)."""
    if variant == "b":
        out = fuse_per_resolution(lr, msi, z, s, F20)
        if method == "glp":
            return out
        return run_candidate("glp+cy" if method == "scene" else method, lr, msi, s, estimate_observation(lr, msi, s), base_out=out)
    m = msi
    if variant == "oracle":
        m = np.concatenate([msi, z_hr], axis=0)
    elif variant == "a":
        m = stack_bands(msi, z, F20)
    elif variant == "a0":
        m = np.concatenate([msi, sharpen_bands_levels(z, msi, F20)], axis=0)
    elif variant == "upsampled":
        m = upsampled_bands(msi, z, F20)
    if method == "glp":
        return fuse_classical(lr, m, s, "glp")
    obs = (estimate_observation(lr, m, s) if variant in ("10m", "a0")
           else multires_observation(lr, m, s, msi.shape[0]))
    if method == "scene":  # the per-scene learner sees every MSI band, the sharpened 20 m ones included
        return fuse_scene(lr, m, s, obs)[0]
    return run_candidate(method, lr, m, s, obs)


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


def evaluate(name: str, blur20: float = 1.0, engine: bool = True) -> dict:
    ref, wl, lr, msi, z, s, z_hr = make_scene(name, blur20)
    swir = [int(i) for i in np.nonzero(wl > SWIR_NM)[0]]
    sharp = {}
    for v, zs in (("a", sharpen_bands(z, msi, F20)), ("a0", sharpen_bands_levels(z, msi, F20)),
                  ("bicubic", upsample_bicubic(z, F20))):
        sharp[v] = [round(compute_metrics(z_hr, zs, F20, bands=[b])["psnr"], 3) for b in SHARPENED]
    print(f"{name} B11/B12 PSNR at 10 m: {sharp}", flush=True)
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
            "swir_bands": len(swir), "b11_b12_psnr": sharp, "methods": rows,
            **({"engine": engine_check(ref, wl, lr, msi, z, s, swir)} if engine else {})}


LABEL = {"10m": "10 m only (B2, B3, B4, B8)", "a": "+ 20 m, (a) sharpened to 10 m (engine)",
         "a0": "+ 20 m, (a0) first sharpening (levels, no back-projection)",
         "b": "+ 20 m, (b) detail at own resolution", "upsampled": "+ 20 m merely upsampled (trap)",
         "oracle": "bound: 20 m bands known at 10 m"}
KEYS = ("psnr", "psnr_swir", "sam", "ergas")


def mean_rows(scenes: list[dict]) -> dict:
    """Per method and variant, the mean of each metric over ``scenes``."""
    return {m: {v: {k: float(np.mean([r["methods"][m][v][k] for r in scenes])) for k in KEYS} for v in VARIANTS}
            for m in METHODS}


def gains(rows: dict, v: str = "a") -> str:
    d = {k: rows[v][k] - rows["10m"][k] for k in KEYS}
    return f"SWIR {d['psnr_swir']:+.2f} dB, PSNR {d['psnr']:+.2f} dB, SAM {d['sam']:+.3f} deg"


def markdown(res: dict) -> str:
    lines = [f"20 m bands simulated with blur sigma {res['blur20']} HR px; s = {SCALE}.", ""]
    for key, title in (("dev", "Development scenes (every choice of the method made on these)"),
                       ("held", "Held-apart scenes (evaluated once the method was fixed)")):
        scenes = res.get(key) or []
        if not scenes:
            continue
        lines += [f"#### {title}", "", "| scene | method | MSI bands | PSNR (dB) | SWIR PSNR (dB) | SAM (deg) | "
                  "ERGAS |", "|---|---|---|---|---|---|---|"]
        mean = mean_rows(scenes)
        for r in [*scenes, {"scene": "**mean**", "methods": mean}]:
            for method, rows in r["methods"].items():
                for v, m in rows.items():
                    lines.append(f"| {r['scene']} | {method} | {LABEL[v]} | {m['psnr']:.2f} | {m['psnr_swir']:.2f} | "
                                 f"{m['sam']:.3f} | {m['ergas']:.3f} |")
        lines += ["", "Gain of (a) over the 10 m bands only:", ""]
        lines += [f"- {r['scene']} {method}: {gains(rows)} (first version a0: {gains(rows, 'a0')})"
                  for r in [*scenes, {"scene": "mean", "methods": mean}] for method, rows in r["methods"].items()]
        lines += ["", "B11 / B12 sharpened to 10 m, PSNR (dB) against their 10 m truth (a / a0 / bicubic): " + "; ".join(
            f"{r['scene']} " + ", ".join(f"{r['b11_b12_psnr'][v][0]:.1f}/{r['b11_b12_psnr'][v][1]:.1f}"
                                         for v in ("a", "a0", "bicubic")) for r in scenes), ""]
        eng = [r for r in scenes if r.get("engine")]
        if eng:
            lines += ["Through the tiled raster job (`fusion.fuse.fuse`, GeoTIFFs, tile 24 / overlap 12 px, PSF and "
                      "SRF estimated on the scene sample):", "",
                      "| scene | run | PSNR (dB) | SWIR PSNR (dB) | SAM (deg) | s |", "|---|---|---|---|---|---|"]
            for r in eng:
                for k, m in r["engine"].items():
                    lines.append(f"| {r['scene']} | {k.replace(' a', ' + 20 m (a)').replace(' 10m', ' 10 m only')} "
                                 f"| {m['psnr']:.2f} | {m['psnr_swir']:.2f} | {m['sam']:.3f} | {m['seconds']:.1f} |")
            lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    global METHODS  # --methods replaces the compared methods for this run
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "multires.json"))
    ap.add_argument("--md", default=str(ROOT / "docs" / "results" / "multires.md"))
    ap.add_argument("--set", choices=("dev", "held", "both"), default="both")
    ap.add_argument("--blur20", type=float, default=1.0, help="blur sigma (HR px) of the simulated 20 m bands")
    ap.add_argument("--no-engine", action="store_true", help="skip the raster-path check")
    ap.add_argument("--methods", default=",".join(METHODS), help="fusion methods compared (default: %(default)s)")
    a = ap.parse_args(argv)
    METHODS = tuple(m for m in a.methods.split(",") if m)
    res = {"msi10": MSI10, "msi20": MSI20, "f20": F20, "scale": SCALE, "blur20": a.blur20}
    for key, names in (("dev", DEV), ("held", HELD)):
        if a.set in (key, "both"):
            res[key] = [evaluate(n, a.blur20, not a.no_engine) for n in names]
            res[f"{key}_mean"] = mean_rows(res[key])
    res["env"] = {"cpu_count": os.cpu_count(), "numpy": np.__version__}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1))
    Path(a.md).write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
