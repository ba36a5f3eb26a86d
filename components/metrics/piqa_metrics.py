"""Full-reference image-quality metrics (PIQA) between synthetic and real images.

The seed project scored its GANs with five PIQA metrics: PSNR, SSIM, MS-GMSD, MDSI and HaarPSI.
They are computed here exactly as piqa 1.3.2 defines them (default arguments, inputs float in
[0, 1], N x 3 x H x W). Every one of them is *full-reference*: it assumes ``x`` is a distorted
version of ``y``. A GAN sample has no aligned real counterpart, so synthmed scores random,
unrelated synthetic/real pairs and says so in every report: the values rank generators against
each other on the same real set and protocol, they do not measure fidelity to a ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import piqa
import torch
from torch import nn

from components.errors import DataError

PAIRING = (
    "random unrelated pairs of synthetic and real images; these metrics assume aligned pairs, "
    "so values only compare generators against each other, not against a ground truth"
)


@dataclass(frozen=True)
class QualityMetric:
    """One PIQA metric: its report name, how to build it and which direction is better."""

    name: str
    build: Callable[[], nn.Module]
    higher_is_better: bool
    scale: str
    """Value range of piqa 1.3.2's implementation, for readers of the report."""
    one_pair_per_call: bool = False
    """Score pairs one at a time because the batched value depends on the rest of the batch."""


# The one list of quality metrics: the report, the stage's metrics.json and the docs read it.
# reduction="none" keeps one value per pair so the report can give a spread, not only a mean.
QUALITY_METRICS: tuple[QualityMetric, ...] = (
    QualityMetric(
        "psnr", lambda: piqa.PSNR(reduction="none"), True, "dB; 80 for identical (epsilon 1e-8)"
    ),
    QualityMetric("ssim", lambda: piqa.SSIM(reduction="none"), True, "[-1, 1]; 1 for identical"),
    QualityMetric(
        "ms_gmsd", lambda: piqa.MS_GMSD(reduction="none"), False, ">= 0; 0 for identical"
    ),
    # piqa 1.3.2's mdsi() averages GCS^q over dims (-2, -3) of an N x H x W tensor, i.e. across
    # the batch: a pair's score would change with its batch mates (and with batch_size).
    QualityMetric(
        "mdsi", lambda: piqa.MDSI(reduction="none"), False, ">= 0; 0 for identical", True
    ),
    QualityMetric(
        "haarpsi", lambda: piqa.HaarPSI(reduction="none"), True, "[0, 1]; 1 for identical"
    ),
)
QUALITY_METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in QUALITY_METRICS)


@dataclass(frozen=True)
class QualityReport:
    """Mean and standard deviation of each PIQA metric over ``n_pairs`` image pairs."""

    mean: dict[str, float]
    std: dict[str, float]
    n_pairs: int
    pairing: str = PAIRING

    def as_metrics(self, prefix: str = "quality_") -> dict[str, float]:
        """Flat ``{"quality_psnr_mean": ..., "quality_psnr_std": ...}`` for metrics.json/MLflow."""
        out: dict[str, float] = {}
        for name in QUALITY_METRIC_NAMES:
            out[f"{prefix}{name}_mean"] = self.mean[name]
            out[f"{prefix}{name}_std"] = self.std[name]
        return out


def to_unit_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float N x 3 x H x W in [0, 1], the input PIQA expects."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255.0)


@torch.no_grad()
def quality_scores(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-pair values of every metric in :data:`QUALITY_METRICS`.

    Args:
        x: Distorted (synthetic) images, float N x 3 x H x W in [0, 1].
        y: Reference (real) images, same shape and device.

    Returns:
        ``{name: tensor of N values}``.
    """
    scores = {}
    for metric in QUALITY_METRICS:
        fn = metric.build().to(x.device)
        if metric.one_pair_per_call:
            scores[metric.name] = torch.cat([fn(x[i : i + 1], y[i : i + 1]) for i in range(len(x))])
        else:
            scores[metric.name] = fn(x, y)
    return scores


def _check_images(name: str, images: np.ndarray) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or not len(images):
        raise DataError(
            f"{name}: expected a non-empty N x H x W x 3 uint8 array, got "
            f"{images.dtype} {images.shape}"
        )


def pairwise_quality(
    synthetic: np.ndarray,
    real: np.ndarray,
    n_pairs: int,
    seed: int,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> QualityReport:
    """Score ``n_pairs`` random (synthetic, real) pairs with the five PIQA metrics.

    Pairs are drawn with replacement from both sets (a seeded numpy generator), so any set sizes
    work and the same seed gives the same pairs. The synthetic image is the metric's distorted
    input ``x``, the real image its reference ``y``.

    Args:
        synthetic: uint8 N x H x W x 3.
        real: uint8 M x H x W x 3, the same H and W as ``synthetic``.
        n_pairs: Pairs to score (``cfg.metrics.quality_pairs``).
        seed: Seed of the pairing.
        batch_size: Pairs per forward pass (bounds memory).
        device: Where the metrics run.

    Returns:
        A :class:`QualityReport` whose ``pairing`` states how images were paired.
    """
    _check_images("synthetic images", synthetic)
    _check_images("real images", real)
    if synthetic.shape[1:] != real.shape[1:]:
        raise DataError(
            f"quality metrics: synthetic images are {synthetic.shape[1:3]} but real images are "
            f"{real.shape[1:3]}; compare sets of the same size"
        )
    rng = np.random.default_rng(seed)
    idx_syn = rng.integers(len(synthetic), size=n_pairs)
    idx_real = rng.integers(len(real), size=n_pairs)
    values: dict[str, list[torch.Tensor]] = {name: [] for name in QUALITY_METRIC_NAMES}
    for start in range(0, n_pairs, batch_size):
        x = to_unit_tensor(synthetic[idx_syn[start : start + batch_size]]).to(device)
        y = to_unit_tensor(real[idx_real[start : start + batch_size]]).to(device)
        for name, v in quality_scores(x, y).items():
            values[name].append(v.double().cpu())
    stacked = {name: torch.cat(v) for name, v in values.items()}
    # std is the spread of single-pair scores (correction=0: one pair gives 0, not nan).
    return QualityReport(
        mean={n: float(v.mean()) for n, v in stacked.items()},
        std={n: float(v.std(correction=0)) for n, v in stacked.items()},
        n_pairs=n_pairs,
    )
