"""``csakd models``: the zoo models found on this machine, with what their cards say (wired into cli.py).

Reads only the JSON cards and the safetensors headers (no torch), so it is instant.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
from pathlib import Path
from typing import Any

KEYS = ("psnr", "sam", "ergas")


def count_params(weights: Path) -> int | None:
    """Number of values in a .safetensors file, from its JSON header (None when unreadable)."""
    try:
        with open(weights, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > 100 * 2 ** 20:
                return None
            header = json.loads(fh.read(n))
    except (OSError, struct.error, ValueError):
        return None
    return int(sum(math.prod(v.get("shape", [])) for k, v in header.items() if k != "__metadata__"))


def _mean_metrics(per_scene: Any) -> dict[str, float] | None:
    """{psnr, sam, ergas} of a metrics dict, or the mean over a {scene: metrics} dict."""
    if not isinstance(per_scene, dict) or not per_scene:
        return None
    if any(k in per_scene for k in KEYS):
        out = {k: float(per_scene[k]) for k in KEYS if isinstance(per_scene.get(k), (int, float))}
        if "psnr" not in out and isinstance(per_scene.get("psnr_capped"), (int, float)):
            out["psnr"] = float(per_scene["psnr_capped"])  # an exact band makes the PSNR inf (null in the card)
        return out
    rows = [v for v in per_scene.values() if isinstance(v, dict)]
    out = {}
    for k in KEYS:
        vals = [float(r[k]) for r in rows if isinstance(r.get(k), (int, float))]
        if vals:
            out[k] = sum(vals) / len(vals)
    return out or None


def model_info(name: str, card_path: Path) -> dict[str, Any]:
    """One row of ``csakd models`` for a zoo model (``error`` set when its card cannot be read)."""
    from .core.errors import CsakdError
    from .core.modelcard import model_paths, read_card

    _, st_path = model_paths(card_path)
    row: dict[str, Any] = {"name": name, "card": str(card_path), "weights": str(st_path)}
    try:
        card = read_card(card_path)
    except CsakdError as exc:
        row["error"] = str(exc)
        return row
    hsi, msi = card.get("hsi") or {}, card.get("msi") or {}
    params = (card.get("complexity") or {}).get("params") or count_params(st_path)
    val = card.get("validation") or {}
    test = val.get("test") or {}
    role = card.get("role")
    metrics, source = None, None
    if isinstance(test.get("metrics"), dict) and role in test["metrics"]:
        metrics, source = _mean_metrics(test["metrics"][role]), "test"
    if metrics is None:
        metrics, source = _mean_metrics(val.get("metrics")), "validation"
    glp = None
    if isinstance(test.get("metrics"), dict) and "glp" in test["metrics"]:
        glp = _mean_metrics(test["metrics"]["glp"])
    row.update({
        "arch": card.get("arch"), "role": role, "scale": card.get("scale"), "residual": card.get("residual"),
        "base_method": card.get("base_method"),
        "hsi_sensor": hsi.get("sensor"), "hsi_bands": hsi.get("bands"),
        "hsi_range_nm": ([round(min(w for w in hsi["wavelengths"] if w is not None), 1),
                          round(max(w for w in hsi["wavelengths"] if w is not None), 1)]
                         if hsi.get("wavelengths") and any(w is not None for w in hsi["wavelengths"]) else None),
        "msi_sensor": msi.get("sensor"), "msi_bands": msi.get("bands"), "msi_band_names": msi.get("band_names"),
        "params": params, "metrics": metrics, "metrics_source": source if metrics else None, "glp_test": glp,
        "adapted": bool(card.get("adaptation")), "licence": card.get("licence"), "created": card.get("created"),
    })
    return row


def list_models() -> list[dict[str, Any]]:
    """Rows for every zoo model in core.infer.model_dirs() ($CSAKD_MODEL_PATH first)."""
    from .core.infer import available_models, resolve_model_path

    return [model_info(name, resolve_model_path(name)) for name in available_models(None)]


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
    from .core.infer import MODEL_DIRS_ENV

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
    from .core.infer import model_dirs

    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    if not rows:
        print("No zoo model found. Searched: " + ", ".join(str(d) for d in model_dirs()))
        return 0
    print(format_table(rows))
    return 0
