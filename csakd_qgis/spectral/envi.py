"""ENVI header text: its ``key = value`` pairs and its ``{a, b, c}`` lists (wavelength, fwhm, bbl, names)."""

from __future__ import annotations

import re
from pathlib import Path


def envi_header(path: Path) -> dict[str, str]:
    """Key -> raw value of an ENVI header (brace lists kept as text)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    out: dict[str, str] = {}
    for m in re.finditer(r"^\s*([A-Za-z][A-Za-z0-9 _]*?)\s*=\s*(\{.*?\}|[^\n]*)", text, re.M | re.S):
        out[m.group(1).strip().lower()] = m.group(2).strip()
    return out


def brace_list(text: str) -> list[str]:
    """The items of an ENVI ``{a, b, c}`` list, stripped."""
    return [t.strip() for t in text.strip().strip("{}").split(",") if t.strip()]


def number_list(text: str | None) -> list[float] | None:
    """The numbers of an ENVI list (items split by commas or blanks), or None when empty or not all numbers."""
    if not text:
        return None
    parts = [p for item in brace_list(text) for p in item.split()]
    try:
        return [float(p) for p in parts] or None
    except ValueError:
        return None
