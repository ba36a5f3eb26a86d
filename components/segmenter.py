"""The polyp segmenter: a UNet++ (segmentation-models-pytorch) trained with the Dice loss.

It is the yardstick of the polyp study, as the EfficientNet classifier is for lesions: the same
network is trained on real, synthetic and mixed sets and scored on the same held-out real images,
so it must be plain and deterministic for a seed on CPU. SinGAN-Seg's paper used this setup
(UNet++, Dice loss, metrics at threshold 0.5).

Metrics are micro-averaged over the whole evaluated set: true/false positive/negative pixels are
summed over all images first, then IoU, F-score, accuracy, recall and precision are computed once
(``smp.metrics`` with ``reduction="micro"``); the Dice loss is likewise one soft Dice over all
pixels. Per-image averaging would let a few tiny polyps dominate.

Training uses the shared kit (:mod:`components.train`); this module keeps the segmenter's own
model builder, its paired flips, and its metrics. Nothing here calls MLflow.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from components.errors import ConfigError, DataError
from components.imageset import ImageSet, resize
from components.io import load_state_dict_file
from components.runtime import Runtime, seed_everything
from components.train import Fitted, fit, normalize

if TYPE_CHECKING:
    from components.config import PolypStudyConfig
    from components.tracking import Reporter

METRICS = ("dice_loss", "iou", "f_score", "accuracy", "recall", "precision")
"""Every metric :func:`segmentation_metrics` returns, in the order tables show them."""


# --------------------------------------------------------------------------------------------
# model


def build_segmenter(cfg: PolypStudyConfig) -> nn.Module:
    """A one-class UNet++; encoder from ``cfg.encoder_weights_path`` when set, else random.

    ``encoder_weights=None`` always: smp's own weights are downloads.

    Raises:
        ConfigError: unknown encoder, or a weights file that is missing or does not fit.
    """
    import segmentation_models_pytorch as smp

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
    """Images and masks as uint8 N,3,S,S and N,1,S,S tensors, resized when needed
    (:func:`components.imageset.resize`: masks stay {0, 1}).

    Raises:
        DataError: the set has no masks.
    """
    if data.masks is None:
        raise DataError(f"segmenter: a set of {len(data)} images without masks")
    data = resize(data, size)
    x = torch.from_numpy(np.ascontiguousarray(data.images)).permute(0, 3, 1, 2)
    y = torch.from_numpy(np.ascontiguousarray(data.masks))[:, None]
    return x.contiguous(), y.contiguous()


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
    from components.train import image_tensor

    x = image_tensor(images, size or images.shape[1])
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
) -> Fitted:
    """Train a UNet++ on ``train``; keep the weights of the epoch with the best ``val`` IoU.

    Reports ``train.dice_loss`` per step, ``train_loss`` and ``val_<metric>`` per epoch. Ties
    keep the earlier epoch, so an arm that never improves keeps its first model.

    Raises:
        DataError: ``train`` or ``val`` is empty or has no masks.
    """
    for name, data in (("train", train), ("val", val)):
        if len(data) == 0:
            raise DataError(f"segmenter: the {name} set is empty")
    seed_everything(seed)
    model = build_segmenter(cfg).to(runtime.device).to(memory_format=runtime.memory_format)
    x, y = to_tensors(train, cfg.image_size)
    gen = torch.Generator().manual_seed(seed)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
            if len(idx) == 1 < len(x):
                continue  # BatchNorm cannot train on a batch of one (1x1 maps deep down)
            xb, yb = random_flips(x[idx], y[idx], gen)
            yield normalize(xb, runtime), yb.to(runtime.device).float()

    def evaluate(m: nn.Module) -> dict[str, float]:
        return {f"val_{k}": v for k, v in evaluate_segmenter(m, val, cfg, runtime).items()}

    return fit(
        model,
        epochs=cfg.epochs,
        batches=batches,
        loss_fn=dice_loss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=cfg.lr),
        runtime=runtime,
        evaluate=evaluate,
        rank=lambda record: record["val_iou"],
        reporter=reporter,
        description=f"UNet++ ({len(train)} images)",
        step_metric="train.dice_loss",
    )
