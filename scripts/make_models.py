"""Build the ready-made Processing models in processing/ with the QGIS API.

Run: .venv/bin/python scripts/make_models.py [--out FOLDER]

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
    # Qt writes XML attributes in QHash order: a fixed seed (read when Qt starts) keeps the files stable
    os.environ.setdefault("QT_HASH_SEED", "3")
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


def _add_parameters(m, definitions) -> None:
    """Add model parameters (QgsProcessingParameterDefinition objects) laid out in a column."""
    from qgis.core import QgsProcessingModelParameter

    for i, definition in enumerate(definitions):
        p = QgsProcessingModelParameter(definition.name())
        p.setPosition(p.position().__class__(80, 60 + 70 * i))
        m.addModelParameter(definition, p)


def _child(alg_id: str, child_id: str, description: str, sources: dict, x: float, y: float,
           outputs: dict | None = None):
    """A child algorithm with readable id, its parameter sources and model outputs {name: (child output, label)}."""
    from qgis.core import QgsProcessingModelChildAlgorithm, QgsProcessingModelOutput

    child = QgsProcessingModelChildAlgorithm(alg_id)
    child.setChildId(child_id)
    child.setDescription(description)
    for name, src in sources.items():
        child.addParameterSources(name, [src])
    model_outputs = {}
    for name, (child_output, label) in (outputs or {}).items():
        out = QgsProcessingModelOutput(name, label)
        out.setChildId(child_id)
        out.setChildOutputName(child_output)
        model_outputs[name] = out
    child.setModelOutputs(model_outputs)
    child.setPosition(child.position().__class__(x, y))
    return child


def _model_parameters():
    """MODEL / model file / device parameters shared by the models that run csakd:fuse.

    ``model`` is a string, not an enum: any zoo model installed where the model runs can be named, and the
    file does not depend on the zoo present when it was generated; csakd:fuse refuses unknown names.
    """
    from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterFile, QgsProcessingParameterString

    from csakd_qgis.algorithms.fusion_base import DEVICES

    return [
        QgsProcessingParameterString("model", "Model: a zoo model name, glp, gsa, bicubic, or 'file' (then give "
                                     "the model file)", defaultValue="glp"),
        QgsProcessingParameterFile("model_file", "Model file (.safetensors, when model is 'file')",
                                   extension="safetensors", optional=True),
        QgsProcessingParameterEnum("device", "Device", options=DEVICES, defaultValue="auto",
                                   usesStaticStrings=True),
    ]


def _fuse_sources(hsi, msi) -> dict:
    """Parameter sources of a csakd:fuse child (model/model_file/device from the model parameters)."""
    from qgis.core import QgsProcessingModelChildParameterSource as Src

    return {"HSI": hsi, "MSI": msi, "MODEL": Src.fromModelParameter("model"),
            "MODEL_FILE": Src.fromModelParameter("model_file"), "DEVICE": Src.fromModelParameter("device")}


def reproject_fuse_clip():
    """gdal:warpreproject of the HSI -> csakd:fuse -> gdal:cliprasterbymasklayer with a polygon AOI."""
    from qgis.core import (
        QgsProcessing,
        QgsProcessingModelAlgorithm,
        QgsProcessingParameterCrs,
        QgsProcessingParameterRasterLayer,
        QgsProcessingParameterVectorLayer,
    )
    from qgis.core import QgsProcessingModelChildParameterSource as Src

    m = QgsProcessingModelAlgorithm("Reproject HSI, fuse, clip to AOI", "CSAKD models",
                                    "csakd_reproject_fuse_clip")
    m.setHelpContent({"ALG_DESC": (
        "Reprojects the hyperspectral image to the given CRS (usually the multispectral image's) with GDAL "
        "warp, fuses it with the multispectral image (csakd:fuse: a zoo model, a model file or a classical "
        "method, on the chosen device), then clips the fused image to the polygons of the AOI layer "
        "(GDAL clip by mask layer, MSI pixel grid kept). Child ids: reproject, fuse, clip. "
        "Output parameter: clip:clipped.")})
    _add_parameters(m, [
        QgsProcessingParameterRasterLayer("hsi", "Low-resolution hyperspectral image"),
        QgsProcessingParameterRasterLayer("msi", "High-resolution multispectral image"),
        QgsProcessingParameterCrs("crs", "CRS of the multispectral image", "EPSG:32633"),
        *_model_parameters(),
        QgsProcessingParameterVectorLayer("aoi", "Area of interest (polygons)",
                                          [QgsProcessing.TypeVectorPolygon]),
    ])
    m.addChildAlgorithm(_child("gdal:warpreproject", "reproject", "Reproject HSI", {
        "INPUT": Src.fromModelParameter("hsi"), "TARGET_CRS": Src.fromModelParameter("crs"),
        "RESAMPLING": Src.fromStaticValue(1),  # bilinear
        "DATA_TYPE": Src.fromStaticValue(6),  # Float32
    }, 320, 100))
    m.addChildAlgorithm(_child("csakd:fuse", "fuse", "Fuse", _fuse_sources(
        Src.fromChildOutput("reproject", "OUTPUT"), Src.fromModelParameter("msi")), 560, 180))
    m.addChildAlgorithm(_child("gdal:cliprasterbymasklayer", "clip", "Clip to AOI", {
        "INPUT": Src.fromChildOutput("fuse", "OUTPUT"), "MASK": Src.fromModelParameter("aoi"),
        "CROP_TO_CUTLINE": Src.fromStaticValue(True),
        # not KEEP_RESOLUTION: its -tap snaps to multiples of the pixel size and so resamples grids whose
        # origin is not such a multiple; -crop_to_cutline without -tr keeps the fused (MSI) pixel grid and
        # copies the pixels unchanged (checked with GDAL 3.6, tests/test_models3.py)
        "KEEP_RESOLUTION": Src.fromStaticValue(False),
    }, 800, 260, outputs={"clipped": ("OUTPUT", "Fused hyperspectral image clipped to the AOI")}))
    m.updateDestinationParameters()
    return m


def simulate_fuse_evaluate():
    """csakd:simulate_pair from a reference HSI -> csakd:fuse -> csakd:evaluate against the reference."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
        QgsProcessingParameterString,
    )
    from qgis.core import QgsProcessingModelChildParameterSource as Src

    m = QgsProcessingModelAlgorithm("Simulate pair, fuse, evaluate", "CSAKD models",
                                    "csakd_simulate_fuse_evaluate")
    m.setHelpContent({"ALG_DESC": (
        "Wald-protocol test of a fusion model on your own data: simulates a low-resolution HSI and a "
        "multispectral image of the given sensor from a high-resolution reference HSI (csakd:simulate_pair), "
        "fuses them (csakd:fuse) and evaluates the result against the reference (csakd:evaluate: PSNR, SAM, "
        "ERGAS, RMSE, SSIM next to bicubic upsampling). Child ids: simulate, fuse, evaluate. Outputs: "
        "fuse:fused, evaluate:report (HTML) and evaluate:metrics (JSON); the metric numbers are in the "
        "evaluate child's results.")})
    _add_parameters(m, [
        QgsProcessingParameterRasterLayer("reference", "Reference high-resolution HSI"),
        QgsProcessingParameterString("sensor", "MSI sensor and bands", defaultValue="S2A:B2,B3,B4,B8"),
        QgsProcessingParameterNumber("scale", "Scale factor", QgsProcessingParameterNumber.Integer, 4,
                                     minValue=2, maxValue=16),
        *_model_parameters(),
    ])
    m.addChildAlgorithm(_child("csakd:simulate_pair", "simulate", "Simulate LR-HSI + HR-MSI", {
        "HSI": Src.fromModelParameter("reference"), "SENSOR": Src.fromModelParameter("sensor"),
        "SCALE": Src.fromModelParameter("scale"), "SNR": Src.fromStaticValue(0.0),
    }, 320, 100))
    m.addChildAlgorithm(_child("csakd:fuse", "fuse", "Fuse", _fuse_sources(
        Src.fromChildOutput("simulate", "OUTPUT_LR"), Src.fromChildOutput("simulate", "OUTPUT_MSI")),
        560, 180, outputs={"fused": ("OUTPUT", "Fused hyperspectral image")}))
    m.addChildAlgorithm(_child("csakd:evaluate", "evaluate", "Evaluate", {
        "FUSED": Src.fromChildOutput("fuse", "OUTPUT"), "REFERENCE": Src.fromModelParameter("reference"),
        "LR": Src.fromChildOutput("simulate", "OUTPUT_LR"), "SCALE": Src.fromModelParameter("scale"),
    }, 800, 260, outputs={"report": ("REPORT", "Evaluation report (HTML)"),
                          "metrics": ("JSON", "Metrics (JSON)")}))
    m.updateDestinationParameters()
    return m


MODELS = {"reproject_fuse_classical.model3": reproject_fuse_classical,
          "reproject_fuse_clip.model3": reproject_fuse_clip,
          "simulate_fuse_evaluate.model3": simulate_fuse_evaluate}


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
