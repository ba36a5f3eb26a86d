"""FID, KID and the Inception extractor (components/metrics/fid.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from components.config import Config, MetricsConfig
from components.errors import SynthmedError
from components.metrics.fid import (
    _trace_sqrt_product_eigh,
    _trace_sqrt_product_scipy,
    fid,
    frechet_distance,
    generative_metrics,
    inception_features,
    kid,
    load_inception,
)


def _rotation(d: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


# Two Gaussians whose covariances share eigenvectors (a common rotation of diagonals), so
# tr sqrt(S1 S2) = sum sqrt(eigenvalue products) = 1*2 + 2*1 + 3*0.5 = 5.5, independent of the code.
ROT = _rotation(3, seed=0)
MU1, MU2 = np.array([0.0, 1.0, -1.0]), np.array([1.0, 1.0, 1.0])
S1 = ROT @ np.diag([1.0, 4.0, 9.0]) @ ROT.T
S2 = ROT @ np.diag([4.0, 1.0, 0.25]) @ ROT.T
CLOSED_FORM = float(np.sum((MU1 - MU2) ** 2) + 14.0 + 5.25 - 2 * 5.5)


@pytest.mark.parametrize("trace_root", [_trace_sqrt_product_scipy, _trace_sqrt_product_eigh])
def test_both_matrix_roots_give_the_closed_form(trace_root) -> None:  # type: ignore[no-untyped-def]
    assert trace_root(S1, S2) == pytest.approx(5.5, rel=1e-9)
    assert frechet_distance(MU1, S1, MU2, S2) == pytest.approx(CLOSED_FORM, rel=1e-9)


def test_fid_of_sampled_gaussians_matches_the_closed_form_and_identical_sets_give_zero() -> None:
    rng = np.random.default_rng(1)
    a = rng.multivariate_normal(MU1, S1, size=20000)
    b = rng.multivariate_normal(MU2, S2, size=20000)
    assert fid(a, b) == pytest.approx(CLOSED_FORM, rel=0.03)
    assert abs(fid(a, a)) < 1e-6
    # Fewer samples than dimensions: singular covariances must still give a finite ~0.
    few = rng.normal(size=(10, 64))
    assert abs(fid(few, few)) < 1e-4


def test_kid_is_near_zero_for_the_same_distribution_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 16))
    same = kid(a, a, subsets=20, subset_size=100, seed=0)
    fresh = kid(a, rng.normal(size=(300, 16)), subsets=20, subset_size=100, seed=0)
    shifted = kid(a, a + 1.0, subsets=20, subset_size=100, seed=0)
    # Subsets drawn from one set overlap, and an overlap adds k(x, x) terms to the cross sum: the
    # unbiased estimate of identical sets is ~0 on the scale of a real shift, not exactly 0.
    assert abs(same[0]) < 0.1 and abs(fresh[0]) < 0.1
    assert shifted[0] > 1.0 and shifted[0] > 50 * max(abs(same[0]), abs(fresh[0]))
    assert shifted[1] >= 0 and kid(a, a + 1.0, 20, 100, seed=0) == shifted
    with pytest.raises(ValueError, match="subset_size"):
        kid(a[:10], a, subsets=1, subset_size=20, seed=0)


def test_a_missing_or_unusable_inception_path_is_a_user_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SynthmedError, match="metrics.inception_path: .*file not found"):
        load_inception(str(tmp_path / "nope.pt"))
    state_dict = tmp_path / "state_dict.pt"
    torch.save({"w": torch.zeros(2)}, state_dict)
    with pytest.raises(SynthmedError, match="not a TorchScript module"):
        load_inception(str(state_dict))


class _PoolFeatures(torch.nn.Module):
    """A small extractor with the Inception input convention: 3 x 299 x 299 -> 3*4*4 features."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2:] == (299, 299) and x.min() >= -1 and x.max() < 1
        return torch.nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)


def _channel_stats(images: np.ndarray) -> np.ndarray:
    flat = images.reshape(len(images), -1, 3).astype(np.float64)
    return np.concatenate([flat.mean(axis=1), flat.std(axis=1)], axis=1)


def test_generative_metrics_reports_both_feature_spaces_under_their_own_names() -> None:
    rng = np.random.default_rng(3)
    real = rng.integers(0, 200, size=(12, 32, 32, 3), dtype=np.uint8)
    close = np.clip(real.astype(int) + rng.integers(-3, 4, size=real.shape), 0, 255).astype(
        np.uint8
    )
    far = rng.integers(100, 256, size=(9, 32, 32, 3), dtype=np.uint8)
    cfg = Config(
        metrics=MetricsConfig(fid_samples=10, kid_subsets=5, kid_subset_size=50, batch_size=4)
    )
    near = generative_metrics(real, close, cfg, _PoolFeatures(), domain_feature_fn=_channel_stats)
    away = generative_metrics(real, far, cfg, _PoolFeatures(), domain_feature_fn=_channel_stats)
    assert set(near) == {
        "fid_inception", "kid_inception", "kid_inception_std",
        "fid_domain", "kid_domain", "kid_domain_std",
        "fid_n_real", "fid_n_synthetic", "kid_subset_size", "kid_subsets",
    }  # fmt: skip
    assert near["fid_n_real"] == 10 and away["fid_n_synthetic"] == 9
    assert near["kid_subset_size"] == 10 and away["kid_subset_size"] == 9
    assert near["fid_inception"] < away["fid_inception"]
    assert near["fid_domain"] < away["fid_domain"] and near["kid_domain"] < away["kid_domain"]
    assert "fid_domain" not in generative_metrics(real, far, cfg, _PoolFeatures())


@pytest.mark.slow
def test_packaged_inception_loads_offline_and_features_depend_only_on_the_image() -> None:
    extractor = load_inception(None)
    rng = np.random.default_rng(4)
    images = rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    batch = inception_features(images[[0, 1, 0]], extractor, batch_size=3, device="cpu")
    alone = inception_features(images[:1], extractor, batch_size=1, device="cpu")
    assert batch.shape == (3, 2048) and batch.dtype == np.float32 and np.isfinite(batch).all()
    np.testing.assert_allclose(batch[0], batch[2], rtol=1e-4, atol=1e-5)
    # Same features alone as in a batch: batch-norm runs in eval mode.
    np.testing.assert_allclose(batch[0], alone[0], rtol=1e-3, atol=1e-4)
    assert np.abs(batch[0] - batch[1]).max() > 1e-2
