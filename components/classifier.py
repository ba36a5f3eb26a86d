"""The lesion classifier: an EfficientNet trained to tell benign from malignant.

It is the yardstick of the project: the same classifier is trained on real images and on real
plus synthetic images, and the test metrics say whether the synthetic data helped. So it must be
plain, deterministic for a seed on CPU, and identical across arms except for the training set.

Training uses the shared kit (:mod:`components.train`); this module keeps what is the
classifier's own: the model builder, its batching (a class-balanced sampler) and augmentation,
precise BatchNorm statistics, its metrics and plots. Nothing here calls MLflow; logging the model
is :func:`components.registry.log_model`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from components.errors import ConfigError, DataError
from components.imageset import LABEL_NAMES
from components.io import load_state_dict_file
from components.runtime import Runtime, seed_everything
from components.train import Fitted, fit, image_tensor, nan_last, normalize

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from components.config import EvaluateConfig
    from components.imageset import ImageSet
    from components.tracking import Reporter

log = logging.getLogger(__name__)

HEAD_PREFIX = "_fc."
"""EfficientNet's classifier head: 1000 ImageNet classes in a weights file, 2 classes here."""
TEST_METRICS = ("roc_auc", "balanced_accuracy", "sensitivity", "specificity", "f1", "accuracy")
"""The headline test metrics of :func:`classification_metrics`, in the order tables show them."""


# --------------------------------------------------------------------------------------------
# model


def build_classifier(cfg: EvaluateConfig) -> nn.Module:
    """An EfficientNet with a 2-class head; backbone from ``cfg.weights_path`` if set.

    Never ``from_pretrained``: that downloads. Weights come only from a local file.

    Raises:
        ConfigError: the weights file is missing, unreadable or made for another model.
    """
    model = _efficientnet(cfg.model, cfg.image_size)
    if cfg.weights_path is not None:
        _load_backbone(model, Path(cfg.weights_path))
    return model


def _efficientnet(name: str, image_size: int) -> nn.Module:
    from efficientnet_pytorch import EfficientNet

    try:
        return EfficientNet.from_name(
            name,
            num_classes=2,
            # Sizes the static "same" padding of every conv to the inputs it will really see.
            image_size=image_size,
        )
    except ValueError as exc:
        raise ConfigError(f"evaluate.model: {exc}") from None


def _load_backbone(model: nn.Module, path: Path) -> None:
    """Copy every non-head tensor of a state_dict file into ``model``."""
    where = f"evaluate.weights_path: {path}"
    state = load_state_dict_file(path, "evaluate.weights_path")
    backbone = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}
    try:
        result = model.load_state_dict(backbone, strict=False)
    except RuntimeError as exc:  # shape mismatch: weights of another EfficientNet size
        first = str(exc).strip().splitlines()[-1].strip()
        raise ConfigError(f"{where}: does not fit the model ({first})") from None
    missing = [k for k in result.missing_keys if not k.startswith(HEAD_PREFIX)]
    if missing:
        # A half-initialised backbone trains, but silently worse: refuse it.
        raise ConfigError(f"{where}: {len(missing)} backbone tensors missing (e.g. {missing[0]})")
    if result.unexpected_keys:
        log.warning(
            "%s: ignored %d unexpected keys (e.g. %s)",
            where,
            len(result.unexpected_keys),
            result.unexpected_keys[0],
        )


# --------------------------------------------------------------------------------------------
# data


def augmentation() -> nn.Module:
    """Standard dermoscopy augmentation on one uint8 3,H,W tensor (shape and dtype kept).

    Lesions have no up or down, so both flips and a rotation are label-preserving; colour jitter
    is mild because colour is itself a malignancy cue.
    """
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.RandomHorizontalFlip(),
            v2.RandomVerticalFlip(),
            v2.RandomRotation(degrees=20),
            v2.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.02),
        ]
    )


class _Images(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """uint8 images and labels, augmented per sample (a batch-level transform would give every
    image in the batch the same flip)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: nn.Module | None):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[i]
        return (self.transform(x) if self.transform is not None else x), self.labels[i]


def balanced_sampler(labels: np.ndarray, seed: int) -> WeightedRandomSampler:
    """Draw len(labels) samples with replacement, each class equally often on average.

    Malignant lesions are a small minority; weighting each sample by its inverse class frequency
    shows the model both classes equally without duplicating images on disk.
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=2)
    weights = 1.0 / counts[labels]
    gen = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), len(labels), replacement=True, generator=gen
    )


def _labels(data: ImageSet, name: str) -> np.ndarray:
    if data.labels is None or len(data) == 0:
        raise DataError(f"classifier {name} set: needs labelled images, got {len(data)} unlabelled")
    return np.asarray(data.labels, dtype=np.int64)


# --------------------------------------------------------------------------------------------
# training


def rank_epoch(record: Mapping[str, float]) -> tuple[float, float]:
    """Higher val ROC AUC wins, ties go to the lower val loss; an undefined AUC ranks last."""
    return nan_last(record["val_roc_auc"]), -record["val_loss"]


def train_classifier(
    train: ImageSet,
    val: ImageSet,
    cfg: EvaluateConfig,
    runtime: Runtime,
    reporter: Reporter,
    seed: int,
    augment: bool = False,
) -> Fitted:
    """Train a fresh classifier for ``cfg.epochs`` epochs and keep its best validation epoch.

    Reports ``train_loss``, ``val_loss`` and ``val_roc_auc`` with ``step=epoch`` (1-based).
    Deterministic for a ``seed`` on CPU (same weights, same history).

    Raises:
        DataError: a set is empty or unlabelled.
    """
    y_train, y_val = _labels(train, "training"), _labels(val, "validation")
    seed_everything(seed)
    model = build_classifier(cfg).to(runtime.device, memory_format=runtime.memory_format)
    train_x = image_tensor(train.images, cfg.image_size)
    loader = DataLoader(
        _Images(train_x, torch.from_numpy(y_train), augmentation() if augment else None),
        batch_size=cfg.batch_size,
        sampler=balanced_sampler(y_train, seed),
        num_workers=cfg.num_workers,
        # BatchNorm cannot train on a batch of one; the sampler redraws every epoch anyway.
        drop_last=len(y_train) > cfg.batch_size,
        generator=torch.Generator().manual_seed(seed),
    )
    recal_order = torch.tensor(list(balanced_sampler(y_train, seed + 1)))
    val_x, val_y = image_tensor(val.images, cfg.image_size), torch.from_numpy(y_val)
    loss_fn = nn.CrossEntropyLoss()

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in loader:
            yield normalize(x, runtime), y.to(runtime.device)

    def evaluate(m: nn.Module) -> dict[str, float]:
        loss, p_val = _loss_and_proba(m, val_x, val_y, loss_fn, runtime, cfg.batch_size)
        return {"val_loss": loss, "val_roc_auc": roc_auc(y_val, p_val)}

    return fit(
        model,
        epochs=cfg.epochs,
        batches=batches,
        loss_fn=loss_fn,
        optimizer=torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
        runtime=runtime,
        evaluate=evaluate,
        rank=rank_epoch,
        reporter=reporter,
        description=f"classifier ({len(train)} images)",
        after_epoch=lambda m: _recalibrate_batchnorm(
            m, train_x, recal_order, runtime, cfg.batch_size
        ),
    )


def _recalibrate_batchnorm(
    model: nn.Module, x: torch.Tensor, order: torch.Tensor, runtime: Runtime, batch_size: int
) -> None:
    """Set every BatchNorm's running statistics to exact averages over ``x[order]`` ("precise
    BN").

    Running averages trail the weights: after the few dozen steps a small dataset gives, eval
    mode normalises with statistics of earlier weights and validation scores (even their
    ranking) are noise. ``order`` must draw like the training batches (class-balanced): the
    features are learned relative to batch statistics, and statistics of the imbalanced set
    shift them enough to invert the ranking of a short run.
    """
    from torch.optim.swa_utils import update_bn

    # A batch of one cannot be normalised in train mode (1x1 maps at the last stages).
    batches = [idx for idx in order.split(batch_size) if len(idx) > 1]
    with torch.no_grad(), runtime.autocast():
        update_bn((normalize(x[idx], runtime) for idx in batches), model)


def _loss_and_proba(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: nn.Module,
    runtime: Runtime,
    batch_size: int,
) -> tuple[float, np.ndarray]:
    """Mean loss over all of ``x`` (weighted by batch length) and P(malignant) per image."""
    from components.train import eval_step

    total, probs = 0.0, []
    for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
        loss, logits = eval_step(
            model, (normalize(xb, runtime), yb.to(runtime.device)), loss_fn, runtime
        )
        total += loss * len(yb)
        probs.append(logits.softmax(dim=1)[:, 1].cpu().numpy())
    return total / len(y), np.concatenate(probs)


@torch.inference_mode()
def predict_proba(
    model: nn.Module, images: np.ndarray, runtime: Runtime, batch_size: int, image_size: int
) -> np.ndarray:
    """P(malignant) for N,H,W,3 uint8 images, resized to ``image_size``.

    The model is put in eval mode: BatchNorm must use its running statistics at inference.
    """
    model.eval()
    probs = []
    for xb in image_tensor(images, image_size).split(batch_size):
        with runtime.autocast():
            logits = model(normalize(xb, runtime)).float()
        probs.append(logits.softmax(dim=1)[:, 1].cpu().numpy())
    return np.concatenate(probs) if probs else np.zeros(0, dtype=np.float32)


@torch.inference_mode()
def features(
    model: nn.Module, images: np.ndarray, runtime: Runtime, batch_size: int, image_size: int
) -> np.ndarray:
    """Globally pooled last-stage features (N x C float32): the classifier's own space, used as
    the DOMAIN space of FID/KID."""
    model.eval()
    out = []
    for xb in image_tensor(images, image_size).split(batch_size):
        fmap = model.extract_features(normalize(xb, runtime))  # type: ignore[operator]
        out.append(torch.nn.functional.adaptive_avg_pool2d(fmap, 1).flatten(1).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


# --------------------------------------------------------------------------------------------
# metrics (numpy only: scikit-learn is not a dependency of the project)


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with tied scores sharing their mean rank).

    NaN when only one class is present: the area is undefined, and 0.5 would be a lie.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # Mean 1-based rank of each distinct score: its group's start plus half its width.
    ends = np.cumsum(counts)
    mean_rank = ends - (counts - 1) / 2.0
    rank_sum = mean_rank[inverse][y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    # One point per distinct score: the last index of each run of equal scores.
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    tpr = np.r_[0.0, tps / max(int(y.sum()), 1)]
    fpr = np.r_[0.0, fps / max(int((~y).sum()), 1)]
    return fpr, tpr


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def classification_metrics(
    y_true: np.ndarray, p_malignant: np.ndarray, threshold: float
) -> dict[str, float]:
    """Test-set figures of a binary classifier; malignant (1) is the positive class.

    A score ``>= threshold`` predicts malignant. Ratios whose denominator is zero (e.g.
    sensitivity without any malignant case) are NaN rather than a misleading 0 or 1.
    """
    y = np.asarray(y_true).astype(bool)
    pred = np.asarray(p_malignant, dtype=np.float64) >= threshold
    tp, fn = int((pred & y).sum()), int((~pred & y).sum())
    fp, tn = int((pred & ~y).sum()), int((~pred & ~y).sum())
    sensitivity, specificity = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    return {
        "accuracy": _ratio(tp + tn, len(y)),
        "balanced_accuracy": (sensitivity + specificity) / 2,
        "roc_auc": roc_auc(y, p_malignant),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


# --------------------------------------------------------------------------------------------
# plots (a bare Figure: no pyplot, so no global figure registry and no GUI backend)


def plot_confusion_matrix(
    y_true: np.ndarray, p_malignant: np.ndarray, threshold: float, title: str = "Confusion matrix"
) -> Figure:
    """Counts of true (rows) against predicted (columns) benign/malignant."""
    from matplotlib.figure import Figure

    m = classification_metrics(y_true, p_malignant, threshold)
    counts = np.array([[m["tn"], m["fp"]], [m["fn"], m["tp"]]])
    fig = Figure(figsize=(4, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(counts, cmap="Blues", vmin=0)
    names = list(LABEL_NAMES)
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=names,
        yticklabels=names,
        xlabel="predicted",
        ylabel="true",
        title=f"{title} (t={threshold:g})",
    )
    for (i, j), n in np.ndenumerate(counts):
        # White text on the dark half of the colour map keeps every count readable.
        dark = n > counts.max() / 2
        ax.text(j, i, str(n), ha="center", va="center", color="white" if dark else "black")
    return fig


def plot_roc(y_true: np.ndarray, curves: Mapping[str, np.ndarray], title: str = "ROC") -> Figure:
    """ROC curves of several scorings of the same test set (e.g. one per experiment arm)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4), layout="constrained")
    ax = fig.add_subplot()
    for name, score in curves.items():
        fpr, tpr = roc_curve(y_true, score)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc(y_true, score):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="1 - specificity", ylabel="sensitivity", title=title)
    ax.legend(loc="lower right", fontsize="small")
    return fig
