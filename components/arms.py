"""Classifier arms: which images a lesion classifier trains on, and how an arm is run.

An arm is a training-set recipe. The pipeline's evaluate stage runs some (``real``,
``real+synthetic``, ``synthetic``) and the lesion study runs all of them over seeds; both build
the set and train and test the classifier through :func:`run_arm`, so the same arm, seed and
data feed the classifier the same tensors wherever it runs. Families:

- ``real``: the real training split; ``augmented``: the same with flips, rotation and jitter;
- ``real+synthetic``: real plus ``per_real`` synthetic images per real one;
- ``balanced``: real plus synthetic malignant images until malignant equals benign;
- ``synthetic``: the synthetic set alone.

Class imbalance is the classifier's weighted sampler's business in every arm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from components.errors import DataError
from components.imageset import ImageSet, concat, draw, mix, resize

if TYPE_CHECKING:
    from torch import nn

    from components.config import EvaluateConfig
    from components.runtime import Runtime
    from components.tracking import Reporter

Family = Literal["real", "augmented", "real+synthetic", "balanced", "synthetic"]
SYNTHETIC_FAMILIES = ("real+synthetic", "balanced", "synthetic")


@dataclass(frozen=True)
class Arm:
    """One training-set recipe. ``kind``: the generator it draws from (None for real arms)."""

    name: str
    family: Family
    kind: str | None = None

    @property
    def augment(self) -> bool:
        return self.family == "augmented"

    @property
    def needs_synthetic(self) -> bool:
        return self.family in SYNTHETIC_FAMILIES


def balanced(real: ImageSet, synthetic: ImageSet, seed: int) -> ImageSet:
    """Real plus synthetic malignant images until malignant equals benign.

    Raises:
        DataError: the synthetic set has too few malignant images.
    """
    assert real.labels is not None and synthetic.labels is not None
    need = int((real.labels == 0).sum() - (real.labels == 1).sum())
    pool = synthetic.subset(np.flatnonzero(synthetic.labels == 1))
    if need > len(pool):
        raise DataError(
            f"balanced arm: needs {need} synthetic malignant images, the set has {len(pool)}; "
            "raise generate.n_images or the malignant share"
        )
    if need <= 0:
        return real
    return concat(real, resize(draw(pool, need, seed), real.size))


def training_set(
    arm: Arm, real: ImageSet, synthetic: ImageSet | None, per_real: float, seed: int
) -> ImageSet:
    """The images ``arm`` trains on, at the real split's size."""
    if not arm.needs_synthetic:
        return real
    if synthetic is None:
        raise ValueError(f"arm {arm.name} needs the {arm.kind} set")
    if arm.family == "real+synthetic":
        return mix(real, synthetic, per_real, seed)
    if arm.family == "balanced":
        return balanced(real, synthetic, seed)
    return resize(synthetic, real.size)


@dataclass
class ArmResult:
    """A trained and tested arm: its best model, test metrics and sizes."""

    model: nn.Module
    metrics: dict[str, float]
    probabilities: np.ndarray
    train_images: int
    synthetic_images: int
    best_epoch: int

    def record(self) -> dict[str, Any]:
        return {
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "train_images": self.train_images,
            "synthetic_images": self.synthetic_images,
            "best_epoch": self.best_epoch,
        }


def run_arm(
    arm: Arm,
    real_train: ImageSet,
    val: ImageSet,
    test: ImageSet,
    synthetic: ImageSet | None,
    cfg: EvaluateConfig,
    runtime: Runtime,
    reporter: Reporter,
    seed: int,
) -> ArmResult:
    """Train the classifier on ``arm``'s set (best val epoch kept), test it on ``test``.

    Test metrics are reported as ``test.<name>``.
    """
    from components import classifier

    train = training_set(arm, real_train, synthetic, cfg.synthetic_per_real, seed)
    fitted = classifier.train_classifier(
        train, val, cfg, runtime, reporter, seed=seed, augment=arm.augment
    )
    p = classifier.predict_proba(
        fitted.model, test.images, runtime, cfg.batch_size, image_size=cfg.image_size
    )
    assert test.labels is not None
    metrics = classifier.classification_metrics(test.labels, p, cfg.threshold)
    reporter.metrics({f"test.{k}": float(v) for k, v in metrics.items()})
    n_syn = len(train) - (0 if arm.family == "synthetic" else len(real_train))
    return ArmResult(fitted.model, metrics, p, len(train), n_syn, fitted.best_epoch)
