"""The image pyramid of SinGAN: which sizes each scale trains at, and the real image at each.

The arithmetic is the original's (``adjust_scales2image`` + ``creat_reals_pyramid`` in
tamarott/SinGAN), kept float-for-float because it decides the number of scales and their sizes,
and therefore whether a checkpoint trained elsewhere fits: the initial factor only sets how many
scales there are; the factor actually used is recomputed so that the coarsest shorter side lands
on ``min_size`` (``ceil`` of a float product, so 25.000000000000004 becomes 26, as there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from components.config import SinganConfig
from components.errors import ConfigError


@dataclass(frozen=True)
class Pyramid:
    """Sizes of one image's scales, coarsest first, and the factor between them."""

    sizes: tuple[tuple[int, int], ...]
    scale_factor: float

    @property
    def num_scales(self) -> int:
        return len(self.sizes)


def pyramid_for(height: int, width: int, cfg: SinganConfig) -> Pyramid:
    """The pyramid SinGAN builds for an ``height`` x ``width`` image.

    Raises:
        ConfigError: the image's shorter side is below ``singan.min_size``.
    """
    short, long = min(height, width), max(height, width)
    if short < cfg.min_size:
        raise ConfigError(
            f"singan.min_size: {cfg.min_size} px is larger than the images' shorter side "
            f"({height}x{width})"
        )
    if cfg.mode == "fast":
        return consingan_pyramid(height, width, cfg)
    num_scales = math.ceil(math.log(cfg.min_size / short, cfg.scale_factor)) + 1
    scales_above_max = math.ceil(math.log(min(cfg.max_size, long) / long, cfg.scale_factor))
    stop_scale = num_scales - scales_above_max
    scale1 = min(cfg.max_size / long, 1)
    h1, w1 = math.ceil(height * scale1), math.ceil(width * scale1)
    factor = math.pow(cfg.min_size / min(h1, w1), 1 / stop_scale)
    sizes = tuple(
        (
            math.ceil(h1 * math.pow(factor, stop_scale - i)),
            math.ceil(w1 * math.pow(factor, stop_scale - i)),
        )
        for i in range(stop_scale + 1)
    )
    return Pyramid(sizes=sizes, scale_factor=factor)


def consingan_pyramid(height: int, width: int, cfg: SinganConfig) -> Pyramid:
    """The fast mode's pyramid: ``fast_stages`` sizes by ConSinGAN's rescaling rule.

    The finest is the image scaled to ``max_size``, the coarsest has its shorter side at
    ``min_size``; stage i of N - 1 is scaled by ``f ** ((N-2) / ln(N-1) * ln(N-1-i) + 1)`` with
    ``f = (min_size / short) ** (1 / (N-1))`` (Hinz et al. 2021), which puts fewer stages at the
    coarse end than SinGAN's geometric series and closes with one factor-f step to the image.
    """
    stop = cfg.fast_stages - 1
    scale1 = min(cfg.max_size / max(height, width), 1)
    h1, w1 = math.ceil(height * scale1), math.ceil(width * scale1)
    factor = math.pow(cfg.min_size / min(h1, w1), 1 / stop)
    sizes = []
    for i in range(stop):
        exponent = (stop - 1) / math.log(stop) * math.log(stop - i) + 1 if stop > 1 else 1
        s = math.pow(factor, exponent)
        sizes.append((math.ceil(h1 * s), math.ceil(w1 * s)))
    return Pyramid(sizes=(*sizes, (h1, w1)), scale_factor=factor)


def to_tensor(image: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """RGB uint8 HxWx3 + mask HxW {0,1} -> 1x4xHxW float in [-1, 1] (mask 0 -> -1, 1 -> 1)."""
    rgba = np.concatenate(
        [image.astype(np.float32) / 255.0, mask[..., None].astype(np.float32)], -1
    )
    return torch.from_numpy(rgba).permute(2, 0, 1).unsqueeze(0) * 2 - 1


def real_pyramid(real: torch.Tensor, pyramid: Pyramid) -> list[torch.Tensor]:
    """The real image (Nx4xHxW in [-1, 1]) resized to every scale of ``pyramid``, coarsest first.

    Antialiased bicubic stands in for the original's MATLAB-style ``imresize``; the mask channel
    is resized like RGB (soft edges at coarse scales), as SinGAN-Seg does.
    """
    return [
        F.interpolate(real, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(
            -1, 1
        )
        for size in pyramid.sizes
    ]


def upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bring one scale's output to the next scale's size.

    Resizes straight to the target size instead of the original's resize-by-1/factor-then-crop,
    which fails when ``ceil`` rounding makes the upscaled image smaller than the next scale.
    """
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)
