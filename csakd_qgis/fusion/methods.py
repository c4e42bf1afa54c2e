"""The fusion methods: one registry of names, families, help texts and cost notes, and THE default method.

Read by the CLI help (``csakd fuse --model``), the Processing enums and help strings (``csakd:fuse``,
``csakd:fuse_classical``), :func:`fusion.predictors.make_predictor`, the 20 m-band check and the docs table,
so a new method is added here once. Composite names (a base with ``+c`` / ``+cy``) are parsed by
:func:`fusion.model_based.split_method`; the registry lists the ones offered to users.
"""

from __future__ import annotations

from dataclasses import dataclass

from csakd_qgis.fusion.classical import CLASSICAL_METHODS
from csakd_qgis.fusion.model_based import is_model_based


@dataclass(frozen=True)
class FusionMethod:
    """One fusion method users can choose: its family decides which predictor runs it."""

    name: str
    family: str  # "classical" (no observation model), "model-based" (PSF/SRF estimated from the pair), "scene"
    help: str
    cost: str  # wall time relative to GLP, measured (docs/RESULTS.md)

    @property
    def needs_observation(self) -> bool:
        """Whether the method estimates the observation model (PSF, SRF) from the pair."""
        return self.family != "classical"


METHODS: tuple[FusionMethod, ...] = (
    FusionMethod("glp+cy", "model-based",
                 "GLP with the blur estimated from the pair, projected onto the LR-HSI (the output blurred and "
                 "decimated gives back the HSI); best measured method without learning", "about 2.5x GLP"),
    FusionMethod("scene", "scene",
                 "glp+cy plus a correction learned on the pair itself (reduced-scale copy of the pair, spectral "
                 "subspace of the HSI), shrunk by a held-out gate so it is never worse there, then projected "
                 "onto the LR-HSI", "glp+cy + the learning budget"),
    FusionMethod("glp+c", "model-based",
                 "glp+cy also made consistent with the MSI through the estimated SRF (assumes the MSI is a "
                 "linear view of the HSI)", "about 3x GLP"),
    FusionMethod("auto", "model-based",
                 "picks glp, glp+c or glp+cy by fusing the pair degraded once more and comparing with the HSI",
                 "about 4x GLP"),
    FusionMethod("gsa+c", "model-based", "GSA then the consistency projection", "about 3x GLP"),
    FusionMethod("cnmf", "model-based",
                 "coupled NMF unmixing: 20 endmembers from the LR-HSI, HR abundances from the MSI through the "
                 "estimated SRF", "about 5-10x GLP"),
    FusionMethod("cnmf+c", "model-based", "CNMF then the consistency projection", "about 5-10x GLP"),
    FusionMethod("glp", "classical",
                 "generalised Laplacian pyramid detail injection with a per-band intensity regressed from the "
                 "MSI; assumes the Wald blur (sigma = scale/2)", "1x"),
    FusionMethod("gsa", "classical", "Gram-Schmidt adaptive component substitution", "about 1x GLP"),
    FusionMethod("bicubic", "classical", "bicubic upsampling of the HSI alone (ignores the MSI): the baseline",
                 "below 1x GLP"),
)
DEFAULT_METHOD = "glp+cy"  # best measured over 19 scenes no choice was made on (docs/RESULTS.md)
SCENE_METHOD = "scene"

_BY_NAME = {m.name: m for m in METHODS}


def method_names() -> list[str]:
    """The offered method names, the default first."""
    return [m.name for m in METHODS]


def get_method(name: object) -> FusionMethod | None:
    """The registered method called ``name`` (case-insensitive); composite model-based names not listed
    (e.g. ``gsa+cy``) get a generic entry; None for anything else (a zoo model, a file)."""
    text = str(name).strip().lower()
    if text in _BY_NAME:
        return _BY_NAME[text]
    if is_model_based(text):
        return FusionMethod(text, "model-based", "a base method with the consistency projection", "about 3x GLP")
    if text in CLASSICAL_METHODS:
        return FusionMethod(text, "classical", "classical method", "about 1x GLP")
    return None


def is_fusion_method(name: object) -> bool:
    """Whether ``name`` is a fusion method (not a learned model name or file)."""
    return get_method(name) is not None


def methods_help(default: str = DEFAULT_METHOD) -> str:
    """One paragraph naming every method with its help and cost, for CLI and Processing help texts."""
    parts = [f"'{m.name}'{' (default)' if m.name == default else ''}: {m.help} ({m.cost})" for m in METHODS]
    return "; ".join(parts) + "."


def methods_table() -> str:
    """The registry as a Markdown table (README / docs)."""
    rows = ["| method | family | what it does | cost |", "|---|---|---|---|"]
    rows += [f"| `{m.name}`{' (default)' if m.name == DEFAULT_METHOD else ''} | {m.family} | {m.help} | {m.cost} |"
             for m in METHODS]
    return "\n".join(rows)


__all__ = ["DEFAULT_METHOD", "METHODS", "SCENE_METHOD", "FusionMethod", "get_method", "is_fusion_method",
           "method_names", "methods_help", "methods_table"]
