"""``csakd train`` (registered in cli/__init__.py): reference training or scene adaptation (``--adapt``).

Reference training: scenes are reference HR-HSI cubes (GeoTIFF/ENVI or the .mat benchmark cubes); LR-HSI and
HR-MSI are simulated from them by the Wald protocol with the given MSI sensor's SRFs.
``csakd train --adapt``: scene-adaptive fine-tuning on the user's own LR-HSI + HR-MSI pair
(:func:`training.adapt.adapt`, reduced-scale pairs built from the pair itself).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from csakd_qgis.cli.common import ProgressBar
from csakd_qgis.errors import CsakdError
from csakd_qgis.spectral.srf import load_srf
from csakd_qgis.training.adapt import adapt
from csakd_qgis.training.config import MODES, NORMALIZATIONS, FitConfig, TrainConfig
from csakd_qgis.training.cotrain import train
from csakd_qgis.training.scenes import make_wald_scenes
from csakd_qgis.training.sources.references import read_references
from csakd_qgis.zoo.registry import check_not_overwriting

log = logging.getLogger("csakd")


def _load_scenes(paths: Sequence[str], srf: Any, scale: int, ref_wl: list[float] | None
                 ) -> tuple[list[Any], list[float], list[float] | None]:
    """Wald scenes of reference rasters (one band set: the first scene's, or ``ref_wl``), their wavelengths, fwhm."""
    refs, wl, fw = read_references(paths, ref_wl, what="scene")
    return make_wald_scenes(refs, wl, fw, srf, scale), wl, fw


_REF, _FIT = TrainConfig(), FitConfig()  # the defaults of each mode (help texts and unset options)


def _given(args: argparse.Namespace, **dests: str) -> dict[str, Any]:
    """Config field -> value of the options that were given (``field=dest``); unset ones keep the config's default."""
    return {name: getattr(args, dest) for name, dest in dests.items() if getattr(args, dest) is not None}


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``csakd train``: reference training (Wald pairs from HSI scenes) or ``--adapt`` (the user's own pair)."""
    p = subparsers.add_parser(
        "train", help="train a CSAKD teacher/student pair on reference HSI scenes, or adapt a model to your pair "
                      "(--adapt)",
        description="Two modes. Reference training (default): train a CSAKD teacher and student on Wald pairs "
                    "simulated from reference hyperspectral scenes (GeoTIFF/ENVI with band wavelengths, or .mat "
                    "benchmark cubes); needs --scenes, --sensor and --out (a stem); writes <out>_student and "
                    "<out>_teacher (.safetensors + .json model card), a checkpoint <out>.ckpt.pt and a JSON-lines "
                    "log <out>.log.jsonl. Scene-adaptive training (--adapt): fine-tune a student on your own "
                    "low-resolution HSI + high-resolution MSI pair (no HR-HSI reference: reduced-scale Wald pairs "
                    "built from the pair itself, a held-out strip validates), within --budget-min minutes or "
                    "--steps steps; needs --hsi, --msi and --out MODEL.safetensors; --fused also fuses the pair "
                    "with the adapted model. Both print a JSON summary.")
    p.add_argument("--adapt", action="store_true",
                   help="scene-adaptive training on your own --hsi/--msi pair (real use)")
    ref = p.add_argument_group("reference training (default mode)")
    ref.add_argument("--scenes", nargs="+", default=None, help="reference HR-HSI rasters or .mat cubes (required)")
    ref.add_argument("--mat", nargs="+", default=[], help="additional .mat benchmark cubes (Jasper/Urban)")
    ref.add_argument("--val-scenes", nargs="*", default=[], help="held-out scenes for validation/model selection")
    ref.add_argument("--scale", type=int, default=4)
    ref.add_argument("--arch", default=_REF.arch, choices=["csakd", "dodn"],
                     help="csakd: HSI + MSI fusion pair; dodn: single-image SR student (LR-HSI only at inference) "
                          "with a spectral-SR teacher (HR-MSI -> HR-HSI) as privileged knowledge (DODN-style); "
                          "--mode student = the same student without KD (ablation)")
    ref.add_argument("--mode", default=_REF.mode, choices=list(MODES),
                     help="online co-training, offline (frozen --teacher) or student without KD")
    ref.add_argument("--teacher", default=None, help="trained teacher model (offline mode)")
    ref.add_argument("--resume", action="store_true", help="continue from <out>.ckpt.pt")
    ref.add_argument("--snr", type=float, default=_REF.snr_db, help="AWGN SNR in dB on the LR-HSI (<= 0: no noise)")
    ref.add_argument("--val-every", type=int, default=_REF.val_every)
    ref.add_argument("--residual", default=None, choices=["bilinear", "bicubic", "none", "base"],
                     help=f"global residual (default: {_REF.residual} for csakd, bicubic for dodn; dodn has no 'base')")
    ref.add_argument("--feat-kd", default="mse", choices=["mse", "bce", "none"])
    ref.add_argument("--normalization", default=_REF.normalization, choices=list(NORMALIZATIONS))
    ref.add_argument("--licence", default=None, help="licence of the exported weights (model card)")
    ada = p.add_argument_group("scene-adaptive training (--adapt)")
    ada.add_argument("--hsi", default=None, metavar="LR.tif", help="your low-resolution hyperspectral raster")
    ada.add_argument("--msi", default=None, metavar="MSI.tif", help="your high-resolution multispectral raster")
    ada.add_argument("--init", default=None, metavar="M",
                     help="starting point: auto (closest zoo model, else scratch), scratch (a new student "
                          "correcting GLP), a zoo model name or a .safetensors file (default: "
                          f"{_FIT.init})")
    ada.add_argument("--budget-min", type=float, default=None, metavar="MIN",
                     help=f"time budget of the training loop in minutes, 0 = none (default: {_FIT.budget_min:g})")
    ada.add_argument("--fused", default=None, metavar="OUT.tif",
                     help="also fuse the full-resolution pair with the adapted model into this GeoTIFF")
    ada.add_argument("--val-fraction", type=float, default=None,
                     help=f"held-out validation strip, fraction of the longer side (default: {_FIT.val_fraction})")
    common = p.add_argument_group("both modes")
    common.add_argument("--out", required=True,
                        help="reference mode: output stem, e.g. models/enmap_s2_lite; --adapt: the model file "
                             "MODEL.safetensors (its .json card is written beside it)")
    common.add_argument("--sensor", default=None,
                        help="MSI sensor and bands, e.g. S2A:B2,B3,B4,B8 (required in reference mode; with --adapt "
                             "optional, recorded in the card and used to pick the zoo model)")
    common.add_argument("--preset", default=_REF.preset, choices=["paper", "lite"],
                        help="network size of a new network (default: %(default)s)")
    common.add_argument("--steps", type=int, default=None,
                        help=f"training steps (reference mode, default {_REF.steps}); --adapt: step limit, 0 = until "
                             f"the time budget (default {_FIT.steps})")
    common.add_argument("--device", default=_REF.device, help="auto, cpu or cuda")
    common.add_argument("--batch-size", type=int, default=_REF.batch_size)
    common.add_argument("--patch", type=int, default=None,
                        help=f"HR patch size (multiple of the scale; default {_REF.patch}, --adapt {_FIT.patch})")
    common.add_argument("--lr", type=float, default=None,
                        help=f"AdamW learning rate, cosine schedule (default {_REF.lr:.0e}, --adapt {_FIT.lr:.0e})".replace("e-0", "e-"))
    common.add_argument("--seed", type=int, default=_REF.seed)
    common.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    common.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)
    return p


# options of one mode that make no sense in the other (dest, flag); the defaults of these are None/False/[]
_REFERENCE_ONLY = (("scenes", "--scenes"), ("mat", "--mat"), ("val_scenes", "--val-scenes"),
                   ("teacher", "--teacher"), ("resume", "--resume"))
_ADAPT_ONLY = (("hsi", "--hsi"), ("msi", "--msi"), ("init", "--init"), ("budget_min", "--budget-min"),
               ("fused", "--fused"), ("val_fraction", "--val-fraction"))


def _check_mode_options(args: argparse.Namespace) -> None:
    """Clear errors for options of the other mode and for what the chosen mode needs."""
    if args.adapt:
        extra = [flag for dest, flag in _REFERENCE_ONLY if getattr(args, dest, None)]
        if extra:
            raise CsakdError(f"{', '.join(extra)} belong(s) to reference training, not to --adapt (which trains on "
                             "your own --hsi/--msi pair): drop them or drop --adapt.")
        missing = [flag for dest, flag in (("hsi", "--hsi"), ("msi", "--msi")) if not getattr(args, dest, None)]
        if missing:
            raise CsakdError(f"csakd train --adapt needs {' and '.join(missing)}: give the low-resolution "
                             "hyperspectral image (--hsi LR.tif) and the high-resolution multispectral image "
                             "(--msi MSI.tif) of the same place.")
        return
    extra = [flag for dest, flag in _ADAPT_ONLY if getattr(args, dest, None) is not None]
    if extra:
        raise CsakdError(f"{', '.join(extra)} belong(s) to scene-adaptive training: add --adapt (or give "
                         "reference scenes with --scenes instead).")
    missing = [flag for dest, flag in (("scenes", "--scenes"), ("sensor", "--sensor")) if not getattr(args, dest)]
    if missing:
        raise CsakdError(f"Reference training needs {' and '.join(missing)} (reference HR-HSI scenes and the MSI "
                         "sensor, e.g. --sensor S2A:B2,B3,B4,B8); to adapt a model to your own LR-HSI + MSI pair "
                         "use csakd train --adapt --hsi LR.tif --msi MSI.tif --out MODEL.safetensors.")


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``csakd train`` (reference training, or :func:`run_adapt` with ``--adapt``)."""
    _check_mode_options(args)
    if args.adapt:
        return run_adapt(args)

    if args.scale < 2:
        raise CsakdError("--scale must be an integer >= 2.")
    out = Path(args.out)
    if not out.parent.is_dir():
        raise CsakdError(f"The output folder '{out.parent}' does not exist: create it first.")
    train_paths = list(args.scenes) + list(args.mat)
    written = [out.with_name(f"{out.name}_{role}{ext}") for role in ("student", "teacher")
               for ext in (".safetensors", ".json")]
    check_not_overwriting(written, [*train_paths, *args.val_scenes], [args.teacher] if args.teacher else [])
    srf = load_srf(args.sensor)
    train_scenes, wl, fw = _load_scenes(train_paths, srf, args.scale, None)
    val_scenes = _load_scenes(args.val_scenes, srf, args.scale, wl)[0] if args.val_scenes else []
    card: dict[str, Any] = {"training": {"data": [str(p) for p in train_paths]}}
    arch = getattr(args, "arch", "csakd")
    residual = args.residual or ("bicubic" if arch == "dodn" else _REF.residual)
    if args.licence:
        card["licence"] = args.licence
    cfg = TrainConfig(
        preset=args.preset, arch=arch, mode=args.mode, teacher_path=args.teacher, batch_size=args.batch_size,
        **_given(args, steps="steps", patch="patch", lr="lr"), snr_db=args.snr if args.snr and args.snr > 0 else None, residual=residual,
        normalization=args.normalization, loss={"feat_kd_kind": args.feat_kd}, val_every=args.val_every,
        seed=args.seed, device=args.device, threads=args.threads, out=str(out), resume=args.resume,
        progress_bar=not args.no_progress, card=card)
    msi_info = {"sensor": srf.sensor, "band_names": list(srf.band_names),
                "wavelengths": [float(c) for c in srf.centroids()]}
    if arch == "dodn":
        msi_info["usage"] = "privileged: teacher input in training only; the student needs no MSI"
    res = train(train_scenes, val_scenes, cfg, wl, fw, msi_info)
    print(json.dumps({"student": str(res.student_path) if res.student_path else None,
                      "teacher": str(res.teacher_path) if res.teacher_path else None,
                      "best_step": res.best_step, "device": res.device_used, "steps": res.steps,
                      "elapsed_s": round(res.elapsed_s, 1), "validation": res.best_metrics,
                      "baseline_bicubic": res.baseline_metrics.get("bicubic", {})}, default=float))
    return 0


def run_adapt(args: argparse.Namespace) -> int:
    """``csakd train --adapt``: :func:`training.adapt.adapt` on the user's pair; prints a JSON summary."""
    cfg = FitConfig(preset=args.preset, batch_size=args.batch_size, seed=args.seed, device=args.device,
                    threads=args.threads, init=args.init or _FIT.init,
                    **_given(args, budget_min="budget_min", steps="steps", patch="patch", lr="lr",
                             val_fraction="val_fraction"))
    bar = ProgressBar("adapt", enabled=not args.no_progress)
    try:
        res = adapt(args.hsi, args.msi, args.out, fused=args.fused, cfg=cfg, sensor=args.sensor, progress=bar)
    finally:
        bar.close()
    for line in res.messages:
        log.info(line)
    summary = res.summary()
    summary["elapsed_s"] = round(res.timings.get("total_s", 0.0), 2)
    print(json.dumps(summary, default=float))
    return 0
