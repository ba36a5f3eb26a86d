"""The polyp segmenter: a UNet++ (segmentation-models-pytorch) trained with the Dice loss.

It is the yardstick of the polyp study, as the EfficientNet classifier is for lesions: the same
network is trained on real, synthetic and mixed sets and scored on the same held-out real images,
so it must be plain and deterministic for a seed on CPU. SinGAN-Seg's paper used this setup
(UNet++, Dice loss, metrics at threshold 0.5).

Metrics are micro-averaged over the whole evaluated set: true/false positive/negative pixels are
summed over all images first, then IoU, F-score, accuracy, recall and precision are computed once
(``smp.metrics`` with ``reduction="micro"``); the Dice loss is likewise one soft Dice over all
pixels. Per-image averaging would let a few tiny polyps dominate.

Nothing here calls MLflow: training reports to a :class:`~components.tracking.Reporter`.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from components import progress
from components.errors import ConfigError, DataError
from components.io import load_state_dict_file
from components.runtime import Runtime, seed_everything

if TYPE_CHECKING:
    from components.config import PolypStudyConfig
    from components.generators.base import ImageSet
    from components.tracking import Reporter

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
METRICS = ("dice_loss", "iou", "f_score", "accuracy", "recall", "precision")
"""Every metric :func:`segmentation_metrics` returns, in the order tables show them."""


# --------------------------------------------------------------------------------------------
# model


def build_segmenter(cfg: PolypStudyConfig) -> nn.Module:
    """A one-class UNet++; encoder from ``cfg.encoder_weights_path`` when set, else random.

    ``encoder_weights=None`` always: smp's own weights are downloads. HF_HUB_OFFLINE keeps an
    unexpected download attempt from retrying for a minute before failing.

    Raises:
        ConfigError: unknown encoder, or a weights file that is missing or does not fit.
    """
    import segmentation_models_pytorch as smp

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        model = smp.UnetPlusPlus(encoder_name=cfg.encoder, encoder_weights=None, classes=1)
    except (KeyError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        raise ConfigError(
            f"polyp_study.encoder: '{cfg.encoder}' is not usable ({reason})"
        ) from None
    if cfg.encoder_weights_path is not None:
        _load_encoder(model.encoder, Path(cfg.encoder_weights_path))
    return model


def _load_encoder(encoder: nn.Module, path: Path) -> None:
    """Load a local encoder state_dict; classifier-head keys (``fc``, ``_fc``) are dropped."""
    where = f"polyp_study.encoder_weights_path: {path}"
    state = load_state_dict_file(path, "polyp_study.encoder_weights_path")
    # ImageNet checkpoints carry a classification head that smp encoders delete.
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "_fc.", "classifier."))}
    try:
        # nn.Module's own: smp encoders override it and return None instead of the key report.
        result = nn.Module.load_state_dict(encoder, state, strict=False)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip()
        raise ConfigError(f"{where}: does not fit the encoder ({first})") from None
    if result.missing_keys:
        raise ConfigError(
            f"{where}: {len(result.missing_keys)} encoder tensors missing "
            f"(e.g. {result.missing_keys[0]})"
        )


def dice_loss() -> nn.Module:
    """smp's binary soft Dice loss on logits."""
    import segmentation_models_pytorch as smp

    return smp.losses.DiceLoss(mode="binary", from_logits=True)


# --------------------------------------------------------------------------------------------
# data


def to_tensors(data: ImageSet, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and masks as uint8 N,3,S,S and N,1,S,S tensors, resized when needed.

    Masks are resized with nearest neighbour, so they stay {0, 1}.

    Raises:
        DataError: the set has no masks.
    """
    if data.masks is None:
        raise DataError(f"segmenter: a set of {len(data)} images without masks")
    x = torch.from_numpy(np.ascontiguousarray(data.images)).permute(0, 3, 1, 2)
    y = torch.from_numpy(np.ascontiguousarray(data.masks))[:, None]
    if tuple(x.shape[-2:]) != (size, size):
        x = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True)
        x = x.round().clamp(0, 255).to(torch.uint8)
        y = F.interpolate(y.float(), size=(size, size), mode="nearest").to(torch.uint8)
    return x.contiguous(), y.contiguous()


def normalize(x: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """uint8 N,3,H,W -> ImageNet-normalised float on the runtime's device and memory format."""
    x = x.to(runtime.device, non_blocking=True).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=runtime.memory_format)


def random_flips(
    x: torch.Tensor, y: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip each image and its mask together, horizontally and/or vertically, at random.

    Polyps have no up or down in an endoscope's view, so flips are label-preserving: the cheapest
    augmentation for sets of a few real images.
    """
    for dim in (-1, -2):
        flip = torch.rand(len(x), generator=gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(dim), x)
        y = torch.where(flip.view(-1, 1, 1, 1), y.flip(dim), y)
    return x, y


# --------------------------------------------------------------------------------------------
# metrics


@dataclass
class _Totals:
    """Pixel counts summed over batches: what micro-averaged metrics need."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    inter: float = 0.0
    prob_sum: float = 0.0
    target_sum: float = 0.0

    def add(self, probs: torch.Tensor, target: torch.Tensor, threshold: float) -> None:
        import segmentation_models_pytorch as smp

        probs, target = probs.float(), target.long()
        tp, fp, fn, tn = smp.metrics.get_stats(probs, target, mode="binary", threshold=threshold)
        self.tp += int(tp.sum())
        self.fp += int(fp.sum())
        self.fn += int(fn.sum())
        self.tn += int(tn.sum())
        self.inter += float((probs * target).sum())
        self.prob_sum += float(probs.sum())
        self.target_sum += float(target.sum())

    def metrics(self) -> dict[str, float]:
        import segmentation_models_pytorch as smp

        stats = [torch.tensor([[v]]) for v in (self.tp, self.fp, self.fn, self.tn)]
        out = {
            name: float(fn(*stats, reduction="micro"))
            for name, fn in (
                ("iou", smp.metrics.iou_score),
                ("f_score", smp.metrics.f1_score),
                ("accuracy", smp.metrics.accuracy),
                ("recall", smp.metrics.recall),
                ("precision", smp.metrics.precision),
            )
        }
        # smp's DiceLoss formula (smooth 0, eps 1e-7) over all pixels at once.
        dice = 2 * self.inter / max(self.prob_sum + self.target_sum, 1e-7)
        return {"dice_loss": 1.0 - dice, **out}


def segmentation_metrics(
    probs: np.ndarray | torch.Tensor, masks: np.ndarray | torch.Tensor, threshold: float = 0.5
) -> dict[str, float]:
    """Micro-averaged metrics of predicted probabilities against {0, 1} masks (same shape).

    ``dice_loss`` uses the soft probabilities; the other metrics threshold them (``>=``
    ``threshold``, smp's rule). smp answers 0 where a ratio is 0/0 (e.g. precision with no
    predicted pixel) and the dice loss is then 1.
    """
    p = torch.as_tensor(np.asarray(probs) if not torch.is_tensor(probs) else probs)
    t = torch.as_tensor(np.asarray(masks) if not torch.is_tensor(masks) else masks)
    if p.shape != t.shape:
        raise ValueError(f"probabilities {tuple(p.shape)} and masks {tuple(t.shape)} differ")
    totals = _Totals()
    totals.add(p.reshape(len(p), 1, -1), t.reshape(len(t), 1, -1), threshold)
    return totals.metrics()


# --------------------------------------------------------------------------------------------
# training and prediction


@dataclass
class TrainedSegmenter:
    """The model with the weights of its best validation epoch, and what training saw."""

    model: nn.Module
    best_epoch: int
    best_val_iou: float
    history: list[dict[str, float]] = field(default_factory=list)


def train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: nn.Module,
    opt: torch.optim.Optimizer,
    runtime: Runtime,
) -> float:
    """One optimizer step on a normalised batch; returns the batch's loss."""
    model.train()
    opt.zero_grad(set_to_none=True)
    with runtime.autocast():
        logits = model(x)
    # The loss in fp32: bf16 sums over 64k pixels lose the small overlaps Dice depends on.
    loss = loss_fn(logits.float(), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


@torch.no_grad()
def predict(
    model: nn.Module,
    images: np.ndarray,
    runtime: Runtime,
    batch_size: int = 32,
    size: int | None = None,
) -> np.ndarray:
    """Polyp probabilities, N,S,S float32 in [0, 1], for N,H,W,3 uint8 ``images``.

    ``size`` (default: the images' own) must be a multiple of 32.
    """
    from components.generators.base import ImageSet

    size = size or images.shape[1]
    dummy = np.zeros(images.shape[:3], dtype=np.uint8)
    x, _ = to_tensors(ImageSet(images=images, masks=dummy), size)
    model.eval()
    out = []
    for batch in x.split(batch_size):
        with runtime.autocast():
            logits = model(normalize(batch, runtime))
        out.append(torch.sigmoid(logits.float())[:, 0].cpu())
    return torch.cat(out).numpy()


@torch.no_grad()
def evaluate_segmenter(
    model: nn.Module, data: ImageSet, cfg: PolypStudyConfig, runtime: Runtime
) -> dict[str, float]:
    """:data:`METRICS` of ``model`` on ``data`` (resized to ``cfg.image_size``)."""
    x, y = to_tensors(data, cfg.image_size)
    model.eval()
    totals = _Totals()
    for xb, yb in zip(x.split(cfg.batch_size), y.split(cfg.batch_size), strict=True):
        with runtime.autocast():
            logits = model(normalize(xb, runtime))
        totals.add(torch.sigmoid(logits.float()).cpu(), yb, cfg.threshold)
    return totals.metrics()


def train_segmenter(
    train: ImageSet,
    val: ImageSet,
    cfg: PolypStudyConfig,
    runtime: Runtime,
    reporter: Reporter,
    seed: int,
) -> TrainedSegmenter:
    """Train a UNet++ on ``train``; keep the weights of the epoch with the best ``val`` IoU.

    Reports ``train.dice_loss`` per step and ``val.<metric>`` per epoch. Ties keep the earlier
    epoch, so an arm that never improves keeps its first model rather than its last.

    Raises:
        DataError: ``train`` or ``val`` is empty or has no masks.
    """
    for name, data in (("train", train), ("val", val)):
        if len(data) == 0:
            raise DataError(f"segmenter: the {name} set is empty")
    seed_everything(seed)
    model = build_segmenter(cfg).to(runtime.device).to(memory_format=runtime.memory_format)
    loss_fn = dice_loss()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    x, y = to_tensors(train, cfg.image_size)
    gen = torch.Generator().manual_seed(seed)
    best_state, best_iou, best_epoch = copy.deepcopy(model.state_dict()), -1.0, 0
    history: list[dict[str, float]] = []
    step = 0
    for epoch in progress.track(range(1, cfg.epochs + 1), f"UNet++ ({len(train)} images)"):
        order = torch.randperm(len(x), generator=gen)
        losses = []
        for idx in order.split(cfg.batch_size):
            xb, yb = random_flips(x[idx], y[idx], gen)
            yb = yb.to(runtime.device).float()
            losses.append(train_step(model, normalize(xb, runtime), yb, loss_fn, opt, runtime))
            step += 1
            reporter.metric("train.dice_loss", losses[-1], step=step)
        val_metrics = evaluate_segmenter(model, val, cfg, runtime)
        for name, value in val_metrics.items():
            reporter.metric(f"val.{name}", value, step=epoch)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), **val_metrics})
        if val_metrics["iou"] > best_iou:
            best_iou, best_epoch = val_metrics["iou"], epoch
            best_state = copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    reporter.metric("best_epoch", best_epoch)
    return TrainedSegmenter(model, best_epoch, best_iou, history)
