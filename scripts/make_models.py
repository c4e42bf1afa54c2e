"""Build the ready-made Processing models in processing/ with the QGIS API (run: make models).

Models are generated rather than hand-edited so their child ids stay readable and their parameters
match the algorithms' current definitions.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _qgis():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.append("/usr/share/qgis/python/plugins")
    sys.path.insert(0, str(ROOT))
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    from csakd_qgis.plugin import CsakdPlugin

    plugin = CsakdPlugin(None)
    plugin.initProcessing()
    return app, plugin


def reproject_fuse_classical():
    """HSI reprojected to the MSI's CRS with gdal:warpreproject, then csakd:fuse_classical."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterCrs,
        QgsProcessingParameterEnum,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.core import (
        QgsProcessingModelChildParameterSource as Src,
    )

    m = QgsProcessingModelAlgorithm("Reproject HSI then fuse (classical)", "CSAKD models",
                                    "csakd_reproject_fuse_classical")
    m.setHelpContent({"ALG_DESC": "Reprojects the hyperspectral image to the given CRS (usually the "
                      "multispectral image's) with GDAL warp, then fuses it with the multispectral image "
                      "using a classical method. Output parameter: fuse:fused."})
    params = [
        (QgsProcessingParameterRasterLayer("hsi", "Low-resolution hyperspectral image"), "hsi"),
        (QgsProcessingParameterRasterLayer("msi", "High-resolution multispectral image"), "msi"),
        (QgsProcessingParameterCrs("crs", "CRS of the multispectral image", "EPSG:32633"), "crs"),
        (QgsProcessingParameterEnum("method", "Fusion method", options=["glp", "gsa", "bicubic"],
                                    defaultValue="glp", usesStaticStrings=True), "method"),
    ]
    for i, (definition, name) in enumerate(params):
        p = QgsProcessingModelParameter(name)
        p.setPosition(p.position().__class__(80, 60 + 70 * i))
        m.addModelParameter(definition, p)

    reproject = QgsProcessingModelChildAlgorithm("gdal:warpreproject")
    reproject.setChildId("reproject")
    reproject.setDescription("Reproject HSI")
    reproject.addParameterSources("INPUT", [Src.fromModelParameter("hsi")])
    reproject.addParameterSources("TARGET_CRS", [Src.fromModelParameter("crs")])
    reproject.addParameterSources("RESAMPLING", [Src.fromStaticValue(1)])  # bilinear
    reproject.addParameterSources("DATA_TYPE", [Src.fromStaticValue(6)])  # Float32
    reproject.setPosition(reproject.position().__class__(320, 100))
    m.addChildAlgorithm(reproject)

    fuse = QgsProcessingModelChildAlgorithm("csakd:fuse_classical")
    fuse.setChildId("fuse")
    fuse.setDescription("Fuse")
    fuse.addParameterSources("HSI", [Src.fromChildOutput("reproject", "OUTPUT")])
    fuse.addParameterSources("MSI", [Src.fromModelParameter("msi")])
    fuse.addParameterSources("METHOD", [Src.fromModelParameter("method")])
    out = QgsProcessingModelOutput("fused", "Fused hyperspectral image")
    out.setChildId("fuse")
    out.setChildOutputName("OUTPUT")
    fuse.setModelOutputs({"fused": out})
    fuse.setPosition(fuse.position().__class__(560, 160))
    m.addChildAlgorithm(fuse)
    m.updateDestinationParameters()
    return m


MODELS = {"reproject_fuse_classical.model3": reproject_fuse_classical}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "processing"))
    args = parser.parse_args(argv)
    app, plugin = _qgis()  # noqa: F841 (keep references alive)
    for name, build in MODELS.items():
        model = build()
        path = Path(args.out) / name
        if not model.toFile(str(path)):
            raise SystemExit(f"could not write {path}")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
