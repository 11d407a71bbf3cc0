"""common/datasets/synthetic_motion.py: determinism of the generated takes and the simulated detection noise."""

from __future__ import annotations

import numpy as np

from common.datasets import synthetic_motion as sm


def test_generation_is_deterministic_and_seed_dependent():
    first = sm.generate_dataset(["S5"], ["Walking", "Sitting"], 120, seed=3)
    again = sm.generate_dataset(["S5"], ["Walking", "Sitting"], 120, seed=3)
    other = sm.generate_dataset(["S5"], ["Walking", "Sitting"], 120, seed=4)
    subset = sm.generate_dataset(["S7", "S5"], ["Sitting"], 120, seed=3)
    for action in ("Walking", "Walking 1", "Sitting", "Sitting 1"):
        np.testing.assert_array_equal(first["S5"][action], again["S5"][action])
        assert np.abs(first["S5"][action] - other["S5"][action]).max() > 0.05
    np.testing.assert_array_equal(subset["S5"]["Sitting 1"], first["S5"]["Sitting 1"])  # independent of the selection
    assert np.abs(first["S5"]["Walking"] - first["S5"]["Walking 1"]).max() > 0.05  # two different takes


def test_detection_noise_model():
    zeros = np.zeros((20000, 17, 2), dtype=np.float32)
    outliers_only = sm.add_detection_noise(zeros, np.random.default_rng(0), noise_px=4.0, outlier_fraction=1.0)
    distance = np.linalg.norm(outliers_only.astype(np.float64), axis=-1)
    # every joint displaced by a radius uniform in [24, 60] px plus 4 px Gaussian jitter: mean 42 px
    assert abs(distance.mean() - 42.0) < 0.3 and np.percentile(distance, 0.5) > 14 and distance.max() < 80
    gaussian_only = sm.add_detection_noise(zeros, np.random.default_rng(0), noise_px=4.0, outlier_fraction=0.0)
    assert abs(gaussian_only.std() - 4.0) < 0.02 and abs(gaussian_only.mean()) < 0.02
    again = sm.add_detection_noise(zeros, np.random.default_rng(0), noise_px=4.0, outlier_fraction=0.0)
    np.testing.assert_array_equal(gaussian_only, again)
