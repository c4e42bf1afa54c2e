"""Miniature delivered products for the fault suite (the builders of tests/products) and the ways a battery breaks
them: a number in their metadata edited, a zip whose members claim a huge size, a scene under cloud."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "products"))

from _helpers_raster import HAVE_SHARED  # noqa: E402


def needs_products() -> None:
    """Skip without ../shared/data (the miniature products are filled with real EnMAP pixels)."""
    if not HAVE_SHARED:
        pytest.skip("needs ../shared/data/enmap_potsdam (the miniature products hold real EnMAP pixels); absent here")


def enmap(folder: Path, **kw) -> dict:
    """A miniature EnMAP L2A product folder (see tests/products/_builders.build_enmap)."""
    needs_products()
    from _builders import build_enmap

    return build_enmap(folder, **kw)


def sentinel2(folder: Path, **kw) -> dict:
    """A miniature Sentinel-2 L2A .SAFE (see tests/products/_builders_msi.build_sentinel2)."""
    needs_products()
    from _builders_msi import build_sentinel2

    return build_sentinel2(folder, **kw)


# what a run logs on stderr about the product rasters it reads (information, not part of the error)
PRODUCT_NOTE = re.compile(r"^writing the .* from .*\(.*\)$|^(hyperspectral \(HSI\)|multispectral \(MSI\)|20 m "
                          r"multispectral) input: |^Sentinel-2 L2A MSI 20 m bands not used")


def without_product_notes(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """``proc`` with the product information lines removed from stderr (so the error line stands alone)."""
    err = "\n".join(ln for ln in proc.stderr.splitlines() if not PRODUCT_NOTE.search(ln))
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout, err)


def set_xml_number(path: Path, tag: str, value: str, nth: int = 0) -> None:
    """Replace the text of the ``nth`` element ``tag`` (any namespace prefix) of an XML file with ``value``."""
    text = path.read_text(encoding="utf-8")
    hits = list(re.finditer(rf"(<(?:\w+:)?{tag}(?:\s[^>]*)?>)([^<]*)(</)", text))
    assert len(hits) > nth, f"no <{tag}> number {nth} in {path}"
    m = hits[nth]
    path.write_text(text[:m.start(2)] + value + text[m.end(2):], encoding="utf-8")


def all_cloud(safe: Path) -> None:
    """Flag every pixel of a .SAFE's scene classification as cloud (high probability, class 9)."""
    import rasterio

    scl = next(safe.rglob("*_SCL_20m.jp2"))
    with rasterio.open(scl, "r+") as ds:
        ds.write(np.full((ds.height, ds.width), 9, np.uint8), 1)


def zip_claiming(path: Path, member: str, claimed: int, real: bytes = b"\0" * 4096) -> Path:
    """A zip whose one member holds ``real`` bytes but whose headers claim ``claimed`` bytes unpacked (a zip bomb's
    declared size, without writing gigabytes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, real)
    data = bytearray(path.read_bytes())
    for sig, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central headers: uncompressed size
        pos = data.find(sig)
        data[pos + at:pos + at + 4] = struct.pack("<I", claimed)
    path.write_bytes(bytes(data))
    return path


__all__ = ["PRODUCT_NOTE", "all_cloud", "enmap", "needs_products", "sentinel2", "set_xml_number", "without_product_notes",
           "zip_claiming"]
