"""``csakd models``: the zoo models found on this machine, with what their cards say (registered in cli/__init__.py).

Reads only the JSON cards and the safetensors headers (no torch), so it is instant.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from csakd_qgis.zoo.registry import MODEL_DIRS_ENV, list_models, model_dirs


def _fmt_params(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "?"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table (one line per model)."""
    head = ["name", "arch", "role", "scale", "HSI", "MSI", "params", "PSNR", "SAM", "metrics on"]
    lines = []
    for r in rows:
        if "error" in r:
            lines.append([r["name"], "?", "?", "?", "?", "?", "?", "?", "?", "unreadable card: " + r["error"]])
            continue
        hsi = f"{r.get('hsi_bands')} bands"
        if r.get("hsi_range_nm"):
            hsi += f" {r['hsi_range_nm'][0]:.0f}-{r['hsi_range_nm'][1]:.0f} nm"
        if r.get("hsi_sensor"):
            hsi = f"{str(r['hsi_sensor']).split(' (')[0]}, {hsi}"
        msi = str(r.get("msi_sensor") or "?").split(" (")[0]
        if r.get("msi_band_names"):
            msi += ":" + ",".join(r["msi_band_names"])
        else:
            msi += f" ({r.get('msi_bands')} bands)"
        m = r.get("metrics") or {}
        src = r.get("metrics_source") or ""
        if src == "test" and r.get("glp_test"):
            src += f" (glp {r['glp_test'].get('psnr', float('nan')):.2f} / {r['glp_test'].get('sam', float('nan')):.2f})"
        if r.get("adapted"):
            src += " [adapted]"
        if r.get("arch") == "dodn":
            msi = "none at inference (" + msi + " in training)"
        lines.append([r["name"], str(r.get("arch")), str(r.get("role")), str(r.get("scale")), hsi, msi, _fmt_params(r.get("params")),
                      f"{m['psnr']:.2f}" if "psnr" in m else "-", f"{m['sam']:.2f}" if "sam" in m else "-", src])
    widths = [max(len(head[i]), *(len(ln[i]) for ln in lines)) if lines else len(head[i]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head).rstrip(), *(fmt.format(*ln).rstrip() for ln in lines)])


def add_models_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``csakd models``: list the zoo models (table, or --json)."""

    p = subparsers.add_parser("models", help="list the zoo models (scale, sensors, bands, params, metrics)",
                              description="List the models of the zoo (folders: $" + MODEL_DIRS_ENV + ", the "
                              "plugin's models/ and the repository's models/) with what their model cards say: "
                              "scale, HSI/MSI sensors and bands, parameters and the metrics (PSNR dB, SAM degrees "
                              "on held-out test scenes when the card has them, else validation).")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=run_models)
    return p


def run_models(args: argparse.Namespace) -> int:
    """Handler of ``csakd models``."""

    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    if not rows:
        print("No zoo model found. Searched: " + ", ".join(str(d) for d in model_dirs()))
        return 0
    print(format_table(rows))
    return 0
