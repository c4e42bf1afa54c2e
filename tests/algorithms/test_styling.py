"""Display style of the provider's rasters: bands by wavelength, one 2-98 % stretch, nodata transparent,
.qml/.qmd sidecars (atomic, gone on failure), the post-processor of processing.runAndLoadResults."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers_raster import read_all, write_pair
from qgis_helpers import leftovers, run_json

from csakd_qgis.quality.report import rgb_bands

pytestmark = pytest.mark.qgis


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict:
    """An EnMAP-derived (or synthetic) pair whose fused output has 8 nodata columns on the left."""
    return write_pair(tmp_path_factory.mktemp("style_pair"), scale=4, nodata_msi_cols=8)


def _fuse(tmp_path, pair, name: str = "fused.tif", **extra) -> str:
    import processing

    params = {"HSI": str(pair["hsi"]), "MSI": str(pair["msi"]), "METHOD": "bicubic",
              "OUTPUT": str(tmp_path / name), **extra}
    return processing.run("csakd:fuse_classical", params)["OUTPUT"]


def _nearest(path: str, targets) -> list[int]:
    from csakd_qgis.raster.io import read_meta

    wl = read_meta(path).wavelengths
    return [int(np.argmin([abs(w - t) for w in wl])) + 1 for t in targets]


def test_rgb_bands_nearest_good_bands():
    wl = [450.0, 462.0, 548.0, 552.0, 641.0, 700.0]
    assert rgb_bands(wl, 6) == [4, 2, 1]
    assert rgb_bands(wl, 6, good=[0, 1, 2, 4, 5]) == [4, 2, 1]
    assert rgb_bands(wl, 6, good=[0, 3, 5]) == [5, 3, 0]  # bad bands (bbl = 0) are never shown
    assert rgb_bands(wl, 6, targets=(700.0,)) == [5]
    assert rgb_bands(None, 10) == [6, 3, 1]  # no wavelengths: spread bands


def test_display_choices():
    from qgis.core import QgsProcessingException

    from csakd_qgis.algorithms.styling import display_targets

    assert display_targets("true_colour", "") == (640.0, 550.0, 460.0)
    assert display_targets("false_colour", "") == (860.0, 650.0, 550.0)
    assert display_targets("custom", "800, 660 ,560") == (800.0, 660.0, 560.0)
    assert display_targets("custom", "700") == (700.0,)
    for bad in ("", "700,600", "red,green,blue", "-5"):
        with pytest.raises(QgsProcessingException, match="DISPLAY_WAVELENGTHS"):
            display_targets("custom", bad)


def test_output_style_on_disk(provider, pair, tmp_path):
    """The sidecars QGIS opens with the file: true colour, one 2-98 % cut of the three bands, nodata transparent."""
    from qgis.core import QgsRasterLayer

    out = _fuse(tmp_path, pair, METHOD="glp")  # GLP uses the MSI: its nodata columns are nodata in the output
    names = leftovers(tmp_path)
    assert {"fused.qmd", "fused.qml", "fused.tif"} <= set(names) and not any("tmp" in n for n in names), names
    layer = QgsRasterLayer(out, "fused", "gdal")  # a plain open (drag and drop): the .qml is the default style
    assert layer.styleURI() == str(tmp_path / "fused.qml")
    renderer = layer.renderer()
    bands = _nearest(out, (640.0, 550.0, 460.0))
    assert renderer.type() == "multibandcolor" and renderer.usesBands() == bands

    data, _ = read_all(out)
    lo, hi = np.nanquantile(data[[b - 1 for b in bands]], [0.02, 0.98])  # the whole (small) image is the sample
    for ce in (renderer.redContrastEnhancement(), renderer.greenContrastEnhancement(),
               renderer.blueContrastEnhancement()):
        assert ce.minimumValue() == pytest.approx(lo, rel=1e-5) and ce.maximumValue() == pytest.approx(hi, rel=1e-5)

    h, w = data.shape[1:]
    image = renderer.block(1, layer.extent(), w, h).image()  # what the canvas draws, pixel for pixel
    alpha = np.array([[image.pixelColor(x, y).alpha() for x in range(w)] for y in range(0, h, 7)])
    nodata = ~np.isfinite(data[bands[0] - 1, ::7])
    assert nodata[:, :8].all() and (alpha[nodata] == 0).all() and (alpha[~nodata] == 255).all()

    assert layer.loadDefaultMetadata()[1]  # the .qmd, as the desktop loads it beside the .qml
    abstract = layer.metadata().abstract()
    for text in ("csakd:fuse_classical", "model: glp", "scale: 4", "device: cpu", "HSI shift: dx", "time: "):
        assert text in abstract, abstract


def test_int16_output_is_stretched_in_reflectance(provider, pair, tmp_path):
    """DTYPE int16: QGIS applies the band scale, so the stretch limits are reflectance and nodata is transparent."""
    from qgis.core import QgsRasterLayer

    from csakd_qgis.raster.io import read_reflectance

    out = _fuse(tmp_path, pair, METHOD="glp", DTYPE="int16")
    layer = QgsRasterLayer(out, "fused", "gdal")
    renderer = layer.renderer()
    bands = _nearest(out, (640.0, 550.0, 460.0))
    data = read_reflectance(out)
    lo, hi = np.nanquantile(data[[b - 1 for b in bands]], [0.02, 0.98])
    assert 0 < lo < hi < 1.5  # reflectance, not the stored integers
    ce = renderer.redContrastEnhancement()
    assert ce.minimumValue() == pytest.approx(lo, abs=1e-4) and ce.maximumValue() == pytest.approx(hi, abs=1e-4)
    h, w = data.shape[1:]
    image = renderer.block(1, layer.extent(), w, h).image()
    alpha = np.array([[image.pixelColor(x, y).alpha() for x in range(w)] for y in range(0, h, 7)])
    nodata = ~np.isfinite(data[bands[0] - 1, ::7])
    assert nodata[:, :8].all() and (alpha[nodata] == 0).all() and (alpha[~nodata] == 255).all()


@pytest.mark.parametrize("options, renderer_type, targets", [
    ({"DISPLAY_BANDS": "false_colour"}, "multibandcolor", (860.0, 650.0, 550.0)),
    ({"DISPLAY_BANDS": "custom", "DISPLAY_WAVELENGTHS": "700"}, "singlebandgray", (700.0,)),
])
def test_display_bands_option(provider, pair, tmp_path, options, renderer_type, targets):
    from qgis.core import QgsRasterLayer

    out = _fuse(tmp_path, pair, **options)
    layer = QgsRasterLayer(out, "fused", "gdal")  # keep it: the renderer belongs to the layer
    renderer = layer.renderer()
    assert renderer.type() == renderer_type and renderer.usesBands() == _nearest(out, targets)


def test_custom_display_without_wavelengths_is_refused(provider, pair, tmp_path):
    from qgis.core import QgsApplication, QgsProcessingContext

    alg = QgsApplication.processingRegistry().createAlgorithmById("csakd:fuse_classical")
    ok, msg = alg.checkParameterValues({"HSI": str(pair["hsi"]), "MSI": str(pair["msi"]), "DISPLAY_BANDS": "custom",
                                        "OUTPUT": str(tmp_path / "f.tif")}, QgsProcessingContext())
    assert not ok and "DISPLAY_WAVELENGTHS is empty" in msg


def test_one_band_output_is_grey(provider, pair, tmp_path):
    from qgis.core import QgsRasterLayer

    import processing

    res = processing.run("csakd:simulate_pair", {
        "HSI": str(pair["hsi"]), "SENSOR": "gaussian:560/40", "SCALE": 2, "OUTPUT_LR": str(tmp_path / "lr.tif"),
        "OUTPUT_MSI": str(tmp_path / "msi.tif")})
    msi = QgsRasterLayer(res["OUTPUT_MSI"], "msi", "gdal")
    lr = QgsRasterLayer(res["OUTPUT_LR"], "lr", "gdal")
    assert msi.bandCount() == 1 and msi.renderer().type() == "singlebandgray" and msi.renderer().usesBands() == [1]
    assert lr.renderer().type() == "multibandcolor"
    assert lr.renderer().usesBands() == _nearest(res["OUTPUT_LR"], (640.0, 550.0, 460.0))


def test_failed_styling_leaves_nothing(provider, pair, tmp_path, monkeypatch):
    """The .qmd fails after the .qml was written: the run fails and leaves no raster, sidecar or temp file."""
    from qgis.core import QgsProcessingException

    import processing
    from csakd_qgis.algorithms import styling

    real = styling.write_files_atomic

    def disk_full(tmp):
        raise OSError(28, "No space left on device", str(tmp))

    def fail_on_qmd(items):  # the .qml temporary is written, then writing the .qmd fails
        real([(path, role, disk_full if str(path).endswith(".qmd") else data) for path, role, data in items])

    monkeypatch.setattr(styling, "write_files_atomic", fail_on_qmd)
    with pytest.raises(QgsProcessingException):
        processing.run("csakd:fuse_classical", {"HSI": str(pair["hsi"]), "MSI": str(pair["msi"]),
                                                "METHOD": "bicubic", "OUTPUT": str(tmp_path / "fused.tif")})
    assert leftovers(tmp_path) == []


def test_run_and_load_results_applies_the_style(provider, pair, tmp_path):
    """processing.runAndLoadResults: the layer added to the project already has the style and the abstract."""
    from qgis.core import QgsProject, QgsRasterLayer

    import processing
    from csakd_qgis.algorithms import styling

    project = QgsProject.instance()
    project.removeAllMapLayers()
    out = processing.runAndLoadResults("csakd:fuse_classical", {
        "HSI": str(pair["hsi"]), "MSI": str(pair["msi"]), "METHOD": "bicubic",
        "OUTPUT": str(tmp_path / "loaded.tif")})["OUTPUT"]
    (layer,) = project.mapLayers().values()
    assert out in styling._STYLERS  # the post-processor is kept alive beyond the run
    assert layer.renderer().type() == "multibandcolor"
    assert layer.renderer().usesBands() == _nearest(out, (640.0, 550.0, 460.0))
    assert layer.metadata().abstract().startswith("Made by csakd:fuse_classical")
    fresh = QgsRasterLayer(out, "again", "gdal")
    assert fresh.renderer().usesBands() == layer.renderer().usesBands()
    assert (fresh.renderer().redContrastEnhancement().maximumValue()
            == layer.renderer().redContrastEnhancement().maximumValue())
    project.removeAllMapLayers()


def test_qgis_process_writes_the_style(pair, tmp_path):
    """Headless runs (no project to load into) still leave the sidecars, e.g. for csakd:coregister."""
    import xml.etree.ElementTree as ET

    out = tmp_path / "coreg.tif"
    rc, data, err = run_json("csakd:coregister", {"HSI": pair["hsi"], "MSI": pair["msi"], "OUTPUT": out},
                             tmp_path / "profile")
    assert rc == 0, err
    renderer = ET.parse(tmp_path / "coreg.qml").getroot().find("pipe/rasterrenderer")
    bands = [int(renderer.get(k)) for k in ("redBand", "greenBand", "blueBand")]
    assert renderer.get("type") == "multibandcolor" and bands == _nearest(str(out), (640.0, 550.0, 460.0))
    assert "csakd:coregister" in (tmp_path / "coreg.qmd").read_text(encoding="utf-8")


def test_superresolved_output_is_styled(provider, pair, tmp_path):
    """Single-image super-resolution (no MSI, no shift) gets the same style and an abstract of its own."""
    from qgis.core import QgsRasterLayer

    import processing

    out = processing.run("csakd:superresolve", {"HSI": str(pair["hsi"]), "MODEL": "bicubic", "SCALE": 2,
                                                "OUTPUT": str(tmp_path / "sr.tif")})["OUTPUT"]
    layer = QgsRasterLayer(out, "sr", "gdal")
    assert layer.renderer().usesBands() == _nearest(out, (640.0, 550.0, 460.0))
    assert layer.loadDefaultMetadata()[1]
    abstract = layer.metadata().abstract()
    assert "csakd:superresolve" in abstract and "model: bicubic" in abstract and "shift" not in abstract, abstract
