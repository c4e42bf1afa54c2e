"""Ablation: a learned correction in the scene's own spectral subspace, on top of glp+cy, that cannot change
what the LR-HSI determines (it passes through the null space of the observation model), trained on the corpus.

Design (the one the learned-fusion issue proposes): per scene, U = the p leading right singular vectors of the
LR-HSI spectra; the base is glp+cy (GLP with the PSF/SRF estimated from the pair + consistency with the LR-HSI);
a small CNN reads the base's subspace coefficients and the MSI and predicts coefficient corrections d; the
output is base + U (I - D^+ D) d, so D(output) = D(base) = LR-HSI exactly: the network only adds what the
inputs leave undetermined. Band-grid agnostic (one network for every sensor of the corpus). Trained on the
corpus TRAIN split (by scene), checkpoint chosen on VALIDATION, scored once on the held-apart scenes of
bench/eval_model_based.py next to bicubic, GLP and glp+cy through the same arrays.

    .venv/bin/python bench/ablate_subspace.py [--steps 3000] [--p 12] [--out docs/results/abl_subspace.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import eval_model_based as emb  # noqa: E402

from bench.array_fusion import fuse_model_based  # noqa: E402
from csakd_qgis.fusion.observation import degrade, degrade_pinv, estimate_observation  # noqa: E402
from csakd_qgis.quality.metrics import compute_metrics  # noqa: E402
from csakd_qgis.spectral.degrade import crop_to_multiple, simulate_pair  # noqa: E402
from csakd_qgis.training.corpus import EXTRA_SPLIT, TRAIN_BLOCK, VAL_TILES, enmap_block  # noqa: E402
from csakd_qgis.training.sources.benchmark_cubes import CATALOGUE, read_benchmark_cube  # noqa: E402

S2 = "S2A:B2,B3,B4,B8"
MARGIN = 16  # HR px of each training patch left out of the loss


def null_space(x: np.ndarray, psf, s: int) -> np.ndarray:
    """(I - D^+ D) x on (..., H, W): the part of x the LR-HSI cannot see."""
    return x - degrade_pinv(degrade(x, psf, s), psf, s)


class Scene:
    """One Wald pair with its glp+cy base, subspace and normalised network inputs/targets."""

    def __init__(self, name: str, cube: np.ndarray, wl: np.ndarray, s: int, p: int,
                 lr=None, msi=None) -> None:
        self.name, self.s = name, s
        ref = crop_to_multiple(np.asarray(cube, np.float32), s)
        if lr is None:
            lr, msi = simulate_pair(ref, wl, None, S2, s)
        self.lr, self.msi, self.ref = lr, msi, ref
        self.obs = estimate_observation(lr, msi, s)
        self.glp, _ = fuse_model_based(lr, msi, s, "glp", obs=self.obs)
        self.base, _ = fuse_model_based(lr, msi, s, "glp+cy", obs=self.obs)
        spectra = np.nan_to_num(lr).reshape(lr.shape[0], -1).T
        self.mu = spectra.mean(0)
        _, _, vt = np.linalg.svd(spectra - self.mu, full_matrices=False)
        self.U = vt[:p].T.astype(np.float32)  # (C, p)
        self.z_base = self.coeffs(self.base)
        self.scale = float(self.z_base.std()) + 1e-6
        self.m_scale = float(np.nanmean(msi)) + 1e-6
        self.target = (self.coeffs(ref) - self.z_base) / self.scale  # in the null space (ref, base agree at LR)

    def coeffs(self, x: np.ndarray) -> np.ndarray:
        c, h, w = x.shape
        return ((np.nan_to_num(x).reshape(c, -1).T - self.mu) @ self.U).T.reshape(-1, h, w).astype(np.float32)

    def inputs(self) -> np.ndarray:
        return np.concatenate([self.z_base / self.scale, self.msi / self.m_scale], axis=0).astype(np.float32)

    def output(self, d: np.ndarray) -> np.ndarray:
        """base + U (I - D^+ D) d (d in normalised coefficient units)."""
        dn = null_space(d * self.scale, self.obs.psf, self.s)
        c, h, w = self.base.shape
        return self.base + (self.U @ dn.reshape(dn.shape[0], -1)).reshape(c, h, w)


def _null_space_function():
    import torch

    class NullSpace(torch.autograd.Function):
        """(I - D^+ D) on a (B, p, H, W) tensor; the projector is symmetric, so its backward is itself."""

        @staticmethod
        def forward(ctx, x, psf, s):
            ctx.psf, ctx.s = psf, s
            return torch.from_numpy(null_space(x.detach().numpy(), psf, s))

        @staticmethod
        def backward(ctx, g):
            return torch.from_numpy(null_space(g.contiguous().numpy(), ctx.psf, ctx.s)), None, None

    return NullSpace


def make_net(p: int, m: int, width: int):
    import torch

    net = torch.nn.Sequential(
        torch.nn.Conv2d(p + m, width, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(width, p, 3, padding=1))
    torch.nn.init.zeros_(net[-1].weight)
    torch.nn.init.zeros_(net[-1].bias)
    return net


def predict(net, scene: Scene) -> np.ndarray:
    import torch

    with torch.no_grad():
        d = net(torch.from_numpy(scene.inputs()[None]))[0].numpy()
    return scene.output(d)


def corpus_scenes(split: str, p: int) -> list[Scene]:
    """Scenes of a corpus split on their own band grids (whole cubes; S2 needs bands up to ~900 nm)."""
    out = []
    if split == "train":
        cube, wl, _, _ = enmap_block(TRAIN_BLOCK)
        out.append(Scene("enmap_train_x4", cube, np.asarray(wl), 4, p))
        out.append(Scene("enmap_train_x3", cube, np.asarray(wl), 3, p))
    else:
        cube, wl, _, _ = enmap_block(VAL_TILES)
        out.append(Scene("enmap_val_x4", cube, np.asarray(wl), 4, p))
    for k, spec in enumerate(CATALOGUE):
        if EXTRA_SPLIT.get(spec.site) != split or spec.layout == "cave":
            continue
        c = read_benchmark_cube(spec.key)
        if min(c.cube.shape[1:]) < 24 or c.wavelengths.max() < 880:
            continue
        out.append(Scene(spec.key, c.cube, c.wavelengths, 3 + k % 2, p))
    return out


def train(scenes: list[Scene], val: list[Scene], p: int, steps: int, width: int, patch: int, batch: int,
          lr_rate: float, seed: int, project_in_loss: bool = False, loss_kind: str = "l1"
          ) -> tuple[object, list[dict]]:
    import torch

    NullSpace = _null_space_function()  # noqa: N806 - a torch Function class
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    rng = np.random.default_rng(seed)
    net = make_net(p, scenes[0].msi.shape[0], width)
    opt = torch.optim.Adam(net.parameters(), lr=lr_rate)
    log = []

    def val_score() -> float:
        net.eval()
        gains = [compute_metrics(v.ref, predict(net, v), v.s)["psnr"]
                 - compute_metrics(v.ref, v.base, v.s)["psnr"] for v in val]
        net.train()
        return float(np.mean(gains))

    best = (val_score(), 0, {k: v.clone() for k, v in net.state_dict().items()})
    log.append({"step": 0, "val_gain_db": round(best[0], 4)})
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        sc = scenes[rng.integers(len(scenes))]
        x_all, y_all = sc.inputs(), sc.target
        hp = min(patch, (x_all.shape[1] // sc.s) * sc.s, (x_all.shape[2] // sc.s) * sc.s)
        xs, ys = [], []
        for _ in range(batch):
            r = rng.integers(0, (x_all.shape[1] - hp) // sc.s + 1) * sc.s
            c = rng.integers(0, (x_all.shape[2] - hp) // sc.s + 1) * sc.s
            xs.append(x_all[:, r:r + hp, c:c + hp])
            ys.append(y_all[:, r:r + hp, c:c + hp])
        x, y = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))
        d = net(x)
        if project_in_loss:
            m = MARGIN  # the projector is exact only away from the patch border (its LR kernels are wide)
            loss = torch.nn.functional.l1_loss(NullSpace.apply(d, sc.obs.psf, sc.s)[..., m:-m, m:-m],
                                               y[..., m:-m, m:-m])
        elif loss_kind == "mse":  # PSNR's own error measure
            loss = torch.nn.functional.mse_loss(d, y)
        else:  # the target is in the null space already; the projection is applied at inference
            loss = torch.nn.functional.l1_loss(d, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 250 == 0 or step == steps:
            g = val_score()
            log.append({"step": step, "loss": round(float(loss), 5), "val_gain_db": round(g, 4),
                        "s": round(time.perf_counter() - t0, 1)})
            print(f"step {step:5d}  loss {float(loss):.4f}  val gain {g:+.3f} dB  {time.perf_counter() - t0:.0f} s",
                  flush=True)
            if g > best[0]:
                best = (g, step, {k: v.clone() for k, v in net.state_dict().items()})
    last = make_net(p, scenes[0].msi.shape[0], width)
    last.load_state_dict(net.state_dict())
    net.load_state_dict(best[2])
    log.append({"selected_step": best[1], "selected_val_gain_db": round(best[0], 4)})
    return (net, last), log


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--p", type=int, default=12)
    ap.add_argument("--width", type=int, default=48)
    ap.add_argument("--patch", type=int, default=96)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--loss", choices=("l1", "mse"), default="l1")
    ap.add_argument("--project-in-loss", action="store_true",
                    help="train through the null-space projector (default: plain L1 on the null-space target)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results" / "abl_subspace.json"))
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    train_sc, val_sc = corpus_scenes("train", a.p), corpus_scenes("val", a.p)
    print(f"{len(train_sc)} train scenes: {[s.name for s in train_sc]}; {len(val_sc)} validation: "
          f"{[s.name for s in val_sc]} ({time.perf_counter() - t0:.0f} s)", flush=True)
    (net, last), log = train(train_sc, val_sc, a.p, a.steps, a.width, a.patch, a.batch, a.lr, a.seed, a.project_in_loss,
                     a.loss)
    rows = []
    for name in emb.SCENES:
        if emb.SCENES[name][1] != S2:
            continue  # the network reads the 4 S2 bands it was trained with
        lr, msi, ref, s, info = emb.make_pair(name)
        sc = Scene(name, ref, None, s, a.p, lr=lr, msi=msi)
        out, out_last = predict(net, sc), predict(last, sc)
        bic = fuse_model_based(lr, msi, s, "bicubic", obs=sc.obs)[0]
        row = {"scene": name, "s": s}
        for label, x in (("bicubic", bic), ("glp", sc.glp), ("glp+cy", sc.base), ("learned", out),
                         ("learned_last", out_last)):
            m = compute_metrics(ref, x, s)
            row[label] = {"psnr": round(m["psnr"], 3), "sam": round(m["sam"], 3)}
        print(f"{name:18s} " + "  ".join(f"{k} {row[k]['psnr']:.2f}/{row[k]['sam']:.2f}"
                                         for k in ("bicubic", "glp", "glp+cy", "learned", "learned_last")),
              flush=True)
        rows.append(row)
    mean = {k: {q: round(float(np.mean([r[k][q] for r in rows])), 3) for q in ("psnr", "sam")}
            for k in ("bicubic", "glp", "glp+cy", "learned", "learned_last")}
    print("mean " + "  ".join(f"{k} {v['psnr']:.2f}/{v['sam']:.2f}" for k, v in mean.items()))
    res = {"config": vars(a), "train": [s.name for s in train_sc], "val": [s.name for s in val_sc],
           "log": log, "test": rows, "mean": mean,
           "params": int(sum(p.numel() for p in net.parameters())), "wall_s": round(time.perf_counter() - t0, 1)}
    Path(a.out).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
