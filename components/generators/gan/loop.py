"""The one GAN training loop: schedules a loss's phases, keeps the EMA, checkpoints, reports.

The loop knows nothing about the variant it trains: it draws real minibatches, runs
``n_critic`` D phases and one G phase of the :class:`PhasedLoss` it is given, and around that does
what every GAN needs (Adam optimizers, EMA of G, fixed-latent sample grids, loss logging,
atomic checkpoints and resuming).

Reproducibility: every random draw in the loop comes from two explicit ``torch.Generator`` s,
one for minibatch indices and one for z / DiffAugment / penalty draws, seeded from the config and
saved in the checkpoint with every state_dict. No global RNG (torch, numpy, python) is used, so
a run resumed from ``checkpoint.pt`` ends bit-identical on CPU to one that never stopped.

Speed: the training set is converted once to a float tensor on the device (no DataLoader, no
decoding), and losses stay on the device until a logging step, where they are read with one sync.
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Self

import numpy as np
import torch
from torch import Tensor, nn

from components.config import GanConfig
from components.errors import ConfigError, DataError
from components.generators.gan.diffaugment import DiffAugment
from components.generators.gan.losses import GanParts, Logs, PhasedLoss
from components.imageset import ImageSet
from components.imageset import grid as grid_of
from components.io import atomic_write_bytes
from components.progress import bar
from components.runtime import Runtime
from components.tracking import Reporter

CHECKPOINT = "checkpoint.pt"
LOSS_CURVE = "loss_curve.png"
GRID_IMAGES = 64
ARCH_KEYS = ("image_size", "latent_dim", "base_channels")
"""The settings a checkpoint's weights depend on (besides the kind)."""

LossFactory = Callable[[GanParts], PhasedLoss]
History = dict[str, list[float]]


def train(
    G: nn.Module,
    D: nn.Module,
    G_ema: nn.Module | None,
    make_loss: LossFactory,
    data: ImageSet,
    cfg: GanConfig,
    *,
    kind: str,
    seed: int,
    n_critic: int,
    num_classes: int,
    runtime: Runtime,
    workdir: Path,
    reporter: Reporter,
) -> dict[str, float]:
    """Train ``G`` and ``D`` (in place) for ``cfg.steps`` G steps, resuming from ``workdir``.

    Args:
        G, D: networks on ``runtime.device``; ``G(z, labels)`` and ``D(x) -> (scores, logits)``.
        G_ema: a copy of G that tracks its EMA (sampling weights), or None for no EMA.
        make_loss: builds the variant's loss from the parts the loop owns.
        data: training images already at ``cfg.image_size`` (uint8), labels if conditional.
        kind: the generator's registered name, recorded in checkpoints.
        seed: seeds the minibatch and noise generators and the fixed sample latent.
        n_critic: D phases per G phase.
        num_classes: classes of a conditional G (labels must lie in [0, num_classes)); 0: none.
        workdir: ``checkpoint.pt`` and ``loss_curve.png`` go (and are resumed from) here.
        reporter: receives losses, sample grids and the loss curve.

    Returns:
        Final logged values (losses, scores) and throughput: ``images_per_s`` (real images
        through D per second) and ``steps_per_s`` (G steps, each with its D steps, per second),
        measured over this call's steps with logging and checkpointing included.
    """
    x_all, y_all = _training_tensors(data, cfg.image_size, kind, num_classes, runtime)
    device = runtime.device
    parts = build_parts(G, D, cfg, seed, runtime)
    loss = make_loss(parts)
    batches = torch.Generator(device).manual_seed(seed)
    arch = {"kind": kind, **{k: getattr(cfg, k) for k in ARCH_KEYS}}
    ckpt = Path(workdir) / CHECKPOINT
    start, history = 0, {}
    if ckpt.is_file():
        start, history = load_checkpoint(ckpt, parts, G_ema, batches, arch)
    grid_z, grid_labels = fixed_latent(seed, cfg.latent_dim, num_classes, device)

    G.train()
    D.train()
    t0 = time.perf_counter()
    with bar(f"train {kind}", total=cfg.steps) as advance, _Outbox() as outbox:
        advance(start)
        for step in range(start + 1, cfg.steps + 1):
            for _ in range(n_critic):
                real, labels = _minibatch(x_all, y_all, cfg.batch_size, batches, runtime)
                logs = loss.d_step(real, labels)
            logs = {**logs, **loss.g_step(cfg.batch_size, labels)}
            if G_ema is not None:
                ema_update(G_ema, G, cfg.ema_decay if step >= cfg.ema_start_step else 0.0)
            last = step == cfg.steps
            reports: list[Callable[[], None]] = []
            if step % cfg.log_every == 0 or last:
                values = _record(history, logs, step)
                reports += [
                    functools.partial(reporter.metric, k, v, step) for k, v in values.items()
                ]
                advance(0, info=" ".join(f"{k}={v:.3f}" for k, v in values.items() if "loss" in k))
            if step % cfg.sample_every == 0 or last:
                sampler = G if G_ema is None else G_ema
                grid = grid_of(render(sampler, grid_z, grid_labels, runtime))
                reports.append(functools.partial(reporter.image, "samples", grid, step))
            outbox.send(reports)
            if step % cfg.checkpoint_every == 0 or last:
                save_checkpoint(ckpt, step, parts, G_ema, batches, history, arch)
            advance(1)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0

    if history:
        curve = atomic_write_bytes(Path(workdir) / LOSS_CURVE, loss_curve_png(history))
        reporter.artifact(curve)
    ran = cfg.steps - start
    figures = {name: values[-1] for name, values in history.items() if name != "step"}
    figures["train_seconds"] = seconds
    figures["steps_per_s"] = ran / seconds if ran else 0.0
    figures["images_per_s"] = ran * n_critic * cfg.batch_size / seconds if ran else 0.0
    if ran:
        reporter.metric("perf/images_per_s", figures["images_per_s"], cfg.steps)
        reporter.metric("perf/steps_per_s", figures["steps_per_s"], cfg.steps)
    return figures


def build_parts(
    G: nn.Module, D: nn.Module, cfg: GanConfig, seed: int, runtime: Runtime
) -> GanParts:
    """Adam optimizers (config betas and learning rates), the noise generator and DiffAugment."""
    # Fused Adam runs each optimizer step as one kernel on CUDA; CPU keeps the default.
    fused = runtime.device.type == "cuda"
    noise = torch.Generator(runtime.device).manual_seed(seed + 1)
    return GanParts(
        G=G,
        D=D,
        opt_g=torch.optim.Adam(G.parameters(), cfg.lr_g, (cfg.beta1, cfg.beta2), fused=fused),
        opt_d=torch.optim.Adam(D.parameters(), cfg.lr_d, (cfg.beta1, cfg.beta2), fused=fused),
        latent_dim=cfg.latent_dim,
        noise=noise,
        augment=DiffAugment(cfg.diffaugment, noise),
        runtime=runtime,
    )


def _training_tensors(
    data: ImageSet, image_size: int, kind: str, num_classes: int, runtime: Runtime
) -> tuple[Tensor, Tensor | None]:
    """The whole set as an NHWC float tensor in [-1, 1] on the device (+ labels if needed)."""
    if len(data) == 0:
        raise DataError("gan: the training set is empty")
    h, w = data.images.shape[1:3]
    if (h, w) != (image_size, image_size):
        raise DataError(f"gan.image_size: {image_size}, but the training images are {h}x{w} px")
    x = torch.from_numpy(np.ascontiguousarray(data.images)).to(runtime.device)
    x = x.float().div_(127.5).sub_(1.0)
    if not num_classes:
        return x, None
    if data.labels is None:
        raise DataError(
            f"gan.kind: '{kind}' is class-conditional but the training set has no labels"
        )
    labels = np.asarray(data.labels, dtype=np.int64)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(f"gan.kind: '{kind}' needs labels in 0..{num_classes - 1}")
    return x, torch.from_numpy(labels).to(runtime.device)


def _minibatch(
    x_all: Tensor, y_all: Tensor | None, size: int, gen: torch.Generator, runtime: Runtime
) -> tuple[Tensor, Tensor | None]:
    """``size`` random training images (with replacement) as NCHW, and their labels."""
    idx = torch.randint(len(x_all), (size,), generator=gen, device=runtime.device)
    # x_all is NHWC, so the NCHW view of a gathered batch is channels_last already.
    real = x_all[idx].permute(0, 3, 1, 2).contiguous(memory_format=runtime.memory_format)
    return real, None if y_all is None else y_all[idx]


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, decay: float) -> None:
    """G_ema <- decay * G_ema + (1 - decay) * G; buffers (BatchNorm statistics) are copied."""
    torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1.0 - decay)
    for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
        b_ema.copy_(b)


def fixed_latent(
    seed: int, latent_dim: int, num_classes: int, device: torch.device
) -> tuple[Tensor, Tensor | None]:
    """The latent (and labels) of every sample grid, so grids across steps are comparable."""
    gen = torch.Generator().manual_seed(seed + 2)
    z = torch.randn(GRID_IMAGES, latent_dim, generator=gen).to(device)
    labels = torch.arange(GRID_IMAGES, device=device) % num_classes if num_classes else None
    return z, labels


@torch.no_grad()
def render(G: nn.Module, z: Tensor, labels: Tensor | None, runtime: Runtime) -> np.ndarray:
    """G's images for ``z`` as N x H x W x 3 uint8, in eval mode (BatchNorm running stats)."""
    was_training = G.training
    G.eval()
    try:
        with runtime.autocast():
            x = G(z, labels)
    finally:
        G.train(was_training)
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).cpu().numpy())


def _record(history: History, logs: Logs, step: int) -> dict[str, float]:
    """Read a step's logs to floats (the step's one device sync) and append them to history."""
    values = dict(zip(logs, torch.stack([v.float() for v in logs.values()]).tolist(), strict=True))
    history.setdefault("step", []).append(step)
    for name, value in values.items():
        history.setdefault(name, []).append(value)
    return values


def _call_all(calls: list[Callable[[], None]]) -> None:
    for call in calls:
        call()


class _Outbox:
    """Runs a step's reports on a background thread, one batch in flight at a time.

    A tracking store can take tens of milliseconds per metric (MLflow on sqlite, a remote
    server), longer than a GPU training step; sending off the training thread hides that cost.
    The previous batch is awaited before the next is sent, so reports stay in order and a
    failing reporter stops training at the next logging step, not silently.
    """

    def __enter__(self) -> Self:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gan-reports")
        self._pending: Future[None] | None = None
        return self

    def send(self, reports: list[Callable[[], None]]) -> None:
        if reports:
            self.flush()
            self._pending = self._pool.submit(_call_all, reports)

    def flush(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self._pool.shutdown(wait=True)


def loss_curve_png(history: History) -> bytes:
    """The logged losses against step, as a PNG (matplotlib's Agg canvas, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, values in history.items():
        if name.startswith("loss/"):
            ax.plot(history["step"], values, label=name)
    ax.set_xlabel("G step")
    ax.set_ylabel("loss")
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def save_checkpoint(
    path: Path,
    step: int,
    parts: GanParts,
    G_ema: nn.Module | None,
    batches: torch.Generator,
    history: History,
    arch: dict[str, object],
) -> None:
    """Everything a resume needs, as state_dicts, tensors and plain values; written atomically."""
    state = {
        "arch": arch,
        "step": step,
        "G": parts.G.state_dict(),
        "D": parts.D.state_dict(),
        "opt_g": parts.opt_g.state_dict(),
        "opt_d": parts.opt_d.state_dict(),
        "noise_rng": parts.noise.get_state(),
        "batch_rng": batches.get_state(),
        "history": history,
    }
    if G_ema is not None:
        state["G_ema"] = G_ema.state_dict()
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(
    path: Path,
    parts: GanParts,
    G_ema: nn.Module | None,
    batches: torch.Generator,
    arch: dict[str, object],
) -> tuple[int, History]:
    """Restore what :func:`save_checkpoint` wrote; returns (step, history)."""
    state = torch.load(path, map_location=parts.runtime.device, weights_only=True)
    if state["arch"] != arch:
        raise ConfigError(
            f"{path}: checkpoint is for {state['arch']}, the config asks for {arch}; "
            "use a fresh work folder"
        )
    parts.G.load_state_dict(state["G"])
    parts.D.load_state_dict(state["D"])
    parts.opt_g.load_state_dict(state["opt_g"])
    parts.opt_d.load_state_dict(state["opt_d"])
    parts.noise.set_state(state["noise_rng"].cpu())
    batches.set_state(state["batch_rng"].cpu())
    if G_ema is not None:
        # A run that turned EMA on mid-way starts the average from G.
        G_ema.load_state_dict(state.get("G_ema", state["G"]))
    return int(state["step"]), state["history"]
