#!/usr/bin/env python3
"""Print the training corpus table (every real cube, its split and its pixels on the EnMAP grid) as Markdown.

Each benchmark cube as read (native bands and range after bad / dark bands are dropped), whether it enters the
corpus on the 218-band EnMAP grid (sources enmap, jasper, urban, extra_hsi) and on its 101 VNIR bands below
1000 nm (the coverage rule, training.corpus.grid_coverage), and the corpus pixels per split. Needs
../shared/data. Run from the repository (the table in docs/CORPUS.md is this output):
    flock /tmp/csakd-heavy.lock .venv/bin/python scripts/corpus_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from csakd_qgis.spectral.band_grids import enmap_grid  # noqa: E402
from csakd_qgis.training.corpus import EXTRA_SPLIT, MIN_GRID_COVERAGE, build_corpus, grid_coverage  # noqa: E402
from csakd_qgis.training.sources.benchmark_cubes import CATALOGUE, default_data_dir, read_benchmark_cube  # noqa: E402
from csakd_qgis.training.sources.mat_cubes import read_mat_cube  # noqa: E402

RULES = {"reflectance": "as stored", "x1e-4": "x 1e-4", "x1e-3": "x 1e-3", "x1/65535": "/ 65535",
         "robust": "robust p99.5", "radiance": "radiance / solar, robust"}


def main() -> int:
    corpus = build_corpus(sources=("enmap", "jasper", "urban", "extra_hsi"), n_synthetic=0)
    on_grid = {sc.name for sc in corpus.scenes}
    skipped = {s["name"]: s["reason"] for s in corpus.skipped}
    grid_wl, grid_fw = enmap_grid()
    vnir = grid_wl < 1000.0
    print("| scene | sensor | land cover | size (px) | bands | range nm | centres | values | split | pixels "
          "| EnMAP grid | EnMAP VNIR |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    native = {"enmap_potsdam": enmap_grid()[0]}
    for source, fname in (("aviris_jasper_ridge", "jasperRidge2_R198.mat"), ("hydice_urban", "subimage_Urban_R162.mat")):
        native[source] = np.asarray(read_mat_cube(default_data_dir() / "jasper_urban" / fname)[1])
    for sc in corpus.scenes:
        if sc.source in native:
            m, wl = sc.meta, native[sc.source]
            print(f"| {sc.name} | {m['sensor']} | {', '.join(m['land_cover'])} | {sc.cube.shape[1]} x "
                  f"{sc.cube.shape[2]} | {wl.size} | {wl.min():.0f}-{wl.max():.0f} | {m['wavelengths'].split(' ')[0]} | "
                  f"{m['value_scaling']} | {sc.split} | {int(np.isfinite(sc.cube).all(0).sum())} | used | used |")
    vnir_px = {split: sum(int(np.prod(sc.cube.shape[1:])) for sc in corpus.split(split) if sc.source in native)
               for split in ("train", "val", "test")}
    for spec in CATALOGUE:
        bc = read_benchmark_cube(spec.key)
        c, wl, pv = bc.cube, bc.wavelengths, bc.provenance
        grid = "used" if spec.key in on_grid else f"skipped: {skipped.get(spec.key, '?').split(',')[0]}"
        cov = grid_coverage(bc.wavelengths, grid_wl[vnir], grid_fw[vnir])
        on_vnir = "used" if cov >= MIN_GRID_COVERAGE else f"skipped ({cov:.0%})"
        vnir_px[EXTRA_SPLIT[spec.site]] += int(c.shape[1] * c.shape[2]) if cov >= MIN_GRID_COVERAGE else 0
        print(f"| {spec.key} | {spec.sensor} | {', '.join(spec.land_cover)} | {c.shape[1]} x {c.shape[2]} | "
              f"{c.shape[0]} of {pv['bands_read']} | {wl[0]:.0f}-{wl[-1]:.0f} | {pv['wavelengths'].split(' ')[0]} | "
              f"{RULES[spec.scaling]} | {EXTRA_SPLIT[spec.site]} | {c.shape[1] * c.shape[2]} | {grid} | {on_vnir} |")
    counts = corpus.pixel_counts()
    print(f"\nEnMAP-grid corpus pixels (real): train {counts['train']}, val {counts['val']}, test {counts['test']}")
    print(f"EnMAP VNIR-grid corpus pixels (real): train {vnir_px['train']}, val {vnir_px['val']}, test {vnir_px['test']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
