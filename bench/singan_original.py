"""The original SinGAN-Seg code (../shared/reference/singan-seg), driven for measurement only.

Imported at run time from the reference folder (never copied into the project): its own
``train`` runs unchanged on a PNG that this module writes, in a temporary working directory
(it writes ``TrainedModels/`` relative to the current directory). Its per-scale
``train_single_scale`` calls are timed through a wrapper, and its PNG writes
(``SinGAN.training.plt.imsave``) are replaced by a no-op, as REFERENCE.md says, so file writes
are not timed. Reconstructions and samples are computed with its own ``draw_concat``.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

DEFAULT_REFERENCE = (
    Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "singan-seg"
)


@dataclass
class Reference:
    """The imported reference modules."""

    config: ModuleType
    training: ModuleType
    functions: ModuleType


@dataclass
class OriginalRun:
    """One training of the original: per-scale wall seconds and what it trained."""

    seconds: list[float]
    """Per scale, the whole ``train_single_scale`` call."""
    per_iter: list[float]
    """Per scale, seconds per iteration after the first (setup and warm-up not timed)."""
    Gs: list[nn.Module]
    Zs: list[torch.Tensor]
    reals: list[torch.Tensor]
    noise_amp: list[Any]
    opt: Any

    @property
    def complete(self) -> bool:
        return len(self.Gs) == len(self.reals)


class _Stop(Exception):
    """Raised from the timing wrapper to stop the original after the requested scales."""


def import_reference(path: Path) -> Reference:
    """Import the reference code from ``path`` (its folder goes first on ``sys.path``)."""
    path = path.resolve()
    if not (path / "SinGAN" / "training.py").is_file():
        raise SystemExit(
            f"singan_seg bench: {path}: not the reference SinGAN-Seg code (expected "
            "SinGAN/training.py); pass --reference PATH"
        )
    sys.path.insert(0, str(path))
    import config
    from SinGAN import (
        functions,
        training,
    )

    training.plt.imsave = lambda *a, **k: None
    return Reference(config, training, functions)


def write_input(workdir: Path, image: np.ndarray, mask: np.ndarray) -> str:
    """The 4-channel PNG the original reads (RGB + mask as alpha 0/255); its file name."""
    workdir.mkdir(parents=True, exist_ok=True)
    rgba = np.concatenate([image, mask[..., None] * 255], -1).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(workdir / "polyp.png")
    return "polyp.png"


def train_original(
    ref: Reference,
    workdir: Path,
    niter: int,
    max_size: int,
    seed: int,
    scales: int | None = None,
) -> OriginalRun:
    """Train the original on ``workdir/polyp.png`` (``--nc_z 4 --nc_im 4``, its defaults)."""
    parser = ref.config.get_arguments()
    parser.add_argument("--input_dir")
    parser.add_argument("--input_name")
    parser.add_argument("--mode", default="train")
    args = ["--nc_z", "4", "--nc_im", "4", "--not_cuda", "--niter", str(niter)]
    args += ["--max_size", str(max_size), "--manualSeed", str(seed)]
    args += ["--input_dir", str(workdir), "--input_name", "polyp.png"]
    opt = parser.parse_args(args)
    seconds: list[float] = []
    per_iter: list[float] = []
    stamps: list[float] = []
    inner = ref.training.train_single_scale
    scheduler = torch.optim.lr_scheduler.MultiStepLR

    created = [0]

    class Stamped(scheduler):  # type: ignore[misc,valid-type]
        """The original steps both schedulers once per iteration; the first one a scale creates
        (the D scheduler) stamps the time (its constructor's own step() included)."""

        def __init__(self, *a: Any, **k: Any) -> None:
            self.stamps = created[0] == 0
            created[0] += 1
            super().__init__(*a, **k)

        def step(self, *a: Any, **k: Any) -> None:
            super().step(*a, **k)
            if self.stamps:
                stamps.append(time.perf_counter())

    def timed(*a: Any, **k: Any) -> Any:
        stamps.clear()
        created[0] = 0
        start = time.perf_counter()
        out = inner(*a, **k)
        seconds.append(time.perf_counter() - start)
        # stamps: creation, then after iterations 1..niter; the first iteration is not timed.
        per_iter.append((stamps[-1] - stamps[1]) / (len(stamps) - 2))
        if scales is not None and len(seconds) >= scales:
            raise _Stop
        return out

    Gs: list[nn.Module] = []
    Zs: list[torch.Tensor] = []
    reals: list[torch.Tensor] = []
    amps: list[Any] = []
    if niter < 2:
        raise SystemExit(
            "singan_seg bench: at least 2 iterations per scale (the first is not timed)"
        )
    ref.training.train_single_scale = timed
    torch.optim.lr_scheduler.MultiStepLR = Stamped
    try:
        with contextlib.chdir(workdir), contextlib.redirect_stdout(io.StringIO()):
            opt = ref.functions.post_config(opt)
            real = ref.functions.read_image(opt)
            ref.functions.adjust_scales2image(real, opt)
            with contextlib.suppress(_Stop):
                ref.training.train(opt, Gs, Zs, reals, amps)
    finally:
        ref.training.train_single_scale = inner
        torch.optim.lr_scheduler.MultiStepLR = scheduler
    # With _Stop the last scale's G was trained but train() did not append it; keep what it did.
    return OriginalRun(seconds, per_iter, Gs, Zs, reals, amps, opt)


@torch.no_grad()
def finest(ref: Reference, run: OriginalRun, random: bool, n: int = 1) -> torch.Tensor:
    """``n`` finest-scale outputs, n x 4 x H x W in [-1, 1]: the reconstruction (fixed Zs)
    or random samples, through the original's ``draw_concat`` and its last generator."""
    opt = run.opt
    pad = nn.ZeroPad2d(int((opt.ker_size - 1) * opt.num_layer / 2))
    in_s = torch.full(run.reals[0].shape, 0, dtype=torch.bool)
    outs = []
    for _ in range(n):
        # draw_concat pairs each G with the next scale's size, so it applies all but the last.
        prev = pad(
            ref.training.draw_concat(
                run.Gs,
                run.Zs,
                run.reals,
                run.noise_amp,
                in_s,
                "rand" if random else "rec",
                pad,
                pad,
                opt,
            )
        )
        h, w = run.reals[-1].shape[2:]
        z = pad(torch.randn(1, opt.nc_z, h, w)) if random else run.Zs[-1]
        outs.append(run.Gs[-1](run.noise_amp[-1] * z + prev, prev))
    return torch.cat(outs)


def rec_rmse(ref: Reference, run: OriginalRun) -> float:
    """RMSE of the original's final reconstruction against its own finest real image."""
    rec = finest(ref, run, random=False)
    return float(((rec - run.reals[-1]) ** 2).mean().sqrt())
