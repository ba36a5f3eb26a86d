"""PIQA quality metrics on tiny synthetic images (components/metrics/piqa_metrics.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from components.errors import SynthmedError
from components.metrics.piqa_metrics import (
    PAIRING,
    QUALITY_METRIC_NAMES,
    QUALITY_METRICS,
    pairwise_quality,
)


def _images(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)


def test_identical_images_score_perfectly() -> None:
    image = _images(1)
    report = pairwise_quality(image, image, n_pairs=2, seed=0)
    # piqa's PSNR adds epsilon 1e-8 to the MSE: identical images give 10*log10(1e8) = 80 dB.
    assert report.mean["psnr"] == pytest.approx(80.0, abs=1e-3)
    assert report.mean["ssim"] == pytest.approx(1.0, abs=1e-5)
    assert report.mean["ms_gmsd"] == pytest.approx(0.0, abs=1e-5)
    assert report.mean["mdsi"] == pytest.approx(0.0, abs=1e-5)
    assert report.mean["haarpsi"] == pytest.approx(1.0, abs=1e-4)


def test_psnr_of_known_noise_matches_its_definition() -> None:
    real = _images(1, seed=1)
    noise = np.random.default_rng(2).integers(-20, 21, size=real.shape)
    synthetic = np.clip(real.astype(np.int64) + noise, 0, 255).astype(np.uint8)
    mse = np.mean((synthetic / 255.0 - real / 255.0) ** 2)
    report = pairwise_quality(synthetic, real, n_pairs=1, seed=0)
    assert report.mean["psnr"] == pytest.approx(10 * math.log10(1 / mse), abs=1e-3)
    assert report.std["psnr"] == 0.0


def test_random_pairs_are_finite_worse_than_identical_and_reproducible() -> None:
    synthetic, real = _images(6, seed=3), _images(5, seed=4)
    report = pairwise_quality(synthetic, real, n_pairs=10, seed=7, batch_size=4)
    perfect = pairwise_quality(real[:1], real[:1], n_pairs=1, seed=0)
    assert set(report.mean) == set(QUALITY_METRIC_NAMES) == set(report.std)
    assert len(QUALITY_METRIC_NAMES) == 5
    for metric in QUALITY_METRICS:
        value = report.mean[metric.name]
        assert math.isfinite(value) and math.isfinite(report.std[metric.name])
        # The registry's direction must agree with the implementation: noise is worse than a copy.
        if metric.higher_is_better:
            assert value < perfect.mean[metric.name]
        else:
            assert value > perfect.mean[metric.name]
    assert report == pairwise_quality(synthetic, real, n_pairs=10, seed=7, batch_size=3)
    assert report.n_pairs == 10 and report.pairing == PAIRING and "unrelated" in report.pairing
    flat = report.as_metrics()
    assert flat["quality_psnr_mean"] == report.mean["psnr"] and len(flat) == 10


def test_sets_of_different_sizes_are_a_user_error() -> None:
    with pytest.raises(SynthmedError, match="same size"):
        pairwise_quality(_images(2, 64), _images(2, 32), n_pairs=2, seed=0)
