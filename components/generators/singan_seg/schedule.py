"""How each scale of a SinGAN pyramid is run on this device: models at once, precision, layout.

A pyramid spans two regimes. Its small scales (25-100 px, 32-64 channels) are bound by kernel
launches and Python: a conv there is microseconds of work, so stacking K models (grouped convs)
costs little more than one and K models train for the price of about one. Its large scales
(150-250 px, 64-128 channels) are bound by arithmetic on a CPU: stacking gains nothing there
and bf16 (half the bytes, twice the multiply-adds per instruction on AVX512-BF16) is the lever. On a
GPU every scale is launch-bound at these sizes, so every scale stacks, and the runtime's own
precision (bf16 autocast by default) applies everywhere.

Neither choice changes what is trained beyond rounding: K models together equal K one by one,
and bf16 autocast keeps the reconstruction error within 5% of fp32 (bench/singan_seg.py).
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import torch

from components.config import SinganConfig
from components.runtime import Runtime


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX), so autocast pays.

    Without these instructions oneDNN emulates bf16 and autocast is slower than fp32.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no cheap way to ask, so stay at fp32
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def _side(size: tuple[int, int]) -> int:
    return max(size)


def runtime_at(cfg: SinganConfig, runtime: Runtime, size: tuple[int, int]) -> Runtime:
    """The runtime for the scale of ``size``: bf16 autocast at large scales on a CPU.

    Applies only where the runtime is at fp32 on a CPU that computes bf16 fast (a CUDA runtime
    at fp32 was asked for explicitly, so it is left alone). The memory format stays: on this
    CPU channels_last made a 250 px, 128-channel D step with its gradient penalty 1.5x slower
    in bf16 (oneDNN reorders around BatchNorm), so it does not pay here.
    """
    if cfg.bf16_from_side is None or runtime.autocast_dtype is not None:
        return runtime
    if runtime.device.type != "cpu" or not cpu_has_fast_bf16():
        return runtime
    if _side(size) < cfg.bf16_from_side:
        return runtime
    return replace(runtime, autocast_dtype=torch.bfloat16)


def models_at(cfg: SinganConfig, runtime: Runtime, size: tuple[int, int]) -> int:
    """How many models train stacked at the scale of ``size`` (at most ``models_at_once``)."""
    if (
        runtime.device.type == "cpu"
        and cfg.one_by_one_from_side is not None
        and _side(size) >= cfg.one_by_one_from_side
    ):
        return 1
    return cfg.models_at_once
