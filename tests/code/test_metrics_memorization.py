"""Memorization check: synthetic vs test nearest-training distances (components/metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from components.config import MetricsConfig
from components.errors import SynthmedError
from components.metrics.memorization import memorization, nearest_neighbours

CFG = MetricsConfig(memorization_quantile=0.05, max_memorized_share=0.1)


def _features(n: int, seed: int, d: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_copies_of_training_images_are_flagged() -> None:
    train, test = _features(200, seed=0), _features(200, seed=1)
    noise = 1e-3 * _features(40, seed=2)
    report = memorization(train[:40] + noise, train, test, CFG)
    assert report.memorized_share == 1.0 and not report.passed
    np.testing.assert_array_equal(report.synthetic_nn_index, np.arange(40))
    assert report.synthetic_nn_distance.max() < report.threshold
    assert report.as_metrics()["memorization_passed"] == 0.0


def test_independent_images_pass_at_about_the_quantile() -> None:
    train, test = _features(200, seed=0), _features(200, seed=1)
    report = memorization(_features(300, seed=3), train, test, CFG)
    assert report.passed and report.memorized_share <= CFG.max_memorized_share
    assert report.memorized_share == pytest.approx(report.expected_share, abs=0.04)
    assert report.test_nn_distance.shape == (200,) and report.synthetic_nn_distance.shape == (300,)


def test_a_partly_copied_set_fails_with_the_copied_share() -> None:
    train, test = _features(200, seed=0), _features(200, seed=1)
    synthetic = np.concatenate([train[:30], _features(70, seed=4)])
    report = memorization(synthetic, train, test, CFG)
    assert 0.3 <= report.memorized_share <= 0.4 and not report.passed


def test_nearest_neighbours_agree_with_brute_force_across_chunks() -> None:
    q, r = _features(7, seed=5, d=3), _features(11, seed=6, d=3)
    dist, idx = nearest_neighbours(q, r, chunk=3)
    brute = np.linalg.norm(q[:, None, :] - r[None, :, :], axis=-1)
    np.testing.assert_array_equal(idx, brute.argmin(axis=1))
    np.testing.assert_allclose(dist, brute.min(axis=1), rtol=1e-9)


def test_features_of_different_widths_are_a_user_error() -> None:
    with pytest.raises(SynthmedError, match="test features"):
        memorization(_features(5, 0), _features(5, 1), _features(5, 2, d=4), CFG)
