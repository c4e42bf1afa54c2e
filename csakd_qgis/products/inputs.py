"""Product inputs of a job: delivered products replaced by GeoTIFFs the raster job reads, for as long as it runs.

An HSI input that is a product gives its hyperspectral raster; an MSI input gives its panchromatic raster
(PRISMA: the same .he5 as the HSI gives the 5 m PAN) or its finest multispectral raster (Sentinel-2: the 10 m
bands), and a Sentinel-2 product's 20 m bands go to the ``msi20`` input when the job takes one. Plain rasters
pass through untouched. The GeoTIFFs live in a hidden folder beside the output, removed when the job ends.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from csakd_qgis.errors import CsakdError, name_for_user
from csakd_qgis.fusion.multires import MSI20_ROLE
from csakd_qgis.products.base import ProductRaster, write_geotiff
from csakd_qgis.products.registry import is_product, open_product
from csakd_qgis.raster.guard import check_not_input, check_regular_input
from csakd_qgis.raster.io import check_has_valid_pixel
from csakd_qgis.temporaries import WorkFolder

ROLE_NAMES = {"hsi": "hyperspectral (HSI) input", "msi": "multispectral (MSI) input",
              "msi20": "20 m multispectral input"}


def pick_hsi(rasters: list[ProductRaster], path: str) -> ProductRaster:
    """The hyperspectral raster of a product, or one clear error for a multispectral-only product."""
    for r in rasters:
        if r.role == "HSI":
            return r
    names = ", ".join(r.role for r in rasters)
    raise CsakdError(f"The hyperspectral (HSI) input '{path}' is a {rasters[0].product} product, which has no "
                     f"hyperspectral raster (it has: {names}): give it as the MSI input and a hyperspectral "
                     "product or raster as the HSI.")


def pick_msi(rasters: list[ProductRaster], path: str) -> tuple[ProductRaster, ProductRaster | None]:
    """(the HR raster to fuse with, the 20 m raster or None) of a product given as the MSI input."""
    pan = [r for r in rasters if r.role == "PAN"]
    if pan:
        return pan[0], None
    msi = sorted((r for r in rasters if r.role.startswith("MSI")), key=lambda r: abs(r.transform.a))
    if not msi:
        raise CsakdError(f"The multispectral (MSI) input '{path}' is a {rasters[0].product} product without a "
                         "multispectral or panchromatic raster: give a multispectral product (e.g. Sentinel-2 "
                         "L2A, Landsat C2 L2) or raster as the MSI.")
    coarse = [r for r in msi[1:] if r.role == "MSI 20 m"]
    return msi[0], coarse[0] if coarse else None


def _folder_beside(out: str | os.PathLike) -> WorkFolder:
    out = Path(str(out))
    try:
        return WorkFolder(f".{out.name}.products.", out.parent or Path("."))
    except OSError as exc:
        raise CsakdError(f"Cannot create a work folder for the products beside the output '{out}' ({exc}): "
                         "choose an output folder you can write to.") from None


@contextlib.contextmanager
def product_inputs(inputs: dict[str, str | None], out: str | os.PathLike, takes_msi20: bool = False,
                   log: Callable[[str], None] | None = None, reads: Sequence[str | os.PathLike] = ()
                   ) -> Iterator[tuple[dict[str, str | None], list[str]]]:
    """``inputs`` ({"hsi", "msi", "msi20"} -> path) with every product replaced by a GeoTIFF of it.

    First refused: an input that is no regular file, and an output that is any file the run reads (a
    product's members, the files in ``reads``, e.g. the model's).
    Yields (inputs, messages: one summary line per product raster used). ``takes_msi20``: the job accepts a
    20 m MSI, so a Sentinel-2 product's 20 m bands are passed on when no 20 m input was given.
    """
    resolved: dict[str, str | None] = dict(inputs)
    messages: list[str] = []
    for key, path in inputs.items():
        check_regular_input(path, ROLE_NAMES.get(key, key))
    check_not_input(out, [*inputs.values(), *reads])  # products: their members are what the run reads
    if not any(v and is_product(v) for v in inputs.values()):
        yield resolved, messages
        return
    with _folder_beside(out) as folder:
        work = Path(folder)
        opened: dict[str, list[ProductRaster]] = {}

        def rasters_of(path: str) -> list[ProductRaster]:
            key = os.path.abspath(path)
            if key not in opened:
                opened[key] = open_product(path, work / f"unzipped{len(opened)}")
            return opened[key]

        chosen: dict[str, ProductRaster] = {}
        for key, path in inputs.items():
            if not path or not is_product(path):
                continue
            rasters = rasters_of(str(path))
            if key == "hsi":
                chosen[key] = pick_hsi(rasters, str(path))
            elif key == "msi":
                chosen[key], coarse = pick_msi(rasters, str(path))
                if coarse is not None and takes_msi20 and not inputs.get("msi20"):
                    chosen["msi20"] = coarse
                elif coarse is not None and not takes_msi20:
                    messages.append(f"{coarse.product} {coarse.role} bands not used: this model takes the "
                                    f"{chosen[key].role} bands only (classical and model-based methods use both).")
            else:  # msi20: a product's 20 m raster (e.g. a SAFE given there), else its finest
                fine, coarse = pick_msi(rasters, str(path))
                chosen[key] = coarse or fine
        names = {str(work): str(Path(str(out)).parent)}  # hidden work files -> what the user gave
        for key, raster in chosen.items():
            target = work / f"{key}.tif"
            if log:
                log(f"writing the {ROLE_NAMES.get(key, key)} from {raster.product} ({raster.role})")
            write_geotiff(raster, target)
            names[str(target)] = str(inputs.get(key) or inputs.get("msi"))
            check_clear(target, ROLE_NAMES.get(key, key), names[str(target)], raster)
            resolved[key] = str(target)
            messages.append(f"{ROLE_NAMES.get(key, key)}: {raster.summary()}")
        if "msi20" in chosen and not inputs.get("msi20"):  # the product's 20 m bands, not a --msi20 the user gave
            names[MSI20_ROLE] = f"20 m bands of the {chosen['msi20'].product} product"
        try:
            yield resolved, messages
        except BaseException as exc:
            name_for_user(exc, names)
            raise


def check_clear(path: Path, role: str, given: str, raster: ProductRaster) -> None:
    """CsakdError naming the user's product when its raster has no clear pixel (all flagged or nodata)."""
    try:
        check_has_valid_pixel(path, role)
    except CsakdError:
        raise CsakdError(f"The {role} '{given}' ({raster.product} {raster.role}) has no clear pixel: its quality "
                         "mask flags every pixel (cloud, shadow, outside the swath) or all are nodata. Choose a "
                         "clearer acquisition.") from None


__all__ = ["pick_hsi", "pick_msi", "product_inputs"]
