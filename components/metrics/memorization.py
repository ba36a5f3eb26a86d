"""Does a generator copy its training images? Nearest-neighbour distances in a feature space.

For every synthetic image we find its nearest real TRAINING image. "Close" needs a yardstick, and
the honest one is how close genuinely new real images get: the real TEST images, which the
generator never saw, measured against the same training set in the same feature space.

A synthetic image counts as memorized when it is closer to a training image than the
``cfg.metrics.memorization_quantile`` quantile (default 5 %) of the test images' nearest-training
distances. If the generator sampled new images from the real distribution, a synthetic image
would be as likely as a test image to fall below that quantile, so the share of flagged images is
then about the quantile itself (reported as ``expected_share``). Copies, or near copies, of
training images land far below it. The set passes when the share is at most
``cfg.metrics.max_memorized_share``; the caller does not publish a set that fails.

The feature space is the caller's choice (Inception pool features, the domain classifier's
features, or even raw pixels); distances are Euclidean in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from components.errors import DataError

if TYPE_CHECKING:
    from components.config import MetricsConfig
    from components.imageset import ImageSet


@dataclass(frozen=True)
class MemorizationReport:
    """Per-image nearest-training distances and the verdict."""

    synthetic_nn_distance: np.ndarray
    """Distance of each synthetic image to its nearest training image."""
    synthetic_nn_index: np.ndarray
    """Index (into the training features) of that nearest training image, to show the pairs."""
    test_nn_distance: np.ndarray
    """Distance of each real test image to its nearest training image: the yardstick."""
    threshold: float
    """The ``quantile`` quantile of ``test_nn_distance``."""
    quantile: float
    memorized_share: float
    """Share of synthetic images with distance below ``threshold``."""
    max_memorized_share: float
    passed: bool

    @property
    def expected_share(self) -> float:
        """The share an independent sample from the real distribution would score, about."""
        return self.quantile

    def as_metrics(self, prefix: str = "memorization_") -> dict[str, float]:
        """Scalars for metrics.json/MLflow (the per-image arrays go to an artifact if wanted)."""
        return {
            f"{prefix}share": self.memorized_share,
            f"{prefix}expected_share": self.expected_share,
            f"{prefix}threshold": self.threshold,
            f"{prefix}passed": float(self.passed),
            f"{prefix}synthetic_nn_median": float(np.median(self.synthetic_nn_distance)),
            f"{prefix}test_nn_median": float(np.median(self.test_nn_distance)),
        }


def nearest_neighbours(
    queries: np.ndarray, reference: np.ndarray, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance and index of each query's nearest reference row.

    Args:
        queries: N x D. reference: M x D.
        chunk: Queries per block; bounds memory at ``chunk x M`` float64.

    Returns:
        ``(distances N, indices N)``.
    """
    q = np.asarray(queries, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    r_sq = (r * r).sum(axis=1)
    dists, index = [], []
    for start in range(0, len(q), chunk):
        block = q[start : start + chunk]
        # |a-b|^2 = |a|^2 + |b|^2 - 2ab is one matrix product; rounding can make it slightly
        # negative for (near) copies, hence the clip before the root.
        sq = (block * block).sum(axis=1)[:, None] + r_sq[None, :] - 2.0 * block @ r.T
        nn = sq.argmin(axis=1)
        index.append(nn)
        dists.append(np.sqrt(np.clip(sq[np.arange(len(block)), nn], 0.0, None)))
    return np.concatenate(dists), np.concatenate(index)


def _check(name: str, feats: np.ndarray, dim: int | None = None) -> None:
    if feats.ndim != 2 or len(feats) == 0 or (dim is not None and feats.shape[1] != dim):
        want = f"N x {dim}" if dim is not None else "N x D"
        raise DataError(
            f"memorization: {name} features: expected non-empty {want}, got {feats.shape}"
        )


def memorization(
    synthetic_feats: np.ndarray,
    train_feats: np.ndarray,
    test_feats: np.ndarray,
    cfg: MetricsConfig,
) -> MemorizationReport:
    """Compare synthetic-to-train with test-to-train nearest-neighbour distances.

    Args:
        synthetic_feats: N x D features of the synthetic images.
        train_feats: M x D features of the real training images the generator saw.
        test_feats: K x D features of held-out real test images (same feature space).
        cfg: Uses ``memorization_quantile`` and ``max_memorized_share``.

    Returns:
        A :class:`MemorizationReport`; ``passed`` is False when too many synthetic images sit
        closer to a training image than real test images do.
    """
    _check("training", train_feats)
    dim = train_feats.shape[1]
    _check("synthetic", synthetic_feats, dim)
    _check("test", test_feats, dim)
    syn_dist, syn_idx = nearest_neighbours(synthetic_feats, train_feats)
    test_dist, _ = nearest_neighbours(test_feats, train_feats)
    threshold = float(np.quantile(test_dist, cfg.memorization_quantile))
    # Strictly below: with quantile 0 the threshold is the closest test image, and a synthetic
    # image exactly as close as that is no more suspicious than the test image itself.
    share = float((syn_dist < threshold).mean())
    return MemorizationReport(
        synthetic_nn_distance=syn_dist,
        synthetic_nn_index=syn_idx,
        test_nn_distance=test_dist,
        threshold=threshold,
        quantile=cfg.memorization_quantile,
        memorized_share=share,
        max_memorized_share=cfg.max_memorized_share,
        passed=share <= cfg.max_memorized_share,
    )


def pixel_features(data: ImageSet | np.ndarray, pixels: int) -> np.ndarray:
    """N x (pixels * pixels * 3): RGB (an ImageSet or N x H x W x 3 uint8) downsampled
    (antialiased) to ``pixels`` a side, in [0, 1].

    Raw pixels, not a network's features: SinGAN-Seg copies show up as near-identical layouts and
    colours, which small thumbnails catch, and the check needs no weights.
    """
    import torch
    import torch.nn.functional as F

    images = data.images if hasattr(data, "images") else data
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(pixels, pixels), mode="bilinear", antialias=True)
    return x.reshape(len(x), -1).numpy()
