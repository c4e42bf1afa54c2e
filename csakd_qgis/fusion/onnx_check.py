"""Check an ONNX graph against the model card beside it before it runs: a file renamed from another network,
re-exported with other bands or carrying another card is refused instead of fusing nonsense.

Checked: the card stored in the graph equals the card beside it; the graph's inputs are the ones the card's
architecture takes, with the card's band counts; one output with the card's HSI bands; a dry run on a tiny
zero tile gives the card's scale.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from csakd_qgis.errors import CsakdError

CARD_KEY = "csakd.card"
DRY_RUN_LR_PX = 2  # LR px of the dry-run tile (a few ms)


def input_names(card: dict[str, Any]) -> list[str]:
    """The named inputs of a card's network: ``lr``, then ``msi`` (fusion) and ``base`` (residual on a base)."""
    if card.get("arch") == "dodn":
        return ["lr"]
    return ["lr", "msi", "base"] if card.get("residual") == "base" else ["lr", "msi"]


def _bands(card: dict[str, Any], key: str) -> int | None:
    part = card.get(key) if isinstance(card.get(key), dict) else {}
    n = part.get("bands") if part else None
    if n is None and part and part.get("wavelengths"):
        n = len(part["wavelengths"])
    return int(n) if n is not None else None


def _normal(card: dict[str, Any]) -> Any:
    """A card as the exporter stored it (JSON round trip), for an exact comparison."""
    return json.loads(json.dumps(card, default=str))


def check_graph(session: Any, card: dict[str, Any], path: str | os.PathLike, card_path: str | os.PathLike) -> None:
    """CsakdError naming what differs when the ONNX ``session`` of ``path`` is not the network ``card`` describes."""
    name, card_name = Path(path).name, Path(card_path).name
    fix = "export it again with: csakd export --onnx " + str(card_path)

    def refuse(what: str) -> CsakdError:
        return CsakdError(f"The ONNX model '{name}' does not match its card '{card_name}': {what}. It is not the "
                          f"network the card describes; {fix}")

    meta = session.get_modelmeta().custom_metadata_map
    try:
        embedded = json.loads(meta.get(CARD_KEY) or "null")
    except json.JSONDecodeError:
        embedded = None
    if embedded is None:
        raise refuse("it carries no card")
    if embedded != _normal(card):
        keys = sorted(k for k in set(embedded) | set(card) if embedded.get(k) != _normal(card).get(k))
        raise refuse(f"the card stored in it differs ({', '.join(keys[:4]) or 'content'})")
    want = input_names(card)
    got = [i.name for i in session.get_inputs()]
    if got != want:
        raise refuse(f"its inputs are {', '.join(got) or 'none'}, the card's network takes {', '.join(want)}")
    n_hsi, n_msi = _bands(card, "hsi"), _bands(card, "msi")
    bands = {"lr": n_hsi, "base": n_hsi, "msi": n_msi}
    for i in session.get_inputs():
        dims = list(i.shape)
        if len(dims) != 4:
            raise refuse(f"its input '{i.name}' has {len(dims)} dimensions, not 4")
        if bands[i.name] is not None and isinstance(dims[1], int) and dims[1] != bands[i.name]:
            raise refuse(f"its input '{i.name}' takes {dims[1]} bands, the card {bands[i.name]}")
    outs = session.get_outputs()
    if len(outs) != 1:
        raise refuse(f"it has {len(outs)} outputs, not 1")
    s, t = int(card.get("scale") or 0), DRY_RUN_LR_PX
    feed = {}
    for i in session.get_inputs():
        c = i.shape[1] if isinstance(i.shape[1], int) else (bands[i.name] or 1)
        hw = t if i.name == "lr" else t * s
        feed[i.name] = np.zeros((1, c, hw, hw), np.float32)
    try:
        import onnxruntime as ort

        quiet = ort.RunOptions()
        quiet.log_severity_level = 4  # the failure is reported as one line below, not as ONNX Runtime's log
        got_shape = tuple(session.run(None, feed, quiet)[0].shape)
    except Exception:  # noqa: BLE001 - onnxruntime raises its own types for graphs that cannot run
        raise refuse(f"it does not run on a {t} x {t} px tile of the card's bands at the card's scale {s}") from None
    want_shape = (1, n_hsi if n_hsi is not None else got_shape[1], t * s, t * s)
    if got_shape != want_shape:
        raise refuse(f"on a {t} x {t} px tile it gives {got_shape[1]} bands of {got_shape[2]} x {got_shape[3]} px, "
                     f"the card's network {want_shape[1]} bands of {t * s} x {t * s} px (scale {s})")


__all__ = ["check_graph", "input_names"]
