"""Device, precision and seeding: chosen once from the config, used by every training loop.

GPU paths (CUDA, bf16 autocast, channels_last) exist for GPU users and are chosen by device;
on a CPU-only machine the same code runs in plain fp32 unless the config asks otherwise.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

if TYPE_CHECKING:
    from components.config import Config


@dataclass(frozen=True)
class Runtime:
    """Where and how tensors are computed."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """bf16 autocast when configured, else a no-op context."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def describe(self) -> str:
        prec = "bf16-autocast" if self.autocast_dtype else "fp32"
        fmt = "channels_last" if self.channels_last else "contiguous"
        return f"{self.device.type} {prec} {fmt}"


def make_runtime(
    device: Literal["auto", "cpu", "cuda"] = "auto",
    precision: Literal["auto", "fp32", "bf16"] = "auto",
    channels_last: bool | None = None,
) -> Runtime:
    """Resolve ``auto`` settings: CUDA with bf16 and channels_last when a GPU is there."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        from components.errors import ConfigError

        raise ConfigError("device: 'cuda' requested but no CUDA device is available")
    dev = torch.device(device)
    if precision == "auto":
        precision = "bf16" if dev.type == "cuda" else "fp32"
    if channels_last is None:
        channels_last = dev.type == "cuda"
    return Runtime(dev, torch.bfloat16 if precision == "bf16" else None, channels_last)


def runtime_for(cfg: Config) -> Runtime:
    """The runtime a resolved config asks for (``device``, ``precision``, ``channels_last``)."""
    return make_runtime(cfg.device, cfg.precision, cfg.channels_last)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op thread count (None: leave it)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
