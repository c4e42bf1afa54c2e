"""KD joint losses."""

from __future__ import annotations

import math

import pytest
import torch  # noqa: E402  (installed by make setup)

from csakd_qgis.nets.losses import (  # noqa: E402
    LossWeights,
    beba,
    feat_kd,
    l1,
    response_kd,
    sam_loss,
    student_loss,
    teacher_loss,
)

torch.set_num_threads(1)


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) + 0.05


def test_l1_is_mean_absolute_error():
    a, b = rand(2, 3, 4, 5), rand(2, 3, 4, 5, seed=1)
    assert torch.isclose(l1(a, b), (a - b).abs().mean())


@pytest.mark.parametrize("kind", ["angle", "cosine"])
def test_sam_zero_for_scaled_spectra(kind):
    y = rand(2, 30, 4, 5)
    scale = rand(2, 1, 4, 5, seed=3) * 5  # a different positive factor per pixel
    assert sam_loss(y * scale, y, kind).item() < 1e-5
    assert sam_loss(y, y, kind).item() < 1e-6
    assert sam_loss(rand(2, 30, 4, 5, seed=9), y, kind).item() > 1e-3


def test_sam_is_true_angle_along_bands():
    # two pixels, 2 bands: angle 90 deg and 45 deg -> mean pi*3/8
    p = torch.tensor([[1.0, 1.0], [0.0, 1.0]]).reshape(1, 2, 1, 2)
    t = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).reshape(1, 2, 1, 2)
    # pixel 0: p=(1,0), t=(0,1) -> 90 deg; pixel 1: p=(1,1), t=(1,0) -> 45 deg
    assert math.isclose(sam_loss(p, t).item(), (math.pi / 2 + math.pi / 4) / 2, rel_tol=1e-5)
    # the reference bug (comparing runs of pixels inside a band) would not see a band swap
    swapped = t.flip(1)
    assert sam_loss(swapped, t).item() > 0.1


def test_sam_gradients_finite_at_zero_angle_and_zero_spectra():
    y = rand(1, 10, 3, 3)
    p = (y * 2).requires_grad_()
    sam_loss(p, y).backward()
    assert torch.isfinite(p.grad).all()
    z = torch.zeros(1, 10, 3, 3, requires_grad=True)
    loss = sam_loss(z, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_beba():
    y = rand(2, 6, 5, 5)
    assert beba(y, y).item() == 0.0
    p = y.clone()
    p[:, 2] += 0.1
    expected = ((0.1 ** 2) / (y[:, 2] ** 2).mean(dim=(-2, -1))).mean() / 6
    assert torch.isclose(beba(p, y), expected, rtol=1e-4)


def test_kd_terms_detach_teacher():
    s = rand(1, 4, 3, 3).requires_grad_()
    t = rand(1, 4, 3, 3, seed=2).requires_grad_()
    (response_kd(s, t) + feat_kd(s, t, "mse") + feat_kd(s, t, "bce")).backward()
    assert t.grad is None and s.grad is not None
    assert feat_kd(s, s, "mse").item() == 0.0
    assert feat_kd(s, t, "none").item() == 0.0
    with pytest.raises(ValueError):
        feat_kd(s, t, "kl")


def test_teacher_and_student_loss_weights():
    y = rand(2, 5, 4, 4)
    yt = rand(2, 5, 4, 4, seed=1)
    ys = rand(2, 5, 4, 4, seed=2)
    fs, ft = rand(2, 3, 4, 4, seed=3), rand(2, 3, 4, 4, seed=4)
    w = LossWeights()
    lt, parts = teacher_loss(yt, y, w)
    assert math.isclose(lt.item(), parts["l1"] + 0.1 * parts["sam"] + 0.1 * parts["beba"], rel_tol=1e-5)
    ls, p = student_loss(ys, fs, y, yt, ft, w)
    expect = p["l1"] + 0.1 * (p["sam"] + p["beba"] + p["response_kd"] + p["feat_kd"])
    assert math.isclose(ls.item(), expect, rel_tol=1e-5)
    ls0, p0 = student_loss(ys, fs, y, None, None, w)  # no KD
    assert "response_kd" not in p0 and ls0.item() < ls.item()
    with pytest.raises(ValueError):
        LossWeights(feat_kd_kind="x")


def test_norm_weighted_sam_discounts_dark_spectra():
    """norm_weighted SAM: 0 for scaled spectra; a wrong dark spectrum counts less than a wrong bright one."""
    import torch

    from csakd_qgis.nets.losses import sam_loss

    y = torch.rand(1, 6, 2, 1) + 0.1
    assert float(sam_loss(2.0 * y, y, "norm_weighted")) < 1e-3
    y[:, :, 1] *= 0.01  # pixel 1 is dark
    wrong = y.clone()
    wrong[:, :3, 1] = 0.0  # wrong angle at the dark pixel only
    plain, weighted = float(sam_loss(wrong, y, "angle")), float(sam_loss(wrong, y, "norm_weighted"))
    assert plain > 0.1 and weighted < 0.1 * plain
