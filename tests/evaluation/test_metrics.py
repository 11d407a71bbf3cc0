"""common/evaluation/metrics.py: reference values from the public implementations, invariances, hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from common.evaluation.metrics import (
    AUC_THRESHOLDS,
    auc,
    joint_errors,
    mean_velocity_error,
    mpjpe,
    n_mpjpe,
    p_mpjpe,
    pck,
    procrustes_align,
    weighted_mpjpe,
)


@pytest.fixture(scope="module")
def reference(reference_metrics):
    return reference_metrics


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


@pytest.mark.parametrize("as_torch", [False, True])
def test_errors_match_reference_implementation(reference, as_torch):
    convert = torch.from_numpy if as_torch else (lambda a: a)
    pred, target = convert(reference["pred"]), convert(reference["target"])
    values = {
        "mpjpe": mpjpe(pred, target),
        "p_mpjpe": p_mpjpe(pred, target),
        "n_mpjpe": n_mpjpe(pred, target),
        "mean_velocity_error": mean_velocity_error(pred, target),
        "weighted_mpjpe": weighted_mpjpe(pred, target, convert(reference["joint_weights"])),
    }
    for name, value in values.items():
        assert isinstance(value, torch.Tensor) == as_torch, name
        np.testing.assert_allclose(float(value), float(reference[name]), rtol=1e-6, err_msg=name)


def test_numpy_in_float64_numpy_out_torch_keeps_dtype_and_graph():
    rng = np.random.default_rng(4)
    pred32, target32 = rng.normal(size=(2, 17, 3)).astype(np.float32), rng.normal(size=(2, 17, 3)).astype(np.float32)
    exact = np.linalg.norm(pred32.astype(np.float64) - target32.astype(np.float64), axis=-1).mean()
    value = mpjpe(pred32, target32)
    assert type(value) is np.float64 and value == pytest.approx(exact, rel=1e-14)  # float32 data, float64 sums
    aligned = procrustes_align(pred32, target32)
    assert isinstance(aligned, np.ndarray) and aligned.dtype == np.float64 and aligned.shape == (2, 17, 3)
    predicted = torch.from_numpy(pred32).requires_grad_(True)
    mixed = p_mpjpe(predicted, target32)  # a torch input makes both torch, with its dtype
    assert isinstance(mixed, torch.Tensor) and mixed.dtype == torch.float32
    mixed.backward()
    assert predicted.grad is not None and torch.isfinite(predicted.grad).all()


def test_batched_torch_equals_per_clip_numpy(reference):
    pred = torch.from_numpy(reference["pred"]).double().reshape(2, 25, 17, 3)
    target = torch.from_numpy(reference["target"]).double().reshape(2, 25, 17, 3)
    # Frame-wise errors do not depend on batching.
    for fn in (mpjpe, p_mpjpe, n_mpjpe):
        expected = float(fn(reference["pred"], reference["target"]))
        np.testing.assert_allclose(float(fn(pred, target)), expected, rtol=1e-9)
    # Velocity over the frame axis (axis 1 of (B, F, J, 3)): the mean of the two clips' errors.
    clips = [float(mean_velocity_error(pred[i].numpy(), target[i].numpy())) for i in range(2)]
    np.testing.assert_allclose(float(mean_velocity_error(pred, target)), np.mean(clips), rtol=1e-12)
    np.testing.assert_allclose(float(mean_velocity_error(pred, target, axis=1)), np.mean(clips), rtol=1e-12)


def test_p_mpjpe_is_invariant_to_similarity_transforms():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(6, 17, 3))
    moved = np.stack(
        [3.7 * frame @ _random_rotation(rng).T + rng.normal(size=3) for frame in target]
    )  # every frame: its own rotation, same scale, own translation
    assert mpjpe(moved, target) > 0.5
    assert p_mpjpe(moved, target) < 1e-9
    np.testing.assert_allclose(procrustes_align(moved, target), target, atol=1e-9)
    assert float(p_mpjpe(torch.from_numpy(moved), torch.from_numpy(target))) < 1e-9
    # A reflection is NOT a similarity transform: the mirrored pose keeps a real error.
    mirrored = target * np.array([-1.0, 1.0, 1.0])
    assert p_mpjpe(mirrored, target) > 0.1
    # n_mpjpe removes only the scale.
    assert n_mpjpe(2.5 * target, target) < 1e-12
    assert n_mpjpe(moved, target) > 0.1


def test_p_mpjpe_equals_explicit_single_frame_procrustes():
    rng = np.random.default_rng(1)
    pred, target = rng.normal(size=(17, 3)), rng.normal(size=(17, 3))
    # Brute force: minimise over scale/rotation/translation with the closed form from a different route (Umeyama).
    mu_p, mu_t = pred.mean(0), target.mean(0)
    p0, t0 = pred - mu_p, target - mu_t
    u, s, vt = np.linalg.svd(t0.T @ p0 / 17)
    d = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ d @ vt  # maps pred -> target: target ~ c R pred + t
    scale = np.trace(np.diag(s) @ d) / (p0**2).sum() * 17
    aligned = scale * pred @ rotation.T + (mu_t - scale * rotation @ mu_p)
    expected = np.linalg.norm(aligned - target, axis=-1).mean()
    np.testing.assert_allclose(p_mpjpe(pred[None], target[None]), expected, rtol=1e-10)


def test_simple_errors_by_hand():
    target = np.zeros((2, 3, 3))
    pred = target.copy()
    pred[0, 0] = [3.0, 4.0, 0.0]  # 5 m error on one joint
    pred[1, 2] = [0.0, 0.0, 1.0]  # 1 m on another
    np.testing.assert_allclose(joint_errors(pred, target), [[5, 0, 0], [0, 0, 1]])
    assert mpjpe(pred, target) == pytest.approx(1.0)
    assert weighted_mpjpe(pred, target, [2.0, 1.0, 4.0]) == pytest.approx((10 + 4) / 6)
    # velocity: frame differences of pred are [(-3,-4,0), 0, (0,0,1)], target has none -> (5 + 0 + 1) / 3
    assert mean_velocity_error(pred, target) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        mpjpe(pred, target[:1])
    with pytest.raises(ValueError):
        weighted_mpjpe(pred, target, [1.0, 2.0])


def test_pck_and_auc_hand_computed():
    target = np.zeros((1, 4, 3))
    pred = np.zeros((1, 4, 3))
    pred[0, :, 0] = [0.010, 0.100, 0.150, 0.300]  # errors of 10, 100, 150 (not < 150) and 300 mm
    assert pck(pred, target) == pytest.approx(50.0)
    assert pck(pred, target, threshold=0.3001) == pytest.approx(100.0)
    # Thresholds 0, 5, ..., 150 mm: the 10 mm joint counts from 15 mm (28 of 31 thresholds), the 100 mm joint
    # from 105 mm (10 thresholds), the others never.
    assert len(AUC_THRESHOLDS) == 31 and AUC_THRESHOLDS[1] == pytest.approx(0.005)
    assert auc(pred, target) == pytest.approx((28 + 10) / (31 * 4) * 100)
    torch_auc = auc(torch.from_numpy(pred), torch.from_numpy(target))
    assert isinstance(torch_auc, torch.Tensor) and math.isclose(float(torch_auc), (28 + 10) / 124 * 100, rel_tol=1e-6)
    # A mask drops joints from both numerator and denominator.
    assert pck(pred, target, mask=np.array([[True, True, False, False]])) == pytest.approx(100.0)
    with pytest.raises(ValueError):
        pck(pred, target, mask=np.zeros((1, 4), bool))
