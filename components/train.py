"""The training kit every task model uses: input tensors, one step, one evaluation, the epochs.

In the spirit of Made-With-ML's ``train_step``/``eval_step``: the functions take the model, loss
and optimizer as arguments, and :func:`fit` only schedules epochs, reports to a
:class:`~components.tracking.Reporter`, keeps the best epoch's weights and stops early when
asked. What differs between the classifier and the segmenter (batching, augmentation, what
"better" means) is passed in; the task modules keep only their model builder, their transforms
and their metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from components import progress
from components.imageset import resize_images

if TYPE_CHECKING:
    from components.runtime import Runtime
    from components.tracking import Reporter

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""The normalisation of every ImageNet-style encoder (EfficientNet, UNet++ encoders, VGG19)."""

Batch = tuple[torch.Tensor, torch.Tensor]


# --------------------------------------------------------------------------------------------
# inputs


def image_tensor(images: np.ndarray, size: int) -> torch.Tensor:
    """N x H x W x 3 uint8 -> N x 3 x size x size uint8 (resized with the one kernel of
    :mod:`components.imageset` when needed).

    Images stay uint8 until they reach the device: a quarter of the memory of floats.
    """
    resized = resize_images(images, size)
    return torch.from_numpy(np.ascontiguousarray(resized)).permute(0, 3, 1, 2).contiguous()


def normalize(x: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """uint8 N x 3 x H x W (any device) -> ImageNet-normalised float on the runtime's device,
    in its memory format."""
    x = x.to(runtime.device, non_blocking=True).float().div_(255)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=runtime.memory_format)


# --------------------------------------------------------------------------------------------
# steps


def train_step(
    model: nn.Module,
    batch: Batch,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    runtime: Runtime,
) -> float:
    """One optimizer step on a batch already normalised and on the device; returns its loss.

    The loss is computed in fp32 outside autocast: bf16 logits are fine, a bf16 log-softmax or a
    Dice sum over 64k pixels is not.
    """
    x, y = batch
    optimizer.zero_grad(set_to_none=True)
    with runtime.autocast():
        out = model(x)
    loss = loss_fn(out.float(), y)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.inference_mode()
def eval_step(
    model: nn.Module,
    batch: Batch,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    runtime: Runtime,
) -> tuple[float, torch.Tensor]:
    """Loss and fp32 outputs (logits) of one batch, without gradients."""
    x, y = batch
    with runtime.autocast():
        out = model(x).float()
    return float(loss_fn(out, y)), out


# --------------------------------------------------------------------------------------------
# epochs


@dataclass
class Fitted:
    """The model with its best epoch's weights (in eval mode) and what every epoch measured."""

    model: nn.Module
    best_epoch: int
    best: dict[str, float]
    """The best epoch's record (``epoch``, ``train_loss`` and the evaluation's values)."""
    history: list[dict[str, float]] = field(default_factory=list)


def nan_last(value: float) -> float:
    """A score for ranking where an undefined value (NaN) ranks below everything."""
    return -math.inf if math.isnan(value) else value


def fit(
    model: nn.Module,
    *,
    epochs: int,
    batches: Callable[[int], Iterable[Batch]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    runtime: Runtime,
    evaluate: Callable[[nn.Module], Mapping[str, float]],
    rank: Callable[[Mapping[str, float]], Any],
    reporter: Reporter,
    description: str,
    after_epoch: Callable[[nn.Module], None] | None = None,
    step_metric: str | None = None,
    patience: int | None = None,
) -> Fitted:
    """Train ``model`` for up to ``epochs`` epochs; keep the weights of its best epoch.

    Args:
        batches: ``batches(epoch)`` yields the epoch's (x, y), normalised and on the device.
        evaluate: the model (in eval mode) -> this epoch's validation values, e.g.
            ``{"val_loss": ..., "val_roc_auc": ...}``; each is reported with ``step=epoch``.
        rank: an epoch's record -> a sortable key; the best epoch has the greatest key, and a
            tie keeps the earlier epoch (an arm that never improves keeps its first model).
        after_epoch: called in train mode after each epoch's steps (e.g. precise BatchNorm).
        step_metric: when given, every step's loss is reported under this name.
        patience: stop after this many epochs without a new best (None: run every epoch).

    ``train_loss`` (the epoch's mean step loss) is reported with ``step=epoch``.
    """
    history: list[dict[str, float]] = []
    best_key: Any = None
    best_state: dict[str, torch.Tensor] = {}
    best_epoch, since_best, step = 0, 0, 0
    for epoch in progress.track(range(1, epochs + 1), description):
        model.train()
        losses = []
        for batch in batches(epoch):
            losses.append(train_step(model, batch, loss_fn, optimizer, runtime))
            step += 1
            if step_metric:
                reporter.metric(step_metric, losses[-1], step=step)
        if after_epoch is not None:
            after_epoch(model)
        model.eval()
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), **evaluate(model)}
        history.append(record)
        reporter.metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
        key = rank(record)
        if best_key is None or key > best_key:
            best_key, best_epoch, since_best = key, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            since_best += 1
            if patience is not None and since_best >= patience:
                break
    model.load_state_dict(best_state)
    reporter.metric("best_epoch", best_epoch)
    return Fitted(model.eval(), best_epoch, history[best_epoch - 1], history)
