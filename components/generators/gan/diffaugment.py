"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

With a few hundred lesion images D memorises the real set and G's gradients go stale. DiffAugment
applies the same random, differentiable transforms to every image D sees, real and fake, in both
the D and the G phase, so D cannot key on the real images' exact pixels while G still gets
gradients through the transform. Transforms follow the reference implementation
(mit-han-lab/data-efficient-gans, BSD-2-Clause): color (brightness, saturation, contrast),
translation (up to 1/8 of the side, zero padding) and cutout (a square of half the side).

Every random draw takes an explicit ``torch.Generator`` so that training stays reproducible and
resumable without touching torch's global RNG.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from components.errors import ConfigError

Op = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def _uniform(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    """One U[0, 1) draw per image, shaped to broadcast over (C, H, W)."""
    return torch.rand(x.shape[0], 1, 1, 1, generator=gen, device=x.device, dtype=x.dtype)


def brightness(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    return x + (_uniform(x, gen) - 0.5)


def saturation(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_uniform(x, gen) * 2) + mean


def contrast(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, gen) + 0.5) + mean


def _offsets(x: torch.Tensor, low: int, high: int, gen: torch.Generator | None) -> torch.Tensor:
    return torch.randint(low, high, (x.shape[0], 1, 1), generator=gen, device=x.device)


def translation(x: torch.Tensor, gen: torch.Generator | None, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # Index into a 1-px zero border: a shift past the edge reads zeros (mid-grey in [-1, 1]).
    rows = torch.arange(h, device=x.device).view(1, h, 1) + _offsets(x, -sh, sh + 1, gen) + 1
    cols = torch.arange(w, device=x.device).view(1, 1, w) + _offsets(x, -sw, sw + 1, gen) + 1
    rows, cols = rows.clamp(0, h + 1), cols.clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, gen: torch.Generator | None, ratio: float = 0.5) -> torch.Tensor:
    _, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = _offsets(x, 0, h + (1 - ch % 2), gen) - ch // 2
    left = _offsets(x, 0, w + (1 - cw % 2), gen) - cw // 2
    r = torch.arange(h, device=x.device).view(1, h, 1)
    c = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (r >= top) & (r < top + ch) & (c >= left) & (c < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


OPS: dict[str, tuple[Op, ...]] = {
    "color": (brightness, saturation, contrast),
    "translation": (translation,),
    "cutout": (cutout,),
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation"`` -> ``("color", "translation")``; ConfigError naming unknown parts."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    for name in names:
        if name not in OPS:
            known = ", ".join(OPS)
            raise ConfigError(f"gan.diffaugment: unknown augmentation '{name}' (known: {known})")
    return names


class DiffAugment:
    """Callable applying a policy's transforms in order; identity for the empty policy."""

    def __init__(self, policy: str, generator: torch.Generator | None = None) -> None:
        self.ops = [op for name in parse_policy(policy) for op in OPS[name]]
        self.generator = generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = op(x, self.generator)
        return x
